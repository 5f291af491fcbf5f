package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/shared/resource"
)

// Config describes the topology the harness starts: Postgres primary and streaming
// replica, Redis, NATS with JetStream, writers and edges, all on loopback under Dir, on
// ports counted from BasePort, each a process the harness can kill, pause or stop.
type Config struct {
	// Dir holds binaries, data and logs (created; reused runs start afresh).
	Dir string
	// BasePort: primary +0, replica +1, Redis +2, NATS +3, writers +10.., edges +20..
	BasePort int
	Writers  int
	Edges    int
	// ExternalPG, when set, is used instead of a Postgres cluster of the harness' own: a
	// fresh database is created on that primary (and read through its replica). Faults on
	// Postgres are then refused.
	ExternalPG *ExternalPG
	// Bin holds prebuilt writer and edge binaries (default: built into Dir/bin).
	Bin string
	// Race builds the writer and edge with the race detector (not with Bin): a race they
	// report goes to their logs, where RaceReports finds it.
	Race bool
	// WriterEnv and EdgeEnv are added to every writer's and edge's environment.
	WriterEnv, EdgeEnv []string
	// Logf reports progress (default: discard).
	Logf func(format string, args ...any)
}

// ExternalPG names an existing Postgres primary and its streaming replica (superuser URLs).
type ExternalPG struct{ PrimaryURL, ReplicaURL string }

// Topology is a running topology.
type Topology struct {
	cfg Config

	Primary, Replica *Proc // nil with ExternalPG
	Redis, NATS      *Proc
	Writers, Edges   []*Proc

	// AdminURL, AppURL and EdgeURL reach the licensing database on the primary as the
	// superuser, as license_app (the writers) and as license_edge (the edges);
	// ReplicaEdgeURL the same database on the replica as license_edge.
	AdminURL, AppURL, EdgeURL, ReplicaEdgeURL string
	RedisAddr, NATSURL                        string
	WriterURLs, EdgeURLs                      []string

	OperatorToken string
	Brand         string // slug of the brand the load uses
	APIKey        string
	Products      []string

	pgBin    string
	pgCred   *syscall.Credential
	pgBase   string
	dropDB   func()
	ownsPG   bool
	httpc    *http.Client
	repoRoot string
}

