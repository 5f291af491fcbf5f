package sim

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/licensing/licensing/loadtest/chaos"
	"github.com/licensing/licensing/shared/resource"
)

// RegionSpec names an edge region and its round trip to the central region.
type RegionSpec struct {
	Name        string
	RTT, Jitter time.Duration
}

// DefaultRegions: region A 90 ms, region B 180 ms round trip to the centre.
func DefaultRegions() []RegionSpec {
	return []RegionSpec{{"region-a", 90 * time.Millisecond, 10 * time.Millisecond}, {"region-b", 180 * time.Millisecond, 20 * time.Millisecond}}
}

// Config describes the simulated world.
type Config struct {
	// Dir holds binaries, logs, Redis and NATS data (Postgres data goes under /var/tmp when
	// run as root: Postgres runs as its own user).
	Dir string
	// BasePort: primary +0, NATS hub +1 (leaf nodes +2), writer +3; region i from
	// +10+20i: replica +0, Redis +1, leaf NATS +2, edges +3 +4, proxies +5..+8.
	BasePort int
	Regions  []RegionSpec
	// Bin holds prebuilt writer and edge binaries (default: built into Dir/bin).
	Bin string
	// Race builds the writer and edge with the race detector.
	Race bool
	// EdgeEnv is added to every edge's environment.
	EdgeEnv []string
	Logf    func(format string, args ...any)
}

// Region is one running edge region.
type Region struct {
	Spec    RegionSpec
	Replica *chaos.Proc
	Redis   *chaos.Proc
	Leaf    *chaos.Proc
	Edges   []*chaos.Proc
	// EdgeURLs are the region's edges; WriterURL reaches the central writer through the
	// region's link (what a plugin in the region calling the centre would see).
	EdgeURLs  []string
	WriterURL string
	// the region's cross-region links
	WriterLink, PrimaryLink, ReplicationLink, LeafLink *Link
	// ReplicaURL reads the region's replica as the superuser.
	ReplicaURL string
}

// Links lists the region's cross-region links.
func (r *Region) Links() []*Link {
	return []*Link{r.WriterLink, r.PrimaryLink, r.ReplicationLink, r.LeafLink}
}

// StaleWithoutStream is the edges' EDGE_STALE_WITHOUT_STREAM here (10 s by default):
// once a partitioned region's edges have applied no relay heartbeat for this long, every
// answer they give must be marked stale.
const StaleWithoutStream = 3 * time.Second

// World is the running simulation: the central region and the edge regions.
type World struct {
	cfg     Config
	Net     *Network
	Primary *chaos.Proc
	Hub     *chaos.Proc
	Writer  *chaos.Proc
	Regions []*Region

	AdminURL, HubURL, WriterURL string
	OperatorToken, Brand        string
	APIKey                      string

	procs  []*chaos.Proc // in start order
	pgBase string
	pgCred *syscall.Credential
	hc     *http.Client
}

