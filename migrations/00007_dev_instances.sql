-- +goose Up
-- Issue 11: development instances (API.md v1.1 "Development instances"). Staging, local and
-- test copies of a site take no seat: an activation says whether it is one, classified
-- once at its first activation, and a license counts its development activations apart
-- from its seats, each count with its ceiling written into the schema.

ALTER TABLE products
  ADD COLUMN dev_instances boolean NOT NULL DEFAULT true,
  -- normalized by the writer: lower case, no leading or trailing dot
  ADD COLUMN dev_instance_suffixes text[] NOT NULL DEFAULT '{}'
    CONSTRAINT products_dev_instance_suffixes CHECK (cardinality(dev_instance_suffixes) <= 50);

ALTER TABLE activations ADD COLUMN development boolean NOT NULL DEFAULT false;

-- Invariant 1 as amended: seats_used counts the seat-taking activations (the existing
-- CHECK (seats_used <= seat_limit) keeps holding them to the limit), and
-- dev_instances_used the development ones, at most 20 per license.
ALTER TABLE licenses ADD COLUMN dev_instances_used integer NOT NULL DEFAULT 0
  CONSTRAINT licenses_dev_instances_used CHECK (dev_instances_used BETWEEN 0 AND 20);

-- An edge's instance entry says which of the instance's activations are development ones.
GRANT SELECT (development) ON activations TO license_edge;

-- Events and audit records show the flag.
CREATE OR REPLACE FUNCTION activation_json(a activations) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', a.id, 'license_id', a.license_id, 'instance', a.instance,
    'activated_at', rfc3339(a.activated_at), 'development', a.development)
$$;

ALTER TYPE seat_result ADD ATTRIBUTE development boolean;

DROP FUNCTION license_activate(uuid, text, text, text, text, uuid, uuid, timestamptz, text, text);

-- license_activate takes a seat (or, for a development instance, a development slot) of
-- the key's license for the product on the instance, in one statement: the key row is
-- locked for the statement's own time only and guards every row under the key. The
-- caller classifies the instance as sent (shared/license): p_dev_builtin is the verdict
-- of the fixed rules, p_dev_host the URL's host (NULL for an instance that is not an
-- http(s) URL) for the product's suffix list, matched here by whole labels as
-- license.IsDevelopmentInstance does. Rules, in order (writer/storetest's conformance
-- table runs them against this and the in-memory fake):
--   unknown key or product not on the key          → license_not_found
--   the product's license (the live one, else the newest cancelled) is not valid at p_now
--                                                   → license_suspended|cancelled|expired
--   the instance already holds an activation on it   → existing (no change; it keeps
--                                                      the classification it was made with)
--   a development instance (the product allows them) with 20 already → dev_instance_limit_reached
--   any other instance with every seat taken         → seat_limit_reached
--   otherwise the activation, the count, the version, the audit and outbox rows → activated
-- +goose StatementBegin
CREATE FUNCTION license_activate(p_brand_id uuid, p_brand text, p_key text, p_product text,
  p_instance text, p_dev_builtin boolean, p_dev_host text, p_activation_id uuid, p_audit_id uuid,
  p_now timestamptz, p_actor text, p_request_id text) RETURNS seat_result
LANGUAGE plpgsql AS $$
DECLARE
  k license_keys;
  l licenses;
  l_after licenses;
  a activations;
  r seat_result;
  eff text;
  dev boolean;
  no_room boolean;
