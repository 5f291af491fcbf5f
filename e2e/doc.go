// Package e2e holds end-to-end tests across binaries: a writer (writer/app) and edge
// nodes (edge/app) started in-process over real Postgres (primary and streaming
// replicas), Redis and NATS JetStream. It has no code outside its tests.
package e2e
