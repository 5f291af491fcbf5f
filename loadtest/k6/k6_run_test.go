package k6

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/licensing/licensing/loadtest/scenario"
	"github.com/licensing/licensing/loadtest/seed"
)

// k6 modules stubbed for node: http records requests and answers 200, the rest is inert.
var stubs = map[string]string{
	"package.json": `{"name":"k6","type":"module","exports":{"./http":"./http.js","./metrics":"./metrics.js","./data":"./data.js"}}`,
	"http.js": `export const calls = [];
function res(method, url, body, params) { calls.push({ method, url, body, tags: (params && params.tags) || {}, auth: (params && params.headers && params.headers.Authorization) || '' }); return { status: 200, body: '{}' }; }
export default {
  get: (url, params) => res('GET', url, null, params),
  post: (url, body, params) => res('POST', url, body, params),
  setResponseCallback: () => {},
  expectedStatuses: () => null,
};`,
	"metrics.js": `export class Rate { constructor(n) { this.n = n; } add() {} }
export class Counter { constructor(n) { this.n = n; } add() {} }`,
	"data.js": `export class SharedArray { constructor(name, fn) { return fn(); } }`,
}

const driver = `import fs from 'node:fs';
import path from 'node:path';
globalThis.__ENV = Object.assign({ MANIFEST: process.env.MANIFEST, WRITER_URL: 'http://writer', EDGE_URLS: 'http://edge1,http://edge2' },
  JSON.parse(process.env.K6_ENV || '{}'));
globalThis.__VU = 1;
const here = path.dirname(new URL(import.meta.url).pathname);
globalThis.open = (p) => fs.readFileSync(path.isAbsolute(p) ? p : path.resolve(here, p), 'utf8');
const http = (await import('k6/http')).calls;
const out = {};
for (const name of process.argv.slice(2)) {
  const mod = await import('./' + name + '.js');
  if (typeof mod.default !== 'function') throw new Error(name + '.js exports no default function');
  http.length = 0;
  mod.default();
  if (http.length === 0) throw new Error(name + '.js: its default function made no request');
  http.length = 0;
  for (let i = 0; i < 2000; i++) mod.iteration();
  out[name] = { options: mod.options, calls: http.slice() };
}
console.log(JSON.stringify(out));
`

// TestScriptsRunTheSharedScenarios runs every scenario script under node with the k6
// modules stubbed: its options must carry scenarios.json's numbers, and its iterations
// must hit the endpoints of the Go harness's operations, in the file's proportions.
func TestScriptsRunTheSharedScenarios(t *testing.T) {
	node := tool(t, "node", "cannot run the k6 scripts with stubbed k6 modules")
	all, err := scenario.Load("../scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range all {
		names = append(names, n)
	}
	got := drive(t, node, names, nil)
	tg := target()
	for _, name := range names {
		sc := all[name]
		g := got[name]
		t.Run(name, func(t *testing.T) {
			ks := g.Options.Scenarios[name]
			if ks == nil {
				t.Fatalf("options.scenarios has no %s: %v", name, g.Options.Scenarios)
			}
			if ks["executor"] != sc.Executor || ks["duration"] != sc.Duration {
				t.Errorf("executor/duration %v/%v, scenarios.json %s/%s", ks["executor"], ks["duration"], sc.Executor, sc.Duration)
			}
			if sc.Executor == scenario.ConstantArrivalRate &&
				(ks["rate"] != float64(sc.Rate) || ks["timeUnit"] != "1s" || ks["maxVUs"] != float64(sc.MaxInFlight) || ks["preAllocatedVUs"] != float64(sc.MaxInFlight)) {
				t.Errorf("k6 scenario %v does not match rate %d, max_in_flight %d", ks, sc.Rate, sc.MaxInFlight)
			}
			if sc.Executor == scenario.ConstantVUs && ks["vus"] != float64(sc.VUs) {
				t.Errorf("vus %v, scenarios.json %d", ks["vus"], sc.VUs)
			}
			wantDur := []string{fmt.Sprintf("p(95)<%g", sc.Thresholds.P95Ms), fmt.Sprintf("p(99)<%g", sc.Thresholds.P99Ms)}
			if d := g.Options.Thresholds["http_req_duration"]; len(d) != 2 || d[0] != wantDur[0] || d[1] != wantDur[1] {
				t.Errorf("latency thresholds %v, want %v", d, wantDur)
			}
			if e := g.Options.Thresholds["errors"]; len(e) != 1 || e[0] != fmt.Sprintf("rate<%g", sc.Thresholds.ErrorRate) {
				t.Errorf("error threshold %v", e)
			}
			if len(g.Calls) < 2000 {
				t.Fatalf("2000 iterations made %d requests", len(g.Calls))
			}
			ops := map[string]int{}
			for _, c := range g.Calls {
				op := c.Tags["op"]
				ops[op]++
				if _, ok := sc.Mix[op]; !ok {
					t.Fatalf("request for operation %q, not in the mix %v", op, sc.Mix)
				}
				wantBase := "http://edge"
				if sc.Target == "writer" || op == scenario.OpLifecycle {
					wantBase = "http://writer"
				}
				if !strings.HasPrefix(c.URL, wantBase) {
					t.Fatalf("%s went to %s, want %s*", op, c.URL, wantBase)
				}
				switch op {
				case scenario.OpStatus:
					if c.Method != "GET" || !strings.Contains(c.URL, "/v1/public/acme/licenses/"+tg.Key+"/status?product=pro&instance=x.example") {
						t.Fatalf("status call %s %s", c.Method, c.URL)
					}
				case scenario.OpDeactivate:
					if !strings.HasSuffix(c.URL, "/v1/public/acme/deactivations") || !strings.Contains(c.Body, `"instance":"https://www.x.example.com/"`) {
						t.Fatalf("deactivate call %s %s", c.URL, c.Body)
					}
				case scenario.OpLifecycle:
					if c.Auth != "Bearer lsk_p_s" || !strings.Contains(c.URL, "/v1/licenses/lic-1/") {
						t.Fatalf("lifecycle call %s auth %q", c.URL, c.Auth)
					}
				default:
					if c.Method != "POST" || !strings.HasSuffix(c.URL, "/v1/public/acme/activations") || !strings.Contains(c.Body, `"instance":"https://lt-k6-`) {
						t.Fatalf("%s call %s %s %s", op, c.Method, c.URL, c.Body)
					}
				}
			}
			// the dominant operation dominates in the same proportion (2000 iterations)
			names, _ := sc.Ops()
			total := 0.0
			for _, op := range names {
				total += sc.Mix[op]
			}
			for _, op := range names {
				if w := sc.Mix[op] / total; w >= 0.1 {
					frac := float64(ops[op]) / float64(len(g.Calls))
					if frac < w-0.06 || frac > w+0.06 {
						t.Errorf("operation %s is %.3f of the requests, scenarios.json says %.3f", op, frac, w)
					}
				}
			}
		})
	}
}