BEGIN
  PERFORM set_config('app.brand_id', p_brand_id::text, true);
  SELECT * INTO k FROM license_keys WHERE brand_id = p_brand_id AND key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    r.outcome := 'license_not_found';
    RETURN r;
  END IF;
  SELECT l2.* INTO l FROM licenses l2 JOIN products p ON p.id = l2.product_id
  WHERE l2.license_key_id = k.id AND l2.brand_id = p_brand_id AND p.code = p_product
  ORDER BY l2.status = 'cancelled', l2.id DESC LIMIT 1;
  IF NOT FOUND THEN
    r.outcome := 'license_not_found';
    RETURN r;
  END IF;
  SELECT p.dev_instances AND (p_dev_builtin OR (p_dev_host IS NOT NULL AND EXISTS (
      SELECT 1 FROM unnest(p.dev_instance_suffixes) s WHERE right(p_dev_host, length(s) + 1) = '.' || s)))
  INTO dev FROM products p WHERE p.id = l.product_id;
  r.key_id := k.id; r.license_key := k.key; r.version := k.version; r.product := p_product;
  r.license_id := l.id; r.status := l.status; r.expires_at := l.expires_at;
  r.seat_limit := l.seat_limit; r.seats_used := l.seats_used;
  r.license_created_at := l.created_at; r.license_updated_at := l.updated_at;
  eff := CASE WHEN l.status = 'valid' AND l.expires_at IS NOT NULL AND l.expires_at <= p_now
              THEN 'expired' ELSE l.status END;
  IF eff <> 'valid' THEN
    r.outcome := 'license_' || eff;
    RETURN r;
  END IF;
  no_room := CASE WHEN dev THEN l.dev_instances_used >= 20
               ELSE l.seat_limit IS NOT NULL AND l.seats_used >= l.seat_limit END;
  IF no_room THEN
    -- a reinstall still answers with its activation
    SELECT * INTO a FROM activations WHERE license_id = l.id AND instance = p_instance AND brand_id = p_brand_id;
    IF FOUND THEN
      r.outcome := 'existing';
      r.activation_id := a.id; r.instance := a.instance; r.activated_at := a.activated_at;
      r.development := a.development;
    ELSIF dev THEN
      r.outcome := 'dev_instance_limit_reached';
    ELSE
      r.outcome := 'seat_limit_reached';
    END IF;
    RETURN r;
  END IF;
  -- the insert is the instance look-up: the key row's lock keeps the same instance from
  -- racing in, and a new activation costs no read of the activations partition
  INSERT INTO activations (id, brand_id, license_id, instance, activated_at, version, development)
  VALUES (p_activation_id, p_brand_id, l.id, p_instance, p_now, k.version + 1, dev)
  ON CONFLICT (license_id, instance) DO NOTHING
  RETURNING * INTO a;
  IF NOT FOUND THEN
    SELECT * INTO a FROM activations WHERE license_id = l.id AND instance = p_instance AND brand_id = p_brand_id;
    r.outcome := 'existing';
    r.activation_id := a.id; r.instance := a.instance; r.activated_at := a.activated_at;
    r.development := a.development;
    RETURN r;
  END IF;
  UPDATE licenses SET seats_used = seats_used + (NOT dev)::int, dev_instances_used = dev_instances_used + dev::int,
    updated_at = p_now WHERE id = l.id
  RETURNING * INTO l_after;
  r.version := seat_change(k, p_brand, 'activation.created', 'license.activated', l, l_after,
    p_product, a, p_audit_id, p_now, p_actor, p_request_id);
  r.outcome := 'activated';
  r.seats_used := l_after.seats_used; r.license_updated_at := l_after.updated_at;
  r.activation_id := a.id; r.instance := a.instance; r.activated_at := a.activated_at;
  r.development := a.development;
  RETURN r;
END
$$;
-- +goose StatementEnd

-- license_deactivate frees a seat, or a development slot, in one statement, like license_activate. Either by
-- (p_key, p_product, p_instance) — the public deactivation: the instance's seat on the
-- product's live license, else on a cancelled one — or by (p_license_id, p_activation_id),
-- the support desk's removal. Outcomes: deactivated, activation_not_found, and
-- license_not_found (by id: no such license).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION license_deactivate(p_brand_id uuid, p_brand text, p_key text, p_product text,
  p_instance text, p_license_id uuid, p_activation_id uuid, p_audit_id uuid, p_now timestamptz,
  p_actor text, p_request_id text) RETURNS seat_result
LANGUAGE plpgsql AS $$
DECLARE
  k license_keys;
  l licenses;
  l_after licenses;
  a activations;
  r seat_result;
  prod text;
  lid uuid;
  aid uuid;
