// Package scenario reads loadtest/scenarios.json, the one description of the load
// scenarios that the k6 scripts and the Go harness share (rates, durations, mixes,
// thresholds), and defines what each operation of a mix expects as an answer.
package scenario

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"
)

// Executors, named as k6 names them.
const (
	ConstantArrivalRate = "constant-arrival-rate" // open model: rate iterations per second
	ConstantVUs         = "constant-vus"          // closed model: vus loops
)

// Scenario is one entry of scenarios.json.
type Scenario struct {
	Name        string             `json:"name,omitempty"` // the key in scenarios.json
	Description string             `json:"description"`
	Executor    string             `json:"executor"`
	Rate        int                `json:"rate,omitempty"`
	VUs         int                `json:"vus,omitempty"`
	Duration    string             `json:"duration"`
	MaxInFlight int                `json:"max_in_flight,omitempty"`
	Target      string             `json:"target"` // "edges" or "writer"
	HotLicenses int                `json:"hot_licenses,omitempty"`
	Mix         map[string]float64 `json:"mix"`
	Thresholds  Thresholds         `json:"thresholds"`
}

// Thresholds fail a run (k6 exits non-zero, the harness too).
type Thresholds struct {
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	ErrorRate float64 `json:"error_rate"`
}

// Operations a mix may name.
const (
	OpStatus               = "status"
	OpActivateFree         = "activate_free"
	OpActivateHot          = "activate_hot"
	OpActivateUnlimited    = "activate_unlimited"
	OpActivateHotUnlimited = "activate_hot_unlimited"
	OpDeactivate           = "deactivate"
	OpLifecycle            = "lifecycle"
)

// Expected lists the HTTP statuses that count as success per operation; anything else
// (and any transport error) is an error. Lifecycle is two requests (suspend, resume).
var Expected = map[string][]int{
	OpStatus:               {200},
	OpActivateFree:         {200, 201, 409}, // a free license may fill up during a run
	OpActivateHot:          {200, 201, 409},
	OpActivateUnlimited:    {201},
	OpActivateHotUnlimited: {201},
	OpDeactivate:           {200, 404}, // another iteration may have freed it already
	OpLifecycle:            {200},
}

// DurationValue parses Duration.
func (s Scenario) DurationValue() time.Duration {
	d, _ := time.ParseDuration(s.Duration)
	return d
}

// Ops returns the operations of the mix in a stable order with cumulative weights
// normalized to 1, for picking with one uniform draw.
func (s Scenario) Ops() (names []string, cum []float64) {
	for n := range s.Mix {
		names = append(names, n)
	}
	sort.Strings(names)
	total := 0.0
	for _, n := range names {
		total += s.Mix[n]
	}
	acc := 0.0
	for _, n := range names {
		acc += s.Mix[n] / total
		cum = append(cum, acc)
	}
	return names, cum
}

// Pick returns the operation for the uniform draw u in [0, 1).
func (s Scenario) Pick(names []string, cum []float64, u float64) string {
	for i, c := range cum {
		if u < c {
			return names[i]
		}
	}
	return names[len(names)-1]
}

// Validate checks a scenario.
func (s Scenario) Validate() error {
	if d := s.DurationValue(); d <= 0 {
		return fmt.Errorf("scenario %s: duration %q", s.Name, s.Duration)
	}
	switch s.Executor {
	case ConstantArrivalRate:
		if s.Rate <= 0 || s.MaxInFlight <= 0 {
			return fmt.Errorf("scenario %s: rate and max_in_flight must be positive", s.Name)
		}
	case ConstantVUs:
		if s.VUs <= 0 {
			return fmt.Errorf("scenario %s: vus must be positive", s.Name)
		}
	default:
		return fmt.Errorf("scenario %s: unknown executor %q", s.Name, s.Executor)
	}
	if s.Target != "edges" && s.Target != "writer" {
		return fmt.Errorf("scenario %s: target must be edges or writer", s.Name)
	}
	if len(s.Mix) == 0 {
		return fmt.Errorf("scenario %s: empty mix", s.Name)
	}
	for op, w := range s.Mix {
		if _, ok := Expected[op]; !ok || w <= 0 {
			return fmt.Errorf("scenario %s: unknown operation %q or weight %v", s.Name, op, w)
		}
	}
	return nil
}

// Load reads scenarios.json.
func Load(path string) (map[string]Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]Scenario{}
	for name, r := range raw {
		if name[0] == '_' {
			continue
		}
		var s Scenario
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, fmt.Errorf("%s: scenario %s: %w", path, name, err)
		}
		s.Name = name
		if err := s.Validate(); err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
}
