-- The minimal activation transaction, as the writer's (writer/licensing Activate), run as
-- license_app under row-level security: scope the transaction to the brand, lock the key
-- row, conditionally take a seat, insert the activation, bump the key version, insert the
-- outbox row (marked sent: there is no relay in this baseline). What the writer does on top:
-- HTTP and JSON, the brand and license reads, the instance look-up, the audit row.
-- Variables: ntargets (1 = every transaction on one hot license).
-- Needs -M extended or -M prepared (variables become bind parameters).
\set n random(1, :ntargets)
BEGIN;
SELECT key_id, license_id, brand_id FROM loadtest.pgbench_targets WHERE n = :n \gset
SELECT set_config('app.brand_id', :brand_id, true);
SELECT version FROM license_keys WHERE id = :key_id FOR UPDATE;
UPDATE licenses SET seats_used = seats_used + 1, updated_at = now()
  WHERE id = :license_id AND (seat_limit IS NULL OR seats_used < seat_limit);
INSERT INTO activations (id, brand_id, license_id, instance)
  VALUES (gen_random_uuid(), :brand_id, :license_id, 'pgbench-' || :client_id || '-' || md5(random()::text));
UPDATE license_keys SET version = version + 1, updated_at = now() WHERE id = :key_id;
INSERT INTO outbox (brand_id, license_key_id, version, subject, payload, sent_at, dispatched_at)
  VALUES (:brand_id, :key_id, 0, 'pgbench', '{}', now(), now());
END;