BEGIN
  PERFORM set_config('app.brand_id', p_brand_id::text, true);
  IF p_license_id IS NOT NULL THEN
    SELECT * INTO k FROM license_keys
    WHERE id = (SELECT license_key_id FROM licenses WHERE id = p_license_id AND brand_id = p_brand_id)
      AND brand_id = p_brand_id
    FOR UPDATE;
    IF NOT FOUND THEN
      r.outcome := 'license_not_found';
      RETURN r;
    END IF;
    SELECT * INTO l FROM licenses WHERE id = p_license_id AND brand_id = p_brand_id;
    SELECT code INTO prod FROM products WHERE id = l.product_id;
    SELECT * INTO a FROM activations WHERE license_id = l.id AND id = p_activation_id AND brand_id = p_brand_id;
    IF NOT FOUND THEN
      r.outcome := 'activation_not_found';
      RETURN r;
    END IF;
  ELSE
    SELECT * INTO k FROM license_keys WHERE brand_id = p_brand_id AND key = p_key FOR UPDATE;
    IF NOT FOUND THEN
      r.outcome := 'activation_not_found';
      RETURN r;
    END IF;
    prod := p_product;
    SELECT l2.id, a2.id INTO lid, aid
    FROM licenses l2 JOIN products p ON p.id = l2.product_id
    JOIN activations a2 ON a2.license_id = l2.id AND a2.instance = p_instance AND a2.brand_id = p_brand_id
    WHERE l2.license_key_id = k.id AND l2.brand_id = p_brand_id AND p.code = p_product
    ORDER BY l2.status = 'cancelled', l2.id DESC LIMIT 1;
    IF NOT FOUND THEN
      r.outcome := 'activation_not_found';
      RETURN r;
    END IF;
    SELECT * INTO l FROM licenses WHERE id = lid;
    SELECT * INTO a FROM activations WHERE license_id = lid AND id = aid;
  END IF;
  DELETE FROM activations WHERE license_id = l.id AND id = a.id AND brand_id = p_brand_id;
  UPDATE licenses SET seats_used = seats_used - (NOT a.development)::int,
    dev_instances_used = dev_instances_used - a.development::int, updated_at = p_now WHERE id = l.id
  RETURNING * INTO l_after;
  r.version := seat_change(k, p_brand, 'activation.deleted', 'license.deactivated', l, l_after,
    prod, a, p_audit_id, p_now, p_actor, p_request_id);
  r.outcome := 'deactivated';
  r.key_id := k.id; r.license_key := k.key; r.product := prod;
  r.license_id := l_after.id; r.status := l_after.status; r.expires_at := l_after.expires_at;
  r.seat_limit := l_after.seat_limit; r.seats_used := l_after.seats_used;
  r.license_created_at := l_after.created_at; r.license_updated_at := l_after.updated_at;
  r.activation_id := a.id; r.instance := a.instance; r.activated_at := a.activated_at;
  r.development := a.development;
  RETURN r;
END
$$;
-- +goose StatementEnd

REVOKE EXECUTE ON FUNCTION license_activate FROM PUBLIC;
GRANT EXECUTE ON FUNCTION license_activate TO license_app;

-- +goose Down
DROP FUNCTION license_activate(uuid, text, text, text, text, boolean, text, uuid, uuid, timestamptz, text, text);
-- license_activate takes a seat of the key's license for the product on the instance,
-- in one statement: the key row is locked for the statement's own time only. The key row
-- lock guards every row under the key (licenses, activations, the version counter): every
-- change under a key takes it first, so no other row is locked. Rules, in order (the
-- conformance table in writer/storetest runs them against this and the in-memory fake):
--   unknown key or product not on the key          → license_not_found
--   the product's license (the live one, else the newest cancelled) is not valid at p_now
--                                                   → license_suspended|cancelled|expired
--   the instance already holds a seat on it          → existing (no change)
--   every seat is taken                              → seat_limit_reached
-- (on a license with free seats the insert itself finds an existing seat: ON CONFLICT)
--   otherwise the activation, the seat, the version, the audit and outbox rows → activated
-- +goose StatementBegin
CREATE FUNCTION license_activate(p_brand_id uuid, p_brand text, p_key text, p_product text,
  p_instance text, p_activation_id uuid, p_audit_id uuid, p_now timestamptz, p_actor text,
  p_request_id text) RETURNS seat_result
