// Package chaos is the project's fault-injection harness (`make chaos`; a shortened run
// is part of `make test`). It starts a whole topology of real processes — Postgres primary
// and streaming replica, Redis, NATS with JetStream, two writers, two edges — runs a load
// that journals every request and answer (brand backends provisioning keys and changing
// licenses on the writers with an Idempotency-Key on every write, plugins activating,
// deactivating and checking status through the edges, every unanswered request retried),
// injects one fault per scenario (kill -9, SIGSTOP, a stop, a crash of a process), and
// afterwards checks the invariants against Postgres, the JetStream stream and the edges:
//
//   - every write got a definitive answer after its retries;
//   - one key per Idempotency-Key, the acknowledged key is the stored one, a replay
//     answers it again;
//   - every acknowledged activation, deactivation and lifecycle change is in Postgres;
//   - seats_used equals the activation rows of every license; no orphan rows, no
//     idempotency claim left running;
//   - every key's versions are 1..n in the outbox with no gap, and every outbox row is in
//     the stream exactly once;
//   - both edges answer what the primary says for every key touched;
//   - an acknowledged key is never answered 404, and status checks stay available
//     before, during (per scenario) and after the fault.
//
// It prints a table per scenario and fails on any violation. The topology (Topology,
// Proc) and the load (Load, Journal) are reusable building blocks: the multi-region
// simulation starts more of them.
package chaos
