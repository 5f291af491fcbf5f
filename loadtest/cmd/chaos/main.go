// Command chaos runs the fault-injection harness (package loadtest/chaos): it starts its
// own topology of real processes under -dir, runs every scenario (or those named by
// -scenarios) under load, prints a table per scenario and exits 1 when any invariant
// broke.
//
//	go run ./loadtest/cmd/chaos [-scenarios writer-kill9,redis-down] [-markdown out.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/licensing/licensing/loadtest/chaos"
)

func main() {
	dir := flag.String("dir", ".data/chaos", "folder for binaries, data, logs and journals")
	basePort := flag.Int("base-port", 31400, "first port of the topology (primary; see chaos.Config)")
	names := flag.String("scenarios", "all", "comma-separated scenario names, or all")
	short := flag.Bool("short", false, "the shortened run of make test")
	markdown := flag.String("markdown", "", "also write the tables to this file")
	list := flag.Bool("list", false, "list the scenarios and exit")
	flag.Parse()

	catalogue := chaos.Catalogue()
	if *short {
		catalogue = chaos.Short()
	}
	if *list {
		for _, s := range catalogue {
			fmt.Printf("%-18s %s\n", s.Name, s.Description)
		}
		return
	}
	var scenarios []chaos.Scenario
	for _, s := range catalogue {
		if *names == "all" || contains(strings.Split(*names, ","), s.Name) {
			scenarios = append(scenarios, s)
		}
	}
	if len(scenarios) == 0 {
		log.Fatalf("no scenario matches %q (-list shows them)", *names)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { log.Printf(format, args...) }
	start := time.Now()
	t, err := chaos.Start(ctx, chaos.Config{Dir: *dir, BasePort: *basePort, Logf: logf})
	if err != nil {
		log.Fatal(err)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "Run %s on %d CPUs, load average at start %s; topology up in %v.\n\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), chaos.LoadAvg(), time.Since(start).Round(time.Second))
	failed := 0
	for _, s := range scenarios {
		rep := chaos.RunScenario(ctx, t, s, chaos.LoadConfig{}, logf)
		table := rep.Table()
		fmt.Println(table)
		out.WriteString(table + "\n")
		if !rep.OK() {
			failed++
		}
		if ctx.Err() != nil {
			break
		}
	}
	t.Close()
	fmt.Fprintf(&out, "Load average at the end %s; total %v.\n", chaos.LoadAvg(), time.Since(start).Round(time.Second))
	if *markdown != "" {
		if err := os.WriteFile(*markdown, []byte(out.String()), 0o644); err != nil {
			log.Print(err)
		}
	}
	if failed > 0 {
		log.Printf("%d of %d scenarios FAILED", failed, len(scenarios))
		os.Exit(1)
	}
	log.Printf("all %d scenarios passed in %v", len(scenarios), time.Since(start).Round(time.Second))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}