LANGUAGE plpgsql AS $$
DECLARE
  k license_keys;
  l licenses;
  l_after licenses;
  a activations;
  r seat_result;
  eff text;
BEGIN
  PERFORM set_config('app.brand_id', p_brand_id::text, true);
  SELECT * INTO k FROM license_keys WHERE brand_id = p_brand_id AND key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    r.outcome := 'license_not_found';
    RETURN r;
  END IF;
  SELECT l2.* INTO l FROM licenses l2 JOIN products p ON p.id = l2.product_id
  WHERE l2.license_key_id = k.id AND l2.brand_id = p_brand_id AND p.code = p_product
  ORDER BY l2.status = 'cancelled', l2.id DESC LIMIT 1;
  IF NOT FOUND THEN
    r.outcome := 'license_not_found';
    RETURN r;
  END IF;
  r.key_id := k.id; r.license_key := k.key; r.version := k.version; r.product := p_product;
  r.license_id := l.id; r.status := l.status; r.expires_at := l.expires_at;
  r.seat_limit := l.seat_limit; r.seats_used := l.seats_used;
  r.license_created_at := l.created_at; r.license_updated_at := l.updated_at;
  eff := CASE WHEN l.status = 'valid' AND l.expires_at IS NOT NULL AND l.expires_at <= p_now
              THEN 'expired' ELSE l.status END;
  IF eff <> 'valid' THEN
    r.outcome := 'license_' || eff;
    RETURN r;
  END IF;
  IF l.seat_limit IS NOT NULL AND l.seats_used >= l.seat_limit THEN
    -- full: a reinstall still answers with its seat
    SELECT * INTO a FROM activations WHERE license_id = l.id AND instance = p_instance AND brand_id = p_brand_id;
    IF FOUND THEN
      r.outcome := 'existing';
      r.activation_id := a.id; r.instance := a.instance; r.activated_at := a.activated_at;
    ELSE
      r.outcome := 'seat_limit_reached';
    END IF;
    RETURN r;
  END IF;
  -- the insert is the instance look-up: the key row's lock keeps the same instance from
  -- racing in, and a new seat costs no read of the activations partition
  INSERT INTO activations (id, brand_id, license_id, instance, activated_at, version)
  VALUES (p_activation_id, p_brand_id, l.id, p_instance, p_now, k.version + 1)
  ON CONFLICT (license_id, instance) DO NOTHING
  RETURNING * INTO a;
  IF NOT FOUND THEN
    SELECT * INTO a FROM activations WHERE license_id = l.id AND instance = p_instance AND brand_id = p_brand_id;
    r.outcome := 'existing';
    r.activation_id := a.id; r.instance := a.instance; r.activated_at := a.activated_at;
    RETURN r;
  END IF;
  UPDATE licenses SET seats_used = seats_used + 1, updated_at = p_now WHERE id = l.id
  RETURNING * INTO l_after;
  r.version := seat_change(k, p_brand, 'activation.created', 'license.activated', l, l_after,
    p_product, a, p_audit_id, p_now, p_actor, p_request_id);
  r.outcome := 'activated';
  r.seats_used := l_after.seats_used; r.license_updated_at := l_after.updated_at;
  r.activation_id := a.id; r.instance := a.instance; r.activated_at := a.activated_at;
  RETURN r;
END
$$;
-- +goose StatementEnd

-- license_deactivate frees a seat in one statement, like license_activate. Either by
-- (p_key, p_product, p_instance) — the public deactivation: the instance's seat on the
-- product's live license, else on a cancelled one — or by (p_license_id, p_activation_id),
-- the support desk's removal. Outcomes: deactivated, activation_not_found, and
-- license_not_found (by id: no such license).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION license_deactivate(p_brand_id uuid, p_brand text, p_key text, p_product text,
  p_instance text, p_license_id uuid, p_activation_id uuid, p_audit_id uuid, p_now timestamptz,
  p_actor text, p_request_id text) RETURNS seat_result