// Start builds the binaries (unless cfg.Bin) and starts every component, then creates the
// brand and products the load uses.
func Start(ctx context.Context, cfg Config) (t *Topology, err error) {
	if cfg.Writers <= 0 {
		cfg.Writers = 2
	}
	if cfg.Edges <= 0 {
		cfg.Edges = 2
	}
	if cfg.BasePort == 0 {
		cfg.BasePort = 35400
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	t = &Topology{cfg: cfg, httpc: &http.Client{Timeout: 10 * time.Second}}
	started := t // t is nil on an error return
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	// a fresh start: data of an earlier run would mix with this one's checks
	for _, d := range []string{"redis", "nats", "logs"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if t.repoRoot, err = RepoRoot(); err != nil {
		return nil, err
	}
	if cfg.Bin == "" {
		cfg.Bin = filepath.Join(dir, "bin")
		t.cfg.Bin = cfg.Bin
		for _, b := range []string{"writer", "edge"} {
			cfg.Logf("building %s", b)
			args := []string{"build", "-o", filepath.Join(cfg.Bin, b)}
			if cfg.Race {
				args = append(args, "-race")
			}
			cmd := exec.CommandContext(ctx, "go", append(args, "./"+b+"/cmd/"+b)...)
			cmd.Dir = t.repoRoot
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("go build %s: %w\n%s", b, err, out)
			}
		}
	}

	if cfg.ExternalPG != nil {
		if err := t.externalDB(ctx); err != nil {
			return nil, err
		}
	} else if err := t.startPostgres(ctx); err != nil {
		return nil, err
	}

	t.RedisAddr = fmt.Sprintf("127.0.0.1:%d", cfg.BasePort+2)
	t.Redis = &Proc{Name: "redis", Path: "redis-server", Log: t.logPath("redis"),
		Args: []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(cfg.BasePort + 2), "--save", "", "--appendonly", "no",
			"--dir", filepath.Join(dir, "redis")},
		Ready: TCPReady(t.RedisAddr)}
	natsPort := cfg.BasePort + 3
	t.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	t.NATS = &Proc{Name: "nats", Path: "nats-server", Log: t.logPath("nats"),
		Args:  []string{"-a", "127.0.0.1", "-p", strconv.Itoa(natsPort), "-js", "-sd", filepath.Join(dir, "nats")},
		Ready: TCPReady(fmt.Sprintf("127.0.0.1:%d", natsPort))}
	for _, p := range []*Proc{t.Redis, t.NATS} {
		if err := p.Start(ctx); err != nil {
			return nil, err
		}
	}

	cfg.Logf("migrating")
	if err := RunAs(ctx, nil, []string{"WRITER_MIGRATE_DATABASE_URL=" + t.AdminURL, "WRITER_DATABASE_URL=" + t.AppURL},
		filepath.Join(cfg.Bin, "writer"), "migrate"); err != nil {
		return nil, err
	}
	if t.ownsPG {
		// the migration creates the roles without passwords; a shared cluster
		// (ExternalPG) has its own
		if err := SetPasswords(ctx, t.AdminURL); err != nil {
			return nil, err
		}
	}
	t.OperatorToken = "chaos-operator-" + strconv.Itoa(os.Getpid())
	for i := range cfg.Writers {
		addr := fmt.Sprintf("127.0.0.1:%d", cfg.BasePort+10+i)
		u := "http://" + addr
		t.WriterURLs = append(t.WriterURLs, u)
		t.Writers = append(t.Writers, &Proc{Name: fmt.Sprintf("writer-%d", i+1), Path: filepath.Join(cfg.Bin, "writer"),
			Log: t.logPath(fmt.Sprintf("writer-%d", i+1)),
			Env: append([]string{"WRITER_ADDR=" + addr, "WRITER_DATABASE_URL=" + t.AppURL, "WRITER_NATS_URL=" + t.NATSURL,
				"WRITER_OPERATOR_TOKEN=" + t.OperatorToken, "WRITER_SHUTDOWN_TIMEOUT=5s",
				// the harness loads the topology from one address: it measures the service,
				// not the limiter (API.md: every load tool runs with limits off or spreads)
				"WRITER_RATE_LIMITS=off"}, cfg.WriterEnv...),
			Ready: HTTPReady(t.httpc, u)})
	}
	for i := range cfg.Edges {
		addr := fmt.Sprintf("127.0.0.1:%d", cfg.BasePort+20+i)
		u := "http://" + addr
		t.EdgeURLs = append(t.EdgeURLs, u)
		t.Edges = append(t.Edges, &Proc{Name: fmt.Sprintf("edge-%d", i+1), Path: filepath.Join(cfg.Bin, "edge"),
			Log: t.logPath(fmt.Sprintf("edge-%d", i+1)),
			Env: append([]string{"EDGE_ADDR=" + addr, fmt.Sprintf("EDGE_NODE_ID=edge-%d", i+1),
				"EDGE_REPLICA_URL=" + t.ReplicaEdgeURL, "EDGE_PRIMARY_URL=" + t.EdgeURL, "EDGE_REDIS_ADDR=" + t.RedisAddr,
				"EDGE_NATS_URL=" + t.NATSURL, "EDGE_WRITER_URL=" + strings.Join(t.WriterURLs, ","),
				"EDGE_SHUTDOWN_TIMEOUT=5s", "EDGE_RATE_LIMITS=off"}, cfg.EdgeEnv...),
			Ready: HTTPReady(t.httpc, u)})
	}
	cfg.Logf("rate limits OFF on every writer and edge (the harness loads from one address)")
	for _, p := range append(append([]*Proc{}, t.Writers...), t.Edges...) {
		cfg.Logf("starting %s", p.Name)
		if err := p.Start(ctx); err != nil {
			return nil, err
		}
	}
	if err := t.brand(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Topology) logPath(name string) string { return filepath.Join(t.cfg.Dir, "logs", name+".log") }

// Dir is the topology's folder.
func (t *Topology) Dir() string { return t.cfg.Dir }

// RaceReports returns the data race reports in the writers' and edges' logs (with
// Config.Race), each as the log's name and the report's first lines.
func (t *Topology) RaceReports() ([]string, error) {
	var out []string
	for _, p := range append(append([]*Proc(nil), t.Writers...), t.Edges...) {
		b, err := os.ReadFile(p.Log)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		rest := string(b)
		for {
			i := strings.Index(rest, "WARNING: DATA RACE")
			if i < 0 {
				break
			}
			rest = rest[i:]
			report := rest
			if end := strings.Index(rest, "\n==================\n"); end >= 0 {
				report = rest[:end]
			}
			out = append(out, p.Name+": "+report)
			rest = rest[len("WARNING: DATA RACE"):]
		}
	}
	return out, nil
}

// OwnsPostgres reports whether the harness started Postgres (and may fault it).
func (t *Topology) OwnsPostgres() bool { return t.ownsPG }

// Procs lists every process of the topology.
func (t *Topology) Procs() []*Proc {
	var ps []*Proc
	for _, p := range []*Proc{t.Primary, t.Replica, t.Redis, t.NATS} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return append(append(ps, t.Writers...), t.Edges...)
}

// Close stops everything (edges and writers first) and drops an external database.
func (t *Topology) Close() {
	for _, group := range [][]*Proc{t.Edges, t.Writers, {t.NATS, t.Redis}, {t.Replica}, {t.Primary}} {
		for _, p := range group {
			if p != nil {
				_ = p.Resume()
				_ = p.Stop(15 * time.Second)
			}
		}
	}
	if t.dropDB != nil {
		t.dropDB()
	}
}

// EnsureUp starts every process that is not running (after a scenario) and waits until
// each is ready.
func (t *Topology) EnsureUp(ctx context.Context) error {
	for _, p := range t.Procs() {
		_ = p.Resume()
		if !p.Running() {
			if err := p.Start(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// Restart ends p with SIGKILL and starts it again.
func (t *Topology) Restart(ctx context.Context, p *Proc) error {
	if err := p.Kill(); err != nil {
		return err
	}
	return p.Start(ctx)
}

// Metric reads an unlabelled metric (or the sum over a metric's series whose labels
// contain every one of match) from a writer's or edge's /metrics.
func (t *Topology) Metric(ctx context.Context, base, name string, match ...string) (float64, error) {
	return Metric(ctx, t.httpc, base, name, match...)
}

// Metric reads an unlabelled metric (or the sum over a metric's series whose labels
// contain every one of match) from base's /metrics (loadtest/sim uses it too).
func Metric(ctx context.Context, hc *http.Client, base, name string, match ...string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name) || len(line) <= len(name) || (line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("%s: no metric %s %v", base, name, match)
	}
	return sum, nil
}

// Leader returns the index of the writer leading the outbox relay (-1: none, or more than
// one claims it).
func (t *Topology) Leader(ctx context.Context) int {
	leader := -1
	for i, u := range t.WriterURLs {
		if !t.Writers[i].Running() {
			continue
		}
		v, err := t.Metric(ctx, u, "license_outbox_relay_leading")
		if err == nil && v == 1 {
			if leader >= 0 {
				return -1
			}
			leader = i
		}
	}
	return leader
}

// LeaseHolder names the relay holding the outbox lease.
func (t *Topology) LeaseHolder(ctx context.Context) (string, error) {
	c, err := pgx.Connect(ctx, t.AdminURL)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var h string
	err = c.QueryRow(ctx, `SELECT holder FROM leases WHERE name = 'outbox-relay'`).Scan(&h)
	return h, err
}

// ------------------------------------------------------------------- Postgres

func (t *Topology) externalDB(ctx context.Context) error {
	name := fmt.Sprintf("chaos_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	c, err := pgx.Connect(ctx, t.cfg.ExternalPG.PrimaryURL)
	if err != nil {
		return fmt.Errorf("external postgres: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return err
	}
	primary := t.cfg.ExternalPG.PrimaryURL
	t.dropDB = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, primary); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	if t.AdminURL, err = withDB(primary, name, ""); err != nil {
		return err
	}
	if t.AppURL, err = withDB(primary, name, "license_app"); err != nil {
		return err
	}
	if t.EdgeURL, err = withDB(primary, name, "license_edge"); err != nil {
		return err
	}
	t.ReplicaEdgeURL, err = withDB(t.cfg.ExternalPG.ReplicaURL, name, "license_edge")
	return err
}

// setPasswords gives the roles the migration created (without passwords) this
// topology's passwords, as the superuser: each role's name, like the local topology's.
func withDB(base, db, user string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	if user != "" {
		u.User = url.UserPassword(user, user)
	}
	return u.String(), nil
}

func (t *Topology) startPostgres(ctx context.Context) error {
	var err error
	if t.pgBin, err = PGBinDir(); err != nil {
		return err
	}
	t.ownsPG = true
	if t.pgBase, t.pgCred, err = PGBase(ctx, t.cfg.Dir, "chaos"); err != nil {
		return err
	}
	primaryDir, replicaDir := filepath.Join(t.pgBase, "primary"), filepath.Join(t.pgBase, "replica")
	pPort, rPort := t.cfg.BasePort, t.cfg.BasePort+1
	t.cfg.Logf("initdb %s", primaryDir)
	if err := InitPrimary(ctx, t.pgBin, primaryDir, pPort, t.pgCred, "256MB"); err != nil {
		return err
	}
	super := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pPort)
	t.Primary = &Proc{Name: "postgres-primary", Path: filepath.Join(t.pgBin, "postgres"), Args: []string{"-D", primaryDir},
		Cred: t.pgCred, Log: t.logPath("postgres-primary"), StopSignal: syscall.SIGINT, Ready: PGReady(super)}
	if err := t.Primary.Start(ctx); err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, super)
	if err != nil {
		return err
	}
	_, err = c.Exec(ctx, "CREATE DATABASE licensing")
	c.Close(ctx)
	if err != nil {
		return err
	}
	t.cfg.Logf("pg_basebackup %s", replicaDir)
	if err := RunAs(ctx, t.pgCred, nil, filepath.Join(t.pgBin, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(pPort),
		"-U", "postgres", "-D", replicaDir, "-R", "-X", "stream", "-C", "-S", "chaos_replica", "-c", "fast"); err != nil {
		return err
	}
	if err := AppendFile(filepath.Join(replicaDir, "postgresql.conf"), fmt.Sprintf("\nport = %d\n", rPort)); err != nil {
		return err
	}
	t.Replica = &Proc{Name: "postgres-replica", Path: filepath.Join(t.pgBin, "postgres"), Args: []string{"-D", replicaDir},
		Cred: t.pgCred, Log: t.logPath("postgres-replica"), StopSignal: syscall.SIGINT,
		Ready: PGReady(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/licensing?sslmode=disable", rPort))}
	if err := t.Replica.Start(ctx); err != nil {
		return err
	}
	t.AdminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/licensing?sslmode=disable", pPort)
	t.AppURL = fmt.Sprintf("postgres://license_app:license_app@127.0.0.1:%d/licensing?sslmode=disable", pPort)
	t.EdgeURL = fmt.Sprintf("postgres://license_edge:license_edge@127.0.0.1:%d/licensing?sslmode=disable", pPort)
	t.ReplicaEdgeURL = fmt.Sprintf("postgres://license_edge:license_edge@127.0.0.1:%d/licensing?sslmode=disable", rPort)
	return nil
}

// ------------------------------------------------------------------- readiness

// TCPReady is a Proc.Ready check: addr accepts a TCP connection (loadtest/sim uses it too).
func TCPReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// PGReady is a Proc.Ready check: Postgres at u answers a ping.
func PGReady(u string) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		return c.Ping(ctx)
	}
}

// HTTPReady is a Proc.Ready check: a writer's or an edge's /readyz at base answers 200.
func HTTPReady(hc *http.Client, base string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/readyz", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	}
}

// ------------------------------------------------------------------- brand

// brand creates the brand (operator API) and its products.
func (t *Topology) brand(ctx context.Context) error {
	t.Brand = "chaos"
	var created resource.BrandCreated
	if err := t.call(ctx, t.WriterURLs[0], "POST", "/v1/brands", "Bearer "+t.OperatorToken,
		map[string]string{"slug": t.Brand, "name": "Chaos"}, 201, &created); err != nil {
		return err
	}
	t.APIKey = created.APIKey.Secret
	t.Products = []string{"pro", "addon"}
	for _, p := range t.Products {
		if err := t.call(ctx, t.WriterURLs[0], "POST", "/v1/products", "Bearer "+t.APIKey,
			map[string]string{"code": p, "name": p}, 201, nil); err != nil {
			return err
		}
	}
	return nil
}

func (t *Topology) call(ctx context.Context, base, method, path, auth string, body any, want int, out any) error {
	return CallJSON(ctx, t.httpc, base, method, path, auth, body, want, out)
}

// CallJSON sends body as JSON to base+path (with auth as the Authorization header when
// set), expects the status want and decodes the answer into out (when not nil).
func CallJSON(ctx context.Context, hc *http.Client, base, method, path, auth string, body any, want int, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(b))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, rb)
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

// RepoRoot finds the module root (the folder with go.mod) from the working directory.
func RepoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("go.mod not found above the working directory")
		}
		d = parent
	}
}
