// Package telemetry holds the Prometheus collectors both binaries export the same way
// (ARCHITECTURE.md "Metrics conventions"): build information, Postgres pool statistics
// and NATS connection state. Each takes the binary's metric prefix (license_writer,
// license_edge) and reads in-process state only, so a scrape never waits on a database
// or a network call.
package telemetry

import (
	"runtime"
	"runtime/debug"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Build describes the running binary: its module version, its VCS revision (with a
// "-dirty" suffix when the tree had local changes; "unknown" when the build recorded
// none, as under go test or go run) and the Go version.
func Build() (version, revision, goversion string) {
	version, revision, goversion = "unknown", "unknown", runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if v := bi.Main.Version; v != "" {
		version = v
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && revision != "unknown" {
		revision += "-dirty"
	}
	return version, revision, goversion
}

// BuildInfo is the gauge <prefix>_build_info{version, revision, goversion}, always 1.
func BuildInfo(prefix string) prometheus.Collector {
	version, revision, goversion := Build()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "_build_info",
		Help:        "Always 1; the labels say which build is running (module version, VCS revision, Go version).",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goversion}})
	g.Set(1)
	return g
}

// Pools exports pgxpool statistics of every named pool (label pool) as
// <prefix>_db_pool_*. Stat reads the pool's own counters: no connection is used.
type Pools struct {
	pools                                                        map[string]*pgxpool.Pool
	acquired, idle, total, max, constructing                     *prometheus.Desc
	acquires, acquireSeconds, emptyAcquires, emptyWaitSeconds    *prometheus.Desc
	canceledAcquires, newConns, lifetimeDestroyed, idleDestroyed *prometheus.Desc
}

// NewPools returns the collector over pools (name → pool; nil pools are skipped).
func NewPools(prefix string, pools map[string]*pgxpool.Pool) *Pools {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prefix+"_db_pool_"+name, help, []string{"pool"}, nil)
	}
	p := &Pools{pools: map[string]*pgxpool.Pool{},
		acquired:          d("acquired_connections", "Connections currently checked out of the pool."),
		idle:              d("idle_connections", "Idle connections in the pool."),
		total:             d("connections", "Connections in the pool (acquired, idle and being opened)."),
		max:               d("max_connections", "The pool's size limit."),
		constructing:      d("constructing_connections", "Connections being opened."),
		acquires:          d("acquires_total", "Successful acquires from the pool."),
		acquireSeconds:    d("acquire_duration_seconds_total", "Time spent in successful acquires (divide its rate by the acquires' rate for the mean wait)."),
		emptyAcquires:     d("empty_acquires_total", "Successful acquires that had to wait for a connection (none idle): a sign the pool is too small."),
		emptyWaitSeconds:  d("empty_acquire_wait_seconds_total", "Time spent waiting by acquires that found no idle connection."),
		canceledAcquires:  d("canceled_acquires_total", "Acquires that gave up (their context ended) before a connection came."),
		newConns:          d("new_connections_total", "Connections opened."),
		lifetimeDestroyed: d("max_lifetime_destroyed_total", "Connections closed for reaching their maximum lifetime."),
		idleDestroyed:     d("max_idle_destroyed_total", "Connections closed for being idle too long."),
	}
	for name, pool := range pools {
		if pool != nil {
			p.pools[name] = pool
		}
	}
	return p
}

// Describe implements prometheus.Collector.
func (p *Pools) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.acquired, p.idle, p.total, p.max, p.constructing, p.acquires, p.acquireSeconds,
		p.emptyAcquires, p.emptyWaitSeconds, p.canceledAcquires, p.newConns, p.lifetimeDestroyed, p.idleDestroyed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p *Pools) Collect(ch chan<- prometheus.Metric) {
	for name, pool := range p.pools {
		s := pool.Stat()
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		c := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, name)
		}
		g(p.acquired, float64(s.AcquiredConns()))
		g(p.idle, float64(s.IdleConns()))
		g(p.total, float64(s.TotalConns()))
		g(p.max, float64(s.MaxConns()))
		g(p.constructing, float64(s.ConstructingConns()))
		c(p.acquires, float64(s.AcquireCount()))
		c(p.acquireSeconds, s.AcquireDuration().Seconds())
		c(p.emptyAcquires, float64(s.EmptyAcquireCount()))
		c(p.emptyWaitSeconds, s.EmptyAcquireWaitTime().Seconds())
		c(p.canceledAcquires, float64(s.CanceledAcquireCount()))
		c(p.newConns, float64(s.NewConnsCount()))
		c(p.lifetimeDestroyed, float64(s.MaxLifetimeDestroyCount()))
		c(p.idleDestroyed, float64(s.MaxIdleDestroyCount()))
	}
}

// NATS exports a NATS connection's state as <prefix>_nats_connected (1 while connected,
// else 0) and <prefix>_nats_reconnects_total. conn returns the connection, or nil while
// there is none yet (connected 0, reconnects 0).
type NATS struct {
	conn                  func() *nats.Conn
	connected, reconnects *prometheus.Desc
}

// NewNATS returns the collector over conn.
func NewNATS(prefix, help string, conn func() *nats.Conn) *NATS {
	return &NATS{conn: conn,
		connected:  prometheus.NewDesc(prefix+"_nats_connected", "1 while the NATS connection is up, else 0. "+help, nil, nil),
		reconnects: prometheus.NewDesc(prefix+"_nats_reconnects_total", "Times the NATS connection was re-established after a loss.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (n *NATS) Describe(ch chan<- *prometheus.Desc) { ch <- n.connected; ch <- n.reconnects }

// Collect implements prometheus.Collector.
func (n *NATS) Collect(ch chan<- prometheus.Metric) {
	var up, reconnects float64
	if nc := n.conn(); nc != nil {
		if nc.IsConnected() {
			up = 1
		}
		reconnects = float64(nc.Stats().Reconnects)
	}
	ch <- prometheus.MustNewConstMetric(n.connected, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(n.reconnects, prometheus.CounterValue, reconnects)
}

// Region returns reg with the constant label region=region on everything registered
// through it (reg itself when region is empty: tests' literal configurations).
func Region(reg prometheus.Registerer, region string) prometheus.Registerer {
	if region == "" {
		return reg
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"region": region}, reg)
}
