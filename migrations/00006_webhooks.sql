-- +goose Up
-- Issue 10: webhooks (API.md "Webhooks"). The outbox row a change writes in its own
-- transaction is the event; a dispatcher turns committed outbox rows into one delivery row
-- per (event, endpoint) after commit, and River jobs (schema river, created by
-- rivermigrate right after these migrations) send them.

-- The dispatcher's mark. The activation transaction's INSERT is unchanged: the one partial
-- index that finds unsent rows now finds undispatched ones too (each reader repeats the
-- index predicate in its WHERE), so a change writes no more index entries than before.
ALTER TABLE outbox ADD COLUMN dispatched_at timestamptz;
UPDATE outbox SET dispatched_at = now(); -- no endpoint existed before this migration
DROP INDEX outbox_unsent;
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL OR dispatched_at IS NULL;

-- Each expiry of a license is recorded once (license.expired, API.md): the expires_at
-- value whose passing was last recorded. A renewal changes expires_at, so the next expiry
-- is due again. Licenses already expired are not announced retroactively.
ALTER TABLE licenses ADD COLUMN expiry_recorded_at timestamptz;
UPDATE licenses SET expiry_recorded_at = expires_at WHERE expires_at <= now();
CREATE INDEX licenses_expiry_due ON licenses (expires_at)
  WHERE status = 'valid' AND expires_at IS NOT NULL AND expiry_recorded_at IS DISTINCT FROM expires_at;

CREATE TABLE webhook_endpoints (
  id              uuid PRIMARY KEY,
  brand_id        uuid NOT NULL REFERENCES brands (id),
  url             text NOT NULL,
  events          text[] NOT NULL DEFAULT '{}',  -- empty: every type
  description     text NOT NULL DEFAULT '',
  status          text NOT NULL CHECK (status IN ('enabled', 'disabled')),
  -- why it is disabled: 'manual' (PATCH) or 'failing' (every delivery failed for 5 days)
  disabled_reason text CHECK ((status = 'disabled') = (disabled_reason IS NOT NULL)),
  -- secrets sealed with the deployment's webhook key (AES-256-GCM), never in plaintext;
  -- after a rotation the previous one signs too until previous_until
  secret          bytea NOT NULL,
  previous_secret bytea,
  previous_until  timestamptz,
  -- the first failure since the last success; NULL when the last delivery succeeded
  failing_since   timestamptz,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_brand ON webhook_endpoints (brand_id, id);

-- One row per event that had at least one subscribed endpoint: the body every delivery of
-- it sends, rendered once (the same bytes on every retry).
CREATE TABLE webhook_events (
  id         uuid PRIMARY KEY,
  brand_id   uuid NOT NULL,
  outbox_id  bigint UNIQUE, -- NULL for webhook.test
  type       text NOT NULL,
  body       bytea NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
  id              uuid PRIMARY KEY,
  brand_id        uuid NOT NULL,
  event_id        uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
  endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  type            text NOT NULL,
  status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempt         integer NOT NULL DEFAULT 0,
  response_status integer,
  error           text,
  next_attempt_at timestamptz,
  job_id          bigint,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  -- an event is in the log once per endpoint, whatever crashes and retries happen
  CONSTRAINT webhook_deliveries_once UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_events', 'webhook_deliveries'] LOOP
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

GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints, webhook_events, webhook_deliveries TO license_app;

-- River's own tables live in their own schema; rivermigrate fills it and the migration
-- step grants license_app what River needs there (migrations.Up).
CREATE SCHEMA IF NOT EXISTS river;
GRANT USAGE ON SCHEMA river TO license_app;

-- +goose Down
DROP TABLE webhook_deliveries, webhook_events, webhook_endpoints;
DROP INDEX licenses_expiry_due;
ALTER TABLE licenses DROP COLUMN expiry_recorded_at;
DROP INDEX outbox_pending;
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
ALTER TABLE outbox DROP COLUMN dispatched_at;
DROP SCHEMA river CASCADE;