// Start builds the binaries (unless cfg.Bin), starts the proxies and every process, and
// creates the brand and products the load uses.
func Start(ctx context.Context, cfg Config) (w *World, err error) {
	if cfg.BasePort == 0 {
		cfg.BasePort = 31000
	}
	if len(cfg.Regions) == 0 {
		cfg.Regions = DefaultRegions()
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, err
	}
	w = &World{cfg: cfg, Net: newNetwork(), hc: &http.Client{Timeout: 10 * time.Second}}
	started := w
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	for _, d := range []string{"logs", "nats", "redis"} {
		if err := os.RemoveAll(filepath.Join(cfg.Dir, d)); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if cfg.Bin == "" {
		if err := w.build(ctx); err != nil {
			return nil, err
		}
	}
	port := func(off int) int { return cfg.BasePort + off }
	addr := func(off int) string { return "127.0.0.1:" + strconv.Itoa(port(off)) }

	// ---- central region: Postgres primary, NATS hub, writer
	if err := w.startPrimary(ctx, port(0)); err != nil {
		return nil, err
	}
	w.HubURL = "nats://" + addr(1)
	hubConf := filepath.Join(cfg.Dir, "nats", "hub.conf")
	if err := os.WriteFile(hubConf, []byte(fmt.Sprintf("listen: %q\nserver_name: hub\njetstream { domain: central, store_dir: %q }\nleafnodes { listen: %q }\n",
		addr(1), filepath.Join(cfg.Dir, "nats", "hub"), addr(2))), 0o644); err != nil {
		return nil, err
	}
	w.Hub = &chaos.Proc{Name: "nats-hub", Path: "nats-server", Args: []string{"-c", hubConf}, Log: w.logPath("nats-hub"), Ready: chaos.TCPReady(addr(2))}
	if err := w.start(ctx, w.Hub); err != nil {
		return nil, err
	}
	cfg.Logf("migrating")
	if err := chaos.RunAs(ctx, nil, []string{"WRITER_MIGRATE_DATABASE_URL=" + w.AdminURL, "WRITER_DATABASE_URL=" + w.appURL(port(0))},
		w.bin("writer"), "migrate"); err != nil {
		return nil, err
	}
	if err := chaos.SetPasswords(ctx, w.AdminURL); err != nil {
		return nil, err
	}
	w.OperatorToken = "sim-operator-" + strconv.Itoa(os.Getpid())
	w.WriterURL = "http://" + addr(3)
	w.Writer = &chaos.Proc{Name: "writer", Path: w.bin("writer"), Log: w.logPath("writer"),
		Env: []string{"WRITER_ADDR=" + addr(3), "WRITER_DATABASE_URL=" + w.appURL(port(0)), "WRITER_NATS_URL=" + w.HubURL,
			"WRITER_OPERATOR_TOKEN=" + w.OperatorToken, "WRITER_SHUTDOWN_TIMEOUT=5s", "WRITER_RATE_LIMITS=off"},
		Ready: chaos.HTTPReady(w.hc, w.WriterURL)}
	if err := w.start(ctx, w.Writer); err != nil {
		return nil, err
	}

	// ---- edge regions
	for i, spec := range cfg.Regions {
		b := 10 + 20*i
		r := &Region{Spec: spec}
		w.Regions = append(w.Regions, r)
		link := func(name string, off int, upstream string) (*Link, error) {
			return w.Net.Link(spec.Name, name, addr(b+off), upstream, spec.RTT, spec.Jitter)
		}
		if r.WriterLink, err = link("writer", 5, addr(3)); err != nil {
			return nil, err
		}
		if r.PrimaryLink, err = link("primary", 6, addr(0)); err != nil {
			return nil, err
		}
		if r.ReplicationLink, err = link("replication", 7, addr(0)); err != nil {
			return nil, err
		}
		if r.LeafLink, err = link("leaf", 8, addr(2)); err != nil {
			return nil, err
		}
		r.WriterURL = "http://" + addr(b+5)
		if err := w.startReplica(ctx, r, i, port(b), port(b+7)); err != nil {
			return nil, err
		}
		r.Redis = &chaos.Proc{Name: spec.Name + "-redis", Path: "redis-server", Log: w.logPath(spec.Name + "-redis"),
			Args: []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port(b + 1)), "--save", "", "--appendonly", "no",
				"--dir", filepath.Join(cfg.Dir, "redis")},
			Ready: chaos.TCPReady(addr(b + 1))}
		leafConf := filepath.Join(cfg.Dir, "nats", spec.Name+".conf")
		// no JetStream on the leaf: default_js_domain maps the edges' JetStream API calls to
		// the hub's domain across the leaf link, where their consumers read the stream, as
		// deploy/k8s/nats/leaf/nats-leaf.conf does
		if err := os.WriteFile(leafConf, []byte(fmt.Sprintf("listen: %q\nserver_name: %s-leaf\ndefault_js_domain: { $G: central }\nleafnodes { reconnect: 1, remotes: [ { url: %q } ] }\n",
			addr(b+2), spec.Name, "nats-leaf://"+addr(b+8))), 0o644); err != nil {
			return nil, err
		}
		r.Leaf = &chaos.Proc{Name: spec.Name + "-leaf", Path: "nats-server", Args: []string{"-c", leafConf}, Log: w.logPath(spec.Name + "-leaf"),
			Ready: chaos.TCPReady(addr(b + 2))}
		for _, p := range []*chaos.Proc{r.Redis, r.Leaf} {
			if err := w.start(ctx, p); err != nil {
				return nil, err
			}
		}
		for e := range 2 {
			a := addr(b + 3 + e)
			name := fmt.Sprintf("%s-edge-%d", spec.Name, e+1)
			r.EdgeURLs = append(r.EdgeURLs, "http://"+a)
			r.Edges = append(r.Edges, &chaos.Proc{Name: name, Path: w.bin("edge"), Log: w.logPath(name),
				Env: append([]string{"EDGE_ADDR=" + a, "EDGE_NODE_ID=" + name,
					"EDGE_REPLICA_URL=" + w.edgeURL(port(b)), "EDGE_PRIMARY_URL=" + w.edgeURL(port(b+6)),
					"EDGE_REDIS_ADDR=" + addr(b+1), "EDGE_NATS_URL=nats://" + addr(b+2), "EDGE_WRITER_URL=" + r.WriterURL,
					"EDGE_SHUTDOWN_TIMEOUT=5s", "EDGE_RATE_LIMITS=off",
					"EDGE_STALE_WITHOUT_STREAM=" + StaleWithoutStream.String()}, cfg.EdgeEnv...),
				Ready: chaos.HTTPReady(w.hc, "http://"+a)})
		}
		for _, p := range r.Edges {
			if err := w.start(ctx, p); err != nil {
				return nil, err
			}
		}
	}
	if err := w.brand(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *World) bin(name string) string {
	if w.cfg.Bin != "" {
		return filepath.Join(w.cfg.Bin, name)
	}
	return filepath.Join(w.cfg.Dir, "bin", name)
}

