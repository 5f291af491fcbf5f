-- +goose Up
-- Issue 9, least privilege: edges connect as license_edge, which can read exactly what a
-- status check reads (internal/statusread StateQuery and InstanceQuery, and the brand
-- look-up by slug of edge/replica) and nothing else: no INSERT, UPDATE, DELETE or TRUNCATE
-- anywhere, no column the status check does not name (customer e-mails, API-key hashes,
-- idempotency records, audit and outbox rows stay unreadable), no seat function.
--
-- Roles are cluster-wide and created without a password: deployments set passwords
-- themselves (deploy/local/services.sh, the chaos harness, deploy/compose, and in
-- production from the secret manager right after the first `writer migrate`; README).
-- Migrations run in several databases of one cluster at once (every test gets a fresh
-- database), so a concurrent creation of the role is not an error.
-- +goose StatementBegin
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'license_edge') THEN
    CREATE ROLE license_edge LOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL; -- created meanwhile by a migration of another database
END
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA public TO license_edge;
-- brands: the slug → id look-up that scopes every read (set_config('app.brand_id'))
GRANT SELECT (id, slug) ON brands TO license_edge;
GRANT SELECT (id, brand_id, key, version) ON license_keys TO license_edge;
GRANT SELECT (id, brand_id, license_key_id, product_id, status, expires_at, seat_limit, seats_used)
  ON licenses TO license_edge;
GRANT SELECT (id, code) ON products TO license_edge;
-- the partitioned parent only: reads through it reach the partitions, the partitions
-- themselves stay closed
GRANT SELECT (brand_id, license_id, instance, version) ON activations TO license_edge;
-- The queries call no function of this schema (set_config, coalesce, max and array_agg
-- are built in), so license_edge gets EXECUTE on none. Functions are executable by PUBLIC
-- by default: the seat statements, their helpers and the trigger functions become
-- license_app's alone.
REVOKE EXECUTE ON FUNCTION license_activate, license_deactivate, seat_change, rfc3339,
  license_state_json, license_resource_json, activation_json, audit_events_append_only,
  outbox_notify FROM PUBLIC;
GRANT EXECUTE ON FUNCTION license_activate, license_deactivate, seat_change, rfc3339,
  license_state_json, license_resource_json, activation_json, audit_events_append_only,
  outbox_notify TO license_app;

-- Row-level security: the brand_scope policies of 00001 apply to PUBLIC, so to
-- license_edge as to license_app. An edge reads for one brand at a time and never needs
-- the operator's app.brand_id = 'all': for it, a row is visible only under its own brand.
-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['products', 'license_keys', 'licenses', 'activations'] LOOP
    EXECUTE format($p$CREATE POLICY edge_one_brand ON %I AS RESTRICTIVE FOR SELECT TO license_edge
      USING (brand_id::text = current_setting('app.brand_id', true))$p$, t);
  END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- The role itself stays: it is cluster-wide, and other databases may hold grants to it.
DROP POLICY edge_one_brand ON products;
DROP POLICY edge_one_brand ON license_keys;
DROP POLICY edge_one_brand ON licenses;
DROP POLICY edge_one_brand ON activations;
GRANT EXECUTE ON FUNCTION license_activate, license_deactivate, seat_change, rfc3339,
  license_state_json, license_resource_json, activation_json, audit_events_append_only,
  outbox_notify TO PUBLIC;
REVOKE EXECUTE ON FUNCTION license_activate, license_deactivate, seat_change, rfc3339,
  license_state_json, license_resource_json, activation_json, audit_events_append_only,
  outbox_notify FROM license_app;
REVOKE SELECT ON brands, license_keys, licenses, products, activations FROM license_edge;
REVOKE USAGE ON SCHEMA public FROM license_edge;