// driven is what the driver reports of one script: its k6 options and the requests of
// 2000 iterations.
type driven struct {
	Options struct {
		Scenarios  map[string]map[string]any `json:"scenarios"`
		Thresholds map[string][]string       `json:"thresholds"`
	} `json:"options"`
	Calls []struct {
		Method, URL, Body, Auth string
		Tags                    map[string]string
	} `json:"calls"`
}

// drive runs the named scenario scripts under node with the k6 modules stubbed and env
// (RATE, DURATION, VUS...) in __ENV.
func drive(t *testing.T, node string, names []string, env map[string]string) map[string]driven {
	t.Helper()
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "package.json"), `{"type":"module"}`)
	for f, s := range stubs {
		write(filepath.Join(dir, "node_modules", "k6", f), s)
	}
	scripts, _ := filepath.Glob("*.js")
	for _, f := range scripts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(dir, "loadtest", "k6", f), string(b))
	}
	sj, _ := os.ReadFile("../scenarios.json")
	write(filepath.Join(dir, "loadtest", "scenarios.json"), string(sj))
	write(filepath.Join(dir, "loadtest", "k6", "drive.js"), driver)

	tg := target()
	m := seed.Manifest{Brands: []seed.ManifestBrand{{Slug: "acme", APIKey: "lsk_p_s", Products: []string{"pro"}}},
		Status: []seed.Target{tg}, Free: []seed.Target{tg}, NearFull: []seed.Target{tg}, Unlimited: []seed.Target{tg},
		Active: []seed.Target{tg}, Lifecycle: []seed.Target{tg}}
	mp := filepath.Join(dir, "manifest.json")
	if err := m.Write(mp); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(node, append([]string{filepath.Join(dir, "loadtest", "k6", "drive.js")}, names...)...)
	k6env, _ := json.Marshal(env)
	cmd.Env = append(os.Environ(), "MANIFEST="+mp, "K6_ENV="+string(k6env))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	var got map[string]driven
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("driver output: %v\n%s", err, out)
	}
	return got
}

// target is the one license of the driver's manifest.
func target() seed.Target {
	lim := 3
	return seed.Target{Brand: "acme", Key: "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", Product: "pro", LicenseID: "lic-1", Status: "valid",
		SeatLimit: &lim, SeatsUsed: 1, Instance: "x.example.com", Raw: "https://www.x.example.com/"}
}

// TestSmokeOverridesFromEnvironment: RATE, DURATION and VUS replace scenarios.json's
// numbers in every script's options (thresholds stay).
func TestSmokeOverridesFromEnvironment(t *testing.T) {
	node := tool(t, "node", "cannot run the k6 scripts with stubbed k6 modules")
	all, err := scenario.Load("../scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range all {
		names = append(names, n)
	}
	got := drive(t, node, names, map[string]string{"RATE": "5", "DURATION": "3s", "VUS": "2"})
	for _, name := range names {
		ks := got[name].Options.Scenarios[name]
		if ks["duration"] != "3s" {
			t.Errorf("%s: duration %v, want 3s", name, ks["duration"])
		}
		switch all[name].Executor {
		case scenario.ConstantArrivalRate:
			if ks["rate"] != float64(5) || ks["preAllocatedVUs"] != float64(2) || ks["maxVUs"] != float64(2) {
				t.Errorf("%s: %v, want rate 5 and 2 VUs", name, ks)
			}
		case scenario.ConstantVUs:
			if ks["vus"] != float64(2) {
				t.Errorf("%s: vus %v, want 2", name, ks["vus"])
			}
		}
		if len(got[name].Options.Thresholds["errors"]) != 1 {
			t.Errorf("%s: thresholds lost: %v", name, got[name].Options.Thresholds)
		}
	}
}
