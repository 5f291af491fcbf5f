-- +goose Up
-- Application role: the writer connects as license_app, which owns nothing, so
-- row-level security applies to it and the audit table's privileges hold (edges have
-- their own read-only role since 00004). It is created without a password: deployments
-- set it (deploy/local/services.sh, the chaos harness, deploy/compose, and in production
-- from the secret manager; README), and a cluster where it exists keeps its own.
-- +goose StatementBegin
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'license_app') THEN
    CREATE ROLE license_app LOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL; -- created meanwhile by a migration of another database
END
$$;
-- +goose StatementEnd

CREATE TABLE brands (
  id         uuid PRIMARY KEY,
  slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id          uuid PRIMARY KEY,
  brand_id    uuid NOT NULL REFERENCES brands(id),
  prefix      text NOT NULL UNIQUE,
  secret_hash bytea NOT NULL,
  scopes      text[] NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX api_keys_brand ON api_keys (brand_id);

CREATE TABLE products (
  id         uuid PRIMARY KEY,
  brand_id   uuid NOT NULL REFERENCES brands(id),
  code       text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (brand_id, code)
);

-- version is incremented by every change under the key, in the change's transaction;
-- events and cache entries carry it.
CREATE TABLE license_keys (
  id             uuid PRIMARY KEY,
  brand_id       uuid NOT NULL REFERENCES brands(id),
  key            text NOT NULL UNIQUE,
  customer_email text NOT NULL,
  version        bigint NOT NULL DEFAULT 1,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX license_keys_brand_email ON license_keys (brand_id, customer_email);
CREATE INDEX license_keys_email ON license_keys (customer_email);

CREATE TABLE licenses (
  id             uuid PRIMARY KEY,
  brand_id       uuid NOT NULL REFERENCES brands(id),
  license_key_id uuid NOT NULL REFERENCES license_keys(id),
  product_id     uuid NOT NULL REFERENCES products(id),
  status         text NOT NULL CHECK (status IN ('valid', 'suspended', 'cancelled')),
  expires_at     timestamptz,
  seat_limit     integer CHECK (seat_limit IS NULL OR seat_limit > 0),
  seats_used     integer NOT NULL DEFAULT 0,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  -- invariant 1 written into the schema: never more seats than the limit.
  CHECK (seats_used >= 0 AND (seat_limit IS NULL OR seats_used <= seat_limit))
);
CREATE INDEX licenses_key ON licenses (license_key_id);
CREATE INDEX licenses_brand ON licenses (brand_id, id);
-- at most one non-cancelled license per product on one key
CREATE UNIQUE INDEX licenses_one_live_per_product ON licenses (license_key_id, product_id)
  WHERE status <> 'cancelled';

-- Activations are the large table: hash-partitioned by license, so every hot query
-- (by license, by license+instance) touches exactly one partition.
CREATE TABLE activations (
  id           uuid NOT NULL,
  brand_id     uuid NOT NULL,
  license_id   uuid NOT NULL,
  instance     text NOT NULL CHECK (length(instance) BETWEEN 1 AND 255),
  activated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (license_id, id),
  UNIQUE (license_id, instance)
) PARTITION BY HASH (license_id);
-- +goose StatementBegin
DO $$
BEGIN
  FOR i IN 0..15 LOOP
    EXECUTE format('CREATE TABLE activations_p%s PARTITION OF activations FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
  END LOOP;
END
$$;
-- +goose StatementEnd

CREATE TABLE idempotency_keys (
  brand_id        uuid NOT NULL REFERENCES brands(id),
  key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  fingerprint     bytea NOT NULL,
  state           text NOT NULL CHECK (state IN ('running', 'done')),
  response_status integer,
  response_body   bytea,
  created_at      timestamptz NOT NULL DEFAULT now(),
  locked_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (brand_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE audit_events (
  id             uuid PRIMARY KEY,
  brand_id       uuid NOT NULL,
  license_key_id uuid,
  license_id     uuid,
  action         text NOT NULL,
  actor          text NOT NULL,
  request_id     text NOT NULL DEFAULT '',
  at             timestamptz NOT NULL DEFAULT now(),
  before         jsonb,
  after          jsonb
);
CREATE INDEX audit_events_license ON audit_events (license_id, at, id);

-- +goose StatementBegin
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE outbox (
  id             bigserial PRIMARY KEY,
  brand_id       uuid NOT NULL,
  license_key_id uuid NOT NULL,
  version        bigint NOT NULL,
  subject        text NOT NULL,
  payload        jsonb NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  sent_at        timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('outbox', '');
  RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Row-level security: the second wall behind the code. Every transaction of the
-- application sets app.brand_id to the brand it acts for, or to 'all' for the operator
-- and the brand-resolution lookups.
-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['api_keys', 'products', 'license_keys', 'licenses', 'activations',
                           'idempotency_keys', 'audit_events', 'outbox'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY brand_scope ON %I
      USING (current_setting('app.brand_id', true) = 'all'
             OR brand_id::text = current_setting('app.brand_id', true))
      WITH CHECK (current_setting('app.brand_id', true) = 'all'
             OR brand_id::text = current_setting('app.brand_id', true))$p$, t);
  END LOOP;
END
$$;
-- +goose StatementEnd

GRANT SELECT, INSERT, UPDATE, DELETE ON brands, api_keys, products, license_keys, licenses,
  activations, idempotency_keys, outbox TO license_app;
GRANT SELECT, INSERT ON audit_events TO license_app;
GRANT USAGE ON SEQUENCE outbox_id_seq TO license_app;

-- +goose Down
DROP TABLE outbox, audit_events, idempotency_keys, activations, licenses, license_keys,
  products, api_keys, brands CASCADE;
DROP FUNCTION IF EXISTS audit_events_append_only, outbox_notify;
