-- +goose Up
-- Issue 9. A brand's own rate limit (API.md "Rate limits": PATCH /v1/brands/{slug}); NULL
-- for both columns is the deployment's default.
ALTER TABLE brands
  ADD COLUMN rate_per_second integer,
  ADD COLUMN rate_burst integer,
  ADD CONSTRAINT brands_rate_limit CHECK (
    (rate_per_second IS NULL) = (rate_burst IS NULL)
    AND coalesce(rate_per_second, 1) BETWEEN 1 AND 1000000
    AND coalesce(rate_burst, 1) BETWEEN 1 AND 1000000);

-- The key that seals pagination cursors (AES-256-GCM), shared by every writer so that a
-- cursor one writer issued opens on another. Made here, at random, once per database; it
-- never leaves Postgres except into the writers' memory.
CREATE TABLE cursor_key (
  id  smallint PRIMARY KEY CHECK (id = 1),
  key bytea NOT NULL CHECK (length(key) = 32)
);
INSERT INTO cursor_key (id, key) VALUES (1, decode(
  replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''), 'hex'));
GRANT SELECT ON cursor_key TO license_app;

-- +goose Down
DROP TABLE cursor_key;
ALTER TABLE brands DROP CONSTRAINT brands_rate_limit, DROP COLUMN rate_per_second, DROP COLUMN rate_burst;
