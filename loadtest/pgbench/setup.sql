-- Prepares the pgbench baselines on a seeded database (run as the superuser; bench.sh does).
-- Nothing here touches the application schema: the helper tables live in schema loadtest.
CREATE SCHEMA IF NOT EXISTS loadtest;
GRANT USAGE ON SCHEMA loadtest TO license_app;

-- Licenses the activation script takes seats on: valid, unlimited, not expiring soon —
-- the same kind of licenses as the harness's writer_distinct scenario, and like its
-- manifest sample drawn at random from the whole table (the first rows in table order are
-- the oldest licenses, whose pages sit together: pgbench would get a locality the writer's
-- uniformly sampled licenses do not have).
DROP TABLE IF EXISTS loadtest.pgbench_targets;
CREATE TABLE loadtest.pgbench_targets AS
  SELECT (row_number() OVER ())::int AS n, key_id, license_id, brand_id FROM (
    SELECT license_key_id AS key_id, id AS license_id, brand_id
    FROM licenses
    WHERE seat_limit IS NULL AND status = 'valid' AND (expires_at IS NULL OR expires_at > now() + interval '1 day')
    ORDER BY random() LIMIT 10000) t;
ALTER TABLE loadtest.pgbench_targets ADD PRIMARY KEY (n);
GRANT SELECT ON loadtest.pgbench_targets TO license_app;

-- One row for the pure conditional-update ceiling.
CREATE TABLE IF NOT EXISTS loadtest.hot (id int PRIMARY KEY, n bigint NOT NULL);
INSERT INTO loadtest.hot VALUES (1, 0) ON CONFLICT DO NOTHING;
GRANT SELECT, UPDATE ON loadtest.hot TO license_app;

SELECT count(*) AS pgbench_targets FROM loadtest.pgbench_targets;
