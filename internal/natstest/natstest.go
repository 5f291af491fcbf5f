// Package natstest runs a real NATS server with JetStream in the test process, on a random
// port, with its store in a temporary folder; it can be stopped and started again on the
// same port and store to test reconnection and redelivery.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is an in-process NATS server.
type Server struct {
	opts server.Options
	srv  *server.Server
}

// Start runs a JetStream-enabled server and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{opts: server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	}}
	s.Restart(t)
	// keep the port it got, so a restart comes back at the same address
	s.opts.Port = s.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(s.Stop)
	return s
}

// URL is the client URL.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Stop shuts the server down (idempotent).
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Restart starts the server (again) with the same port and store; a failure fails t,
// the caller's test.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	srv, err := server.NewServer(&s.opts)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("natstest: server not ready")
	}
	s.srv = srv
}
