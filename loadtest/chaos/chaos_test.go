package chaos

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/internal/dbtest"
)

// TestShortChaos is the shortened harness of `make test`: writers, edges, Redis and NATS
// of its own (on the test services' Postgres primary and replica, in a fresh database),
// a kill -9 of a writer twice and a Redis outage under load, every invariant checked.
func TestShortChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a topology of real processes and runs load for about a minute (-short)")
	}
	primary := dbtest.Env(t, dbtest.EnvPG)
	replica := dbtest.Env(t, dbtest.EnvReplica)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	topo, err := Start(ctx, Config{Dir: t.TempDir(), BasePort: 29400, ExternalPG: &ExternalPG{primary, replica}, Race: raceEnabled, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	var last *Report
	for _, s := range Short() {
		rep := RunScenario(ctx, topo, s, LoadConfig{}, t.Logf)
		last = rep
		t.Log("\n" + rep.Table())
		if !rep.OK() {
			t.Errorf("scenario %s failed (table above)", s.Name)
		}
		for _, p := range rep.Phases {
			if p.Checks == 0 || p.Writes == 0 {
				t.Errorf("%s %s: %d status checks, %d writes: the load did not run", s.Name, p.Phase, p.Checks, p.Writes)
			}
		}
	}
	t.Run("checker catches violations", func(t *testing.T) { checkerCatches(t, ctx, topo, last.ops) })
	races, err := topo.RaceReports()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range races {
		t.Errorf("data race in a process of the topology:\n%s", r)
	}
}

// checkerCatches corrupts what the scenario left behind, one way per check, through the
// superuser (past every rule of the service), and asserts that the check fails.
func checkerCatches(t *testing.T, ctx context.Context, topo *Topology, ops []*Op) {
	db, err := pgx.Connect(ctx, topo.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	c := NewChecker(topo)
	c.Converge = 2 * time.Second
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var prov *Op
	for _, o := range ops {
		if o.Kind == "provision" && o.Acked() {
			prov = o
			break
		}
	}
	if prov == nil {
		t.Fatal("the load made no acknowledged provisioning")
	}
	expectFail := func(what string, ch Check) {
		t.Helper()
		if ch.OK() {
			t.Errorf("%s: check %q did not notice", what, ch.Name)
		}
	}
	// a second key stored for one Idempotency-Key
	exec(`INSERT INTO license_keys (id, brand_id, key, customer_email, version)
		SELECT gen_random_uuid(), brand_id, key || 'X', customer_email, 1 FROM license_keys WHERE key = $1`, prov.Key)
	expectFail("duplicate key", c.provisioning(ctx, db, ops))
	expectFail("a key without licenses", c.orphans(ctx, db))
	expectFail("a key without outbox rows", c.events(ctx, db)[0])
	exec(`DELETE FROM license_keys WHERE key = $1`, prov.Key+"X")

	// an activation the answers vouch for removed, or one they deny added, behind the
	// service's back
	states, _ := activationStates(ops)
	var p pair
	var st actState
	for p, st = range states {
		if st.known {
			break
		}
	}
	if st.active {
		exec(`DELETE FROM activations WHERE license_id = $1 AND instance = $2`, p.license, p.instance)
	} else {
		exec(`INSERT INTO activations (id, brand_id, license_id, instance) SELECT gen_random_uuid(), brand_id, id, $2 FROM licenses WHERE id = $1`,
			p.license, p.instance)
	}
	expectFail("an acknowledged activation lost (or a deactivation undone)", c.activations(ctx, db, ops))
	expectFail("seats_used no longer matching", c.seats(ctx, db))

	// a version without its outbox row, and an outbox row never published
	exec(`UPDATE license_keys SET version = version + 1 WHERE key = $1`, prov.Key)
	expectFail("a version gap", c.events(ctx, db)[0])
	exec(`INSERT INTO outbox (brand_id, license_key_id, version, subject, payload, sent_at)
		SELECT brand_id, id, version, 'license.events.x', '{}', now() FROM license_keys WHERE key = $1`, prov.Key)
	expectFail("an outbox row missing from the stream", c.events(ctx, db)[1])

	// an edge that answers differently from the primary: the primary changed behind the
	// service's back (no event), so the edges keep their answer
	exec(`UPDATE licenses SET status = CASE status WHEN 'valid' THEN 'suspended' ELSE 'valid' END WHERE license_key_id =
		(SELECT id FROM license_keys WHERE key = $1)`, prov.Key)
	expectFail("an edge differing from Postgres", c.edges(ctx, []*Op{prov}))
}

// TestRaceReportsFindsEveryReport: the reports a race-built writer or edge printed into
// its log are found, one per report, named by the process.
func TestRaceReportsFindsEveryReport(t *testing.T) {
	dir := t.TempDir()
	report := "==================\nWARNING: DATA RACE\nWrite at 0x00c000 by goroutine 7:\n  main.f()\n==================\n"
	logs := map[string]string{
		"writer-1": "{\"msg\":\"listening\"}\n" + report + "{\"msg\":\"x\"}\n" + report,
		"edge-1":   "{\"msg\":\"listening\"}\n",
	}
	topo := &Topology{}
	for name, body := range logs {
		p := &Proc{Name: name, Log: filepath.Join(dir, name+".log")}
		if err := os.WriteFile(p.Log, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(name, "writer") {
			topo.Writers = append(topo.Writers, p)
		} else {
			topo.Edges = append(topo.Edges, p)
		}
	}
	topo.Edges = append(topo.Edges, &Proc{Name: "edge-2", Log: filepath.Join(dir, "never-started.log")})
	got, err := topo.RaceReports()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "writer-1: WARNING: DATA RACE\nWrite at") || strings.Contains(got[0], "=====") {
		t.Fatalf("reports %q", got)
	}
}
