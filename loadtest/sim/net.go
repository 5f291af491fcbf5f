package sim

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Network holds the in-process toxiproxy proxies that every cross-region link goes
// through.
type Network struct {
	srv   *toxiproxy.ApiServer
	mu    sync.Mutex
	links []*Link
}

func newNetwork() *Network {
	return &Network{srv: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())}
}

// Link is one cross-region TCP link: a proxy listening in the client's region and
// forwarding to the server's, with the region's round trip as latency toxics (half of it
// each way, with jitter).
type Link struct {
	Name     string
	Region   string
	Listen   string
	Upstream string
	proxy    *toxiproxy.Proxy

	mu     sync.Mutex
	toxics map[string]bool
}

// Link starts a proxy from listen to upstream with rtt ± jitter.
func (n *Network) Link(region, name, listen, upstream string, rtt, jitter time.Duration) (*Link, error) {
	p := toxiproxy.NewProxy(n.srv, region+"-"+name, listen, upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("proxy %s %s: %w", region, name, err)
	}
	l := &Link{Name: name, Region: region, Listen: listen, Upstream: upstream, proxy: p, toxics: map[string]bool{}}
	for _, dir := range []string{"upstream", "downstream"} {
		if err := l.add("rtt_"+dir, "latency", dir, map[string]any{"latency": (rtt / 2).Milliseconds(), "jitter": (jitter / 2).Milliseconds()}); err != nil {
			p.Stop()
			return nil, err
		}
	}
	n.mu.Lock()
	n.links = append(n.links, l)
	n.mu.Unlock()
	return l, nil
}

func (l *Link) add(name, typ, stream string, attrs map[string]any) error {
	var b strings.Builder
	fmt.Fprintf(&b, `{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":{`, name, typ, stream)
	first := true
	for k, v := range attrs {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%v", k, v)
	}
	b.WriteString("}}")
	if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(b.String())); err != nil {
		return fmt.Errorf("toxic %s on %s-%s: %w", name, l.Region, l.Name, err)
	}
	l.mu.Lock()
	l.toxics[name] = true
	l.mu.Unlock()
	return nil
}

func (l *Link) remove(name string) error {
	l.mu.Lock()
	had := l.toxics[name]
	delete(l.toxics, name)
	l.mu.Unlock()
	if !had {
		return nil
	}
	return l.proxy.Toxics.RemoveToxic(context.Background(), name)
}

// Blackhole makes the link a black hole in both directions (on) or heals it. Nothing
// crosses it and nothing is refused: connections are accepted and hang, as when packets
// vanish (toxiproxy's timeout toxic with timeout 0). The proxy drops what is sent
// meanwhile, where TCP would retransmit it after the healing: a connection that spans the
// partition is broken at the protocol level afterwards, and the peers' deadlines and
// protocol checks must end and re-establish it (holding the bytes instead, as a
// one-hour latency toxic, makes toxiproxy's removal of the toxic wait 5 s per held chunk
// on links nobody reads any more: a heal that never ends).
func (l *Link) Blackhole(on bool) error {
	if !on {
		return errors2(l.remove("blackhole_upstream"), l.remove("blackhole_downstream"))
	}
	for _, dir := range []string{"upstream", "downstream"} {
		if err := l.add("blackhole_"+dir, "timeout", dir, map[string]any{"timeout": 0}); err != nil {
			return err
		}
	}
	return nil
}

// Lag delays what the upstream sends back (the primary's WAL to a replica) by d more
// (0 removes the delay).
func (l *Link) Lag(d time.Duration) error {
	if err := l.remove("lag_downstream"); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	return l.add("lag_downstream", "latency", "downstream", map[string]any{"latency": d.Milliseconds(), "jitter": 0})
}

// Close stops every proxy.
func (n *Network) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.links {
		l.proxy.Stop()
	}
	n.links = nil
}

func errors2(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