func (w *World) logPath(name string) string { return filepath.Join(w.cfg.Dir, "logs", name+".log") }

func (w *World) start(ctx context.Context, p *chaos.Proc) error {
	w.cfg.Logf("starting %s", p.Name)
	if err := p.Start(ctx); err != nil {
		return err
	}
	w.procs = append(w.procs, p)
	return nil
}

func (w *World) build(ctx context.Context) error {
	root, err := chaos.RepoRoot()
	if err != nil {
		return err
	}
	w.cfg.Logf("building writer and edge")
	args := []string{"build", "-o", filepath.Join(w.cfg.Dir, "bin") + "/"}
	if w.cfg.Race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./writer/cmd/writer", "./edge/cmd/edge")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// Close stops every process (edges first, the primary last) and every proxy, and removes
// the Postgres data.
func (w *World) Close() {
	for i := len(w.procs) - 1; i >= 0; i-- {
		_ = w.procs[i].Resume()
		_ = w.procs[i].Stop(15 * time.Second)
	}
	w.Net.Close()
	if w.pgBase != "" {
		// the Postgres data (under /var/tmp when run as root) is of no use once stopped
		_ = os.RemoveAll(w.pgBase)
	}
}

// EnsureUp starts every process that is not running.
func (w *World) EnsureUp(ctx context.Context) error {
	for _, p := range w.procs {
		if !p.Running() {
			if err := p.Start(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// RaceReports returns the data race reports in the writer's and edges' logs.
func (w *World) RaceReports() []string {
	var out []string
	ps := []*chaos.Proc{w.Writer}
	for _, r := range w.Regions {
		ps = append(ps, r.Edges...)
	}
	for _, p := range ps {
		b, _ := os.ReadFile(p.Log)
		if i := bytes.Index(b, []byte("WARNING: DATA RACE")); i >= 0 {
			out = append(out, p.Name+": "+string(b[i:min(len(b), i+3000)]))
		}
	}
	return out
}

// View is the region as the chaos package's load and checker see a topology: the
// central writer (brand backends call it directly) and the region's edges.
func (w *World) View(r *Region, edges []string) *chaos.Topology {
	return &chaos.Topology{AdminURL: w.AdminURL, NATSURL: w.HubURL, WriterURLs: []string{w.WriterURL}, EdgeURLs: edges,
		OperatorToken: w.OperatorToken, Brand: w.Brand, APIKey: w.APIKey, Products: []string{"pro", "addon"}}
}

// ------------------------------------------------------------------- Postgres

func (w *World) appURL(port int) string {
	return fmt.Sprintf("postgres://license_app:license_app@127.0.0.1:%d/licensing?sslmode=disable", port)
}

func (w *World) edgeURL(port int) string {
	return fmt.Sprintf("postgres://license_edge:license_edge@127.0.0.1:%d/licensing?sslmode=disable", port)
}

func (w *World) startPrimary(ctx context.Context, port int) error {
	pgBin, err := chaos.PGBinDir()
	if err != nil {
		return err
	}
	if w.pgBase, w.pgCred, err = chaos.PGBase(ctx, w.cfg.Dir, "sim"); err != nil {
		return err
	}
	dir := filepath.Join(w.pgBase, "primary")
	w.cfg.Logf("initdb %s", dir)
	if err := chaos.InitPrimary(ctx, pgBin, dir, port, w.pgCred, "128MB"); err != nil {
		return err
	}
	super := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	w.Primary = &chaos.Proc{Name: "postgres-primary", Path: filepath.Join(pgBin, "postgres"), Args: []string{"-D", dir},
		Cred: w.pgCred, Log: w.logPath("postgres-primary"), StopSignal: syscall.SIGINT, Ready: chaos.PGReady(super)}
	if err := w.start(ctx, w.Primary); err != nil {
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
	w.AdminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/licensing?sslmode=disable", port)
	return nil
}

// startReplica clones the primary (directly, once) and streams from it through the
// region's replication link.
func (w *World) startReplica(ctx context.Context, r *Region, i, port, linkPort int) error {
	pgBin, err := chaos.PGBinDir()
	if err != nil {
		return err
	}
	dir := filepath.Join(w.pgBase, r.Spec.Name)
	slot := fmt.Sprintf("sim_region_%d", i)
	w.cfg.Logf("pg_basebackup %s", dir)
	if err := chaos.RunAs(ctx, w.pgCred, nil, filepath.Join(pgBin, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(w.cfg.BasePort),
		"-U", "postgres", "-D", dir, "-X", "stream", "-C", "-S", slot, "-c", "fast"); err != nil {
		return err
	}
	if err := chaos.AppendFile(filepath.Join(dir, "postgresql.conf"), fmt.Sprintf("\nport = %d\n", port)); err != nil {
		return err
	}
	auto := fmt.Sprintf("primary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=%s'\nprimary_slot_name = '%s'\n",
		linkPort, r.Spec.Name, slot)
	if err := chaos.AppendFile(filepath.Join(dir, "postgresql.auto.conf"), auto); err != nil {
		return err
	}
	sig := filepath.Join(dir, "standby.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return err
	}
	if w.pgCred != nil {
		_ = os.Chown(sig, int(w.pgCred.Uid), int(w.pgCred.Gid))
	}
	r.ReplicaURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/licensing?sslmode=disable", port)
	r.Replica = &chaos.Proc{Name: r.Spec.Name + "-replica", Path: filepath.Join(pgBin, "postgres"), Args: []string{"-D", dir},
		Cred: w.pgCred, Log: w.logPath(r.Spec.Name + "-replica"), StopSignal: syscall.SIGINT, Ready: chaos.PGReady(r.ReplicaURL)}
	return w.start(ctx, r.Replica)
}

// ------------------------------------------------------------------- readiness, API

// brand creates the brand (the chaos checker looks for the same slug) and its products.
func (w *World) brand(ctx context.Context) error {
	w.Brand = "chaos"
	var created resource.BrandCreated
	if err := w.call(ctx, "POST", "/v1/brands", "Bearer "+w.OperatorToken, map[string]string{"slug": w.Brand, "name": "Sim"}, 201, &created); err != nil {
		return err
	}
	w.APIKey = created.APIKey.Secret
	for _, p := range []string{"pro", "addon"} {
		if err := w.call(ctx, "POST", "/v1/products", "Bearer "+w.APIKey, map[string]string{"code": p, "name": p}, 201, nil); err != nil {
			return err
		}
	}
	return nil
}

func (w *World) call(ctx context.Context, method, path, auth string, body any, want int, out any) error {
	return chaos.CallJSON(ctx, w.hc, w.WriterURL, method, path, auth, body, want, out)
}