LANGUAGE plpgsql AS $$
DECLARE
  k license_keys;
  l licenses;
  l_after licenses;
  a activations;
  r seat_result;
  prod text;
  lid uuid;
  aid uuid;
BEGIN
  PERFORM set_config('app.brand_id', p_brand_id::text, true);
  IF p_license_id IS NOT NULL THEN
    SELECT * INTO k FROM license_keys
    WHERE id = (SELECT license_key_id FROM licenses WHERE id = p_license_id AND brand_id = p_brand_id)
      AND brand_id = p_brand_id
    FOR UPDATE;
    IF NOT FOUND THEN
      r.outcome := 'license_not_found';
      RETURN r;
    END IF;
    SELECT * INTO l FROM licenses WHERE id = p_license_id AND brand_id = p_brand_id;
    SELECT code INTO prod FROM products WHERE id = l.product_id;
    SELECT * INTO a FROM activations WHERE license_id = l.id AND id = p_activation_id AND brand_id = p_brand_id;
    IF NOT FOUND THEN
      r.outcome := 'activation_not_found';
      RETURN r;
    END IF;
  ELSE
    SELECT * INTO k FROM license_keys WHERE brand_id = p_brand_id AND key = p_key FOR UPDATE;
    IF NOT FOUND THEN
      r.outcome := 'activation_not_found';
      RETURN r;
    END IF;
    prod := p_product;
    SELECT l2.id, a2.id INTO lid, aid
    FROM licenses l2 JOIN products p ON p.id = l2.product_id
    JOIN activations a2 ON a2.license_id = l2.id AND a2.instance = p_instance AND a2.brand_id = p_brand_id
    WHERE l2.license_key_id = k.id AND l2.brand_id = p_brand_id AND p.code = p_product
    ORDER BY l2.status = 'cancelled', l2.id DESC LIMIT 1;
    IF NOT FOUND THEN
      r.outcome := 'activation_not_found';
      RETURN r;
    END IF;
    SELECT * INTO l FROM licenses WHERE id = lid;
    SELECT * INTO a FROM activations WHERE license_id = lid AND id = aid;
  END IF;
  DELETE FROM activations WHERE license_id = l.id AND id = a.id AND brand_id = p_brand_id;
  UPDATE licenses SET seats_used = seats_used - 1, updated_at = p_now WHERE id = l.id
  RETURNING * INTO l_after;
  r.version := seat_change(k, p_brand, 'activation.deleted', 'license.deactivated', l, l_after,
    prod, a, p_audit_id, p_now, p_actor, p_request_id);
  r.outcome := 'deactivated';
  r.key_id := k.id; r.license_key := k.key; r.product := prod;
  r.license_id := l_after.id; r.status := l_after.status; r.expires_at := l_after.expires_at;
  r.seat_limit := l_after.seat_limit; r.seats_used := l_after.seats_used;
  r.license_created_at := l_after.created_at; r.license_updated_at := l_after.updated_at;
  r.activation_id := a.id; r.instance := a.instance; r.activated_at := a.activated_at;
  RETURN r;
END
$$;
-- +goose StatementEnd

REVOKE EXECUTE ON FUNCTION license_activate FROM PUBLIC;
GRANT EXECUTE ON FUNCTION license_activate TO license_app;
ALTER TYPE seat_result DROP ATTRIBUTE development;
CREATE OR REPLACE FUNCTION activation_json(a activations) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', a.id, 'license_id', a.license_id, 'instance', a.instance,
    'activated_at', rfc3339(a.activated_at))
$$;
REVOKE SELECT (development) ON activations FROM license_edge;
ALTER TABLE licenses DROP COLUMN dev_instances_used;
ALTER TABLE activations DROP COLUMN development;
ALTER TABLE products DROP COLUMN dev_instance_suffixes, DROP COLUMN dev_instances;
