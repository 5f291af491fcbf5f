-- +goose Up
-- Issue 8: idempotency claims and the outbox relay's leadership become leases that a live
-- writer renews (every second) and another takes over after a few seconds without renewal,
-- with fenced completion: a writer that was paused (SIGSTOP, a long GC, a stalled VM) and
-- wakes up can neither complete a claim nor publish as a leader it no longer holds.
-- Session-bound locks (the advisory lock the relay used) are not enough: a paused process
-- keeps its Postgres sessions.

ALTER TABLE idempotency_keys ADD COLUMN claim_token uuid;
ALTER TABLE idempotency_keys ADD COLUMN renewed_at timestamptz;
UPDATE idempotency_keys SET claim_token = gen_random_uuid(), renewed_at = locked_at;
ALTER TABLE idempotency_keys ALTER COLUMN claim_token SET NOT NULL;
ALTER TABLE idempotency_keys ALTER COLUMN renewed_at SET NOT NULL;

-- One row per lease. The holder renews renewed_at with the token it got; every write a
-- leader makes as leader is fenced by that token.
CREATE TABLE leases (
  name       text PRIMARY KEY,
  holder     text NOT NULL,
  token      uuid NOT NULL,
  renewed_at timestamptz NOT NULL
);
INSERT INTO leases (name, holder, token, renewed_at) VALUES ('outbox-relay', '', gen_random_uuid(), '-infinity');
GRANT SELECT, UPDATE ON leases TO license_app;

-- +goose Down
DROP TABLE leases;
ALTER TABLE idempotency_keys DROP COLUMN claim_token, DROP COLUMN renewed_at;
