// Command hook-receiver is a minimal webhook endpoint for brand backends to copy: it
// verifies each delivery's Standard Webhooks signature with the specification's reference
// library (github.com/standard-webhooks/standard-webhooks/libraries/go), refuses anything
// unsigned, stale or tampered with 401, answers 204 quickly, recognises a webhook-id it
// already processed (delivery is at least once), and prints one line per delivery. `make
// up` runs it for the demo brand.
//
//	hook-receiver -addr 127.0.0.1:8090 -secret-file .data/local/webhook-secret
//
// The secret (whsec_...) is read from the file on every request, so a rotation only
// needs the file rewritten (during the 24 h overlap deliveries carry both signatures).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	addr := flag.String("addr", envOr("WEBHOOK_RECEIVER_ADDR", "127.0.0.1:8090"), "listen address (or WEBHOOK_RECEIVER_ADDR)")
	secretFile := flag.String("secret-file", os.Getenv("WEBHOOK_SECRET_FILE"), "file holding the endpoint's whsec_ secret (or WEBHOOK_SECRET_FILE; required)")
	flag.Parse()
	if *secretFile == "" {
		fmt.Fprintln(os.Stderr, "hook-receiver: -secret-file is required")
		os.Exit(2)
	}
	log.SetFlags(log.LstdFlags | log.LUTC)
	r := &receiver{secretFile: *secretFile, seen: map[string]bool{}}
	srv := &http.Server{Addr: *addr, Handler: r, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	log.Printf("hook-receiver listening on http://%s/", *addr)
	if err := srv.ListenAndServe(); err != nil {
		log.Fatal(err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type receiver struct {
	secretFile string
	mu         sync.Mutex
	seen       map[string]bool
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	secret, err := os.ReadFile(rc.secretFile)
	if err != nil {
		log.Printf("cannot read the secret: %v", err)
		http.Error(w, "not configured", http.StatusServiceUnavailable)
		return
	}
	wh, err := standardwebhooks.NewWebhook(strings.TrimSpace(string(secret)))
	if err != nil {
		log.Printf("bad secret in %s: %v", rc.secretFile, err)
		http.Error(w, "not configured", http.StatusServiceUnavailable)
		return
	}
	id := r.Header.Get("webhook-id")
	// Verify checks the signature over id.timestamp.body and refuses a timestamp more
	// than five minutes away (replays)
	if err := wh.Verify(body, r.Header); err != nil {
		log.Printf("REFUSED webhook-id=%q: %v", id, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	dup := rc.seen[id]
	rc.seen[id] = true
	rc.mu.Unlock()
	note := "verified"
	if dup {
		note = "verified, duplicate (already processed: ignored)"
	}
	log.Printf("%s %s webhook-id=%s signatures=%d data=%s", note, ev.Type, id,
		len(strings.Fields(r.Header.Get("webhook-signature"))), ev.Data)
	w.WriteHeader(http.StatusNoContent)
}
