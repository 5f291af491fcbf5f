-- +goose Up
-- Issue 7: a status answer whose cost does not grow with the license, one round trip per
-- activation, and idempotency records that hold an outcome instead of an HTTP response.

-- Every activation remembers the key version at which it was made: an edge's cached entry
-- for one instance carries the version at which that instance last changed. Existing rows
-- get 0 ("before any version this edge can know of"), which is what they are.
ALTER TABLE activations ADD COLUMN version bigint NOT NULL DEFAULT 0;

-- RFC 3339 in UTC with microseconds, independent of the session's TimeZone.
CREATE FUNCTION rfc3339(t timestamptz) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The stored state of a license as change events carry it (shared/event LicenseState).
CREATE FUNCTION license_state_json(l licenses, p_product text) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', l.id, 'product', p_product, 'status', l.status,
    'expires_at', rfc3339(l.expires_at), 'seat_limit', l.seat_limit, 'seats_used', l.seats_used,
    'created_at', rfc3339(l.created_at), 'updated_at', rfc3339(l.updated_at))
$$;

-- A license as the API shows it (status evaluated at p_now), for audit before/after.
CREATE FUNCTION license_resource_json(l licenses, p_key text, p_product text, p_now timestamptz)
RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', l.id, 'license_key', p_key, 'product', p_product,
    'status', CASE WHEN l.status = 'valid' AND l.expires_at IS NOT NULL AND l.expires_at <= p_now
                   THEN 'expired' ELSE l.status END,
    'expires_at', rfc3339(l.expires_at), 'seat_limit', l.seat_limit, 'seats_used', l.seats_used,
    'seats_remaining', CASE WHEN l.seat_limit IS NULL THEN NULL ELSE greatest(l.seat_limit - l.seats_used, 0) END,
    'created_at', rfc3339(l.created_at), 'updated_at', rfc3339(l.updated_at))
$$;

CREATE FUNCTION activation_json(a activations) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', a.id, 'license_id', a.license_id, 'instance', a.instance,
    'activated_at', rfc3339(a.activated_at))
$$;

-- What a seat statement answers: an outcome code and the rows the caller renders.
CREATE TYPE seat_result AS (
  outcome            text,   -- activated | existing | deactivated | license_not_found |
                             -- activation_not_found | seat_limit_reached |
                             -- license_suspended | license_cancelled | license_expired
  key_id             uuid,
  license_key        text,
  version            bigint, -- the key's version after the statement
  license_id         uuid,
  product            text,
  status             text,   -- stored status
  expires_at         timestamptz,
  seat_limit         integer,
  seats_used         integer,
  license_created_at timestamptz,
  license_updated_at timestamptz,
  activation_id      uuid,
  instance           text,
  activated_at       timestamptz
);

-- seat_change records a change under a locked key: the key's version bump, the audit event
-- and the outbox event. Callers hold the key row's lock.
-- +goose StatementBegin
CREATE FUNCTION seat_change(k license_keys, p_brand text, p_type text, p_action text,
  l_before licenses, l_after licenses, p_product text, a activations, p_audit_id uuid,
  p_now timestamptz, p_actor text, p_request_id text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v bigint := k.version + 1;
BEGIN
  UPDATE license_keys SET version = v, updated_at = p_now WHERE id = k.id;
  INSERT INTO audit_events (id, brand_id, license_key_id, license_id, action, actor, request_id, at, before, after)
  VALUES (p_audit_id, k.brand_id, k.id, l_after.id, p_action, p_actor, p_request_id, p_now,
    license_resource_json(l_before, k.key, p_product, p_now),
    jsonb_build_object('license', license_resource_json(l_after, k.key, p_product, p_now),
                       'activation', activation_json(a)));
  INSERT INTO outbox (brand_id, license_key_id, version, subject, payload)
  VALUES (k.brand_id, k.id, v, 'license.events.' || k.brand_id || '.' || k.id,
    jsonb_build_object('type', p_type, 'brand_id', k.brand_id, 'brand', p_brand, 'key_id', k.id,
      'license_key', k.key, 'version', v,
      'license', license_state_json(l_after, p_product),
      'activation', activation_json(a) || jsonb_build_object('version', a.version),
      'commit_time', rfc3339(p_now)));
  RETURN v;
END
$$;
-- +goose StatementEnd

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
CREATE FUNCTION license_deactivate(p_brand_id uuid, p_brand text, p_key text, p_product text,
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

-- Idempotency records hold the request's outcome (a resource, or an error kind with its
-- detail), which each transport renders; no HTTP status or problem document is stored.
ALTER TABLE idempotency_keys ADD COLUMN outcome_kind text;
ALTER TABLE idempotency_keys ADD COLUMN outcome bytea;
UPDATE idempotency_keys SET
  outcome_kind = CASE WHEN response_status < 400 THEN 'ok'
                      ELSE coalesce(convert_from(response_body, 'UTF8')::jsonb ->> 'code', 'internal') END,
  outcome = CASE WHEN response_status < 400 THEN response_body
                 ELSE convert_to(jsonb_build_object('detail',
                        convert_from(response_body, 'UTF8')::jsonb ->> 'detail')::text, 'UTF8') END
WHERE state = 'done';
ALTER TABLE idempotency_keys DROP COLUMN response_status, DROP COLUMN response_body;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_done_has_outcome
  CHECK (state <> 'done' OR outcome_kind IS NOT NULL);

-- +goose Down
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_done_has_outcome;
ALTER TABLE idempotency_keys ADD COLUMN response_status integer, ADD COLUMN response_body bytea;
DELETE FROM idempotency_keys WHERE state = 'done';
ALTER TABLE idempotency_keys DROP COLUMN outcome_kind, DROP COLUMN outcome;
DROP FUNCTION license_deactivate, license_activate, seat_change;
DROP TYPE seat_result;
DROP FUNCTION activation_json, license_resource_json, license_state_json, rfc3339;
ALTER TABLE activations DROP COLUMN version;
