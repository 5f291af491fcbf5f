-- Removes the data of seeded brands whose slug starts with :'prefix' (psql variable), e.g.
--   psql -h 127.0.0.1 -p 15432 -U postgres licensing -v prefix=lt- -f loadtest/purge.sql
-- Run as the superuser. audit_events rows stay: the table is append-only by design
-- (its triggers refuse DELETE), so the audit trail of purged brands remains.
\set ON_ERROR_STOP on
BEGIN;
SET LOCAL session_replication_role = replica; -- skip per-row FK checks; we delete children first
CREATE TEMP TABLE purge_brands ON COMMIT DROP AS
  SELECT id FROM brands WHERE slug LIKE :'prefix' || '%';
SELECT count(*) AS brands_to_purge FROM purge_brands;
DELETE FROM activations WHERE brand_id IN (SELECT id FROM purge_brands);
DELETE FROM outbox WHERE brand_id IN (SELECT id FROM purge_brands);
DELETE FROM idempotency_keys WHERE brand_id IN (SELECT id FROM purge_brands);
DELETE FROM licenses WHERE brand_id IN (SELECT id FROM purge_brands);
DELETE FROM license_keys WHERE brand_id IN (SELECT id FROM purge_brands);
DELETE FROM products WHERE brand_id IN (SELECT id FROM purge_brands);
DELETE FROM api_keys WHERE brand_id IN (SELECT id FROM purge_brands);
DELETE FROM brands WHERE id IN (SELECT id FROM purge_brands);
COMMIT;
VACUUM ANALYZE activations, licenses, license_keys, outbox;
