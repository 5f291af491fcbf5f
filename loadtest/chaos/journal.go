package chaos

import (
	"bufio"
	"encoding/json"
	"os"
	"sync"
	"time"
)

// Entry is one request and its answer.
type Entry struct {
	Op      int64         `json:"op,omitempty"` // 0: a status check
	Kind    string        `json:"kind"`
	Attempt int           `json:"attempt,omitempty"`
	Target  string        `json:"target"`
	Start   time.Time     `json:"start"`
	Latency time.Duration `json:"latency_ns"`
	Status  int           `json:"status"` // 0: no answer
	Code    string        `json:"code,omitempty"`
	Err     string        `json:"err,omitempty"`
	Stale   bool          `json:"stale,omitempty"`
	// Version is the key version the answer carried (X-License-Version; 0: none).
	Version  int64  `json:"version,omitempty"`
	Failover bool   `json:"failover,omitempty"` // answered by another node than the first tried
	IdemKey  string `json:"idempotency_key,omitempty"`
	Key      string `json:"key,omitempty"`
	Product  string `json:"product,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// Op is one logical write, retried until it has a definitive answer.
type Op struct {
	ID        int64
	Kind      string // provision, activate, deactivate, suspend, resume, renew
	Key       string // license key (set once a provisioning is acknowledged)
	Product   string
	LicenseID string
	Instance  string
	IdemKey   string
	Email     string // provisioning: unique per op
	// Method, Path and Body are the request (replayed by the checker).
	Method, Path string
	Body         []byte
	Start        time.Time
	End          time.Time
	Attempts     int
	// Status and Code are the definitive answer (Status 0: never answered definitively).
	Status int
	Code   string
	// Keys are the license keys of every 2xx answer to a provisioning (they must agree).
	Keys []string
	// Licenses maps product to license id (provisioning).
	Licenses map[string]string
	// LicenseStatus is the license's status in a lifecycle answer.
	LicenseStatus string
	// Dev: the activated instance is a development instance as sent (API.md v1.1; the
	// harness's products keep the default settings); AnsweredDev is what a 2xx answer
	// said (activation.development).
	Dev, AnsweredDev bool
}

// Acked reports whether the op was acknowledged (2xx).
func (o *Op) Acked() bool { return o.Status >= 200 && o.Status < 300 }

// Journal holds every request, answer and op of a run.
type Journal struct {
	mu      sync.Mutex
	entries []Entry
	ops     []*Op
	nextOp  int64
}

func (j *Journal) add(e Entry) {
	j.mu.Lock()
	j.entries = append(j.entries, e)
	j.mu.Unlock()
}

func (j *Journal) newOp(o *Op) *Op {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.nextOp++
	o.ID = j.nextOp
	j.ops = append(j.ops, o)
	return o
}

// Entries returns the entries that started in [from, to).
func (j *Journal) Entries(from, to time.Time) []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Entry
	for _, e := range j.entries {
		if !e.Start.Before(from) && e.Start.Before(to) {
			out = append(out, e)
		}
	}
	return out
}

// Ops returns the ops so far (the slice is a copy; the ops are shared, read them after
// the load stopped).
func (j *Journal) Ops() []*Op {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]*Op(nil), j.ops...)
}

// WriteFile writes the entries as JSON lines.
func (j *Journal) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	j.mu.Lock()
	for _, e := range j.entries {
		if err := enc.Encode(e); err != nil {
			j.mu.Unlock()
			f.Close()
			return err
		}
	}
	j.mu.Unlock()
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
