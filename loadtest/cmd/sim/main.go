// Command sim runs the multi-region simulation (package loadtest/sim, `make sim`): a
// central region (writer, Postgres primary, NATS hub with JetStream) and two edge regions
// (two edges, Redis, a NATS leaf node and a streaming replica each) on loopback, every
// cross-region link through an in-process toxiproxy at 90 and 180 ms round trips; load in
// both regions at their edges and directly at the writer; a 60 s partition of region A, a
// lagging replica in region B and the loss of one of region B's edges. It prints a
// table per region and scenario, writes it with the checks to -out/report.md and an
// HTML page with an SVG chart to -out/report.html, and exits 1 when a check failed.
//
//	go run ./loadtest/cmd/sim [-short] [-partition 60s] [-out .data/sim]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/licensing/licensing/loadtest/chaos"
	"github.com/licensing/licensing/loadtest/sim"
)

func main() {
	out := flag.String("out", ".data/sim", "folder for binaries, data, logs and the reports")
	basePort := flag.Int("base-port", 31000, "first port (see sim.Config; 39 ports are used)")
	short := flag.Bool("short", false, "the shortened run of make test (8 s partition)")
	partition := flag.Duration("partition", 0, "length of region A's partition (default 60s, 8s with -short)")
	requireStale := flag.Bool("require-stale", true, "fail when the partitioned region's answers are not marked X-Cache-Stale once its edges heard nothing from the centre for sim.StaleWithoutStream (-require-stale=false: report only)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: sim [flags]\n\nThree regions on one machine: tables per region and scenario, checks, and an HTML chart under -out.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o := sim.FullOptions()
	if *short {
		o = sim.ShortOptions()
	}
	if *partition > 0 {
		o.Partition = *partition
	}
	o.RequireStale = *requireStale
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { log.Printf(format, args...) }
	start := time.Now()
	load0 := chaos.LoadAvg()
	w, err := sim.Start(ctx, sim.Config{Dir: *out, BasePort: *basePort, Logf: logf})
	if err != nil {
		log.Fatal(err)
	}
	up := time.Since(start)
	res, err := sim.Run(ctx, w, o, logf)
	w.Close()
	if err != nil {
		log.Fatal(err)
	}
	var md strings.Builder
	fmt.Fprintf(&md, "On %d CPUs, load average at start %s, at the end %s; topology up in %v, total %v.\n\n",
		runtime.NumCPU(), load0, chaos.LoadAvg(), up.Round(time.Second), time.Since(start).Round(time.Second))
	md.WriteString(res.Markdown())
	fmt.Println(md.String())
	for name, body := range map[string]string{"report.md": md.String(), "report.html": res.HTML()} {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(body), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	log.Printf("reports in %s/report.md and %s/report.html", *out, *out)
	if !res.OK() {
		log.Print("FAILED: a check broke (table above)")
		os.Exit(1)
	}
}
