package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestHelp(t *testing.T) {
	for _, c := range []struct {
		name     string
		args     []string
		code     int
		stdout   []string // each must appear on stdout
		noStderr bool
	}{
		{"dash-dash-help-lists-every-command", []string{"--help"}, 0, []string{"usage: load COMMAND", "run ", "lag ", "big ", "pgbench ", "report "}, true},
		{"dash-h-lists-every-command", []string{"-h"}, 0, []string{"usage: load COMMAND"}, true},
		{"help-run-shows-its-flags", []string{"help", "run"}, 0, []string{"usage: load run", "-scenario", "-manifest", "-rate"}, true},
		{"run-dash-h-shows-its-flags", []string{"run", "-h"}, 0, []string{"usage: load run", "-scenario"}, true},
		{"lag-help", []string{"lag", "--help"}, 0, []string{"usage: load lag", "-samples"}, true},
		{"big-help", []string{"big", "-help"}, 0, []string{"usage: load big", "-checks", "-p99"}, true},
		{"pgbench-help", []string{"pgbench", "-h"}, 0, []string{"usage: load pgbench", "-script"}, true},
		{"report-help", []string{"report", "-h"}, 0, []string{"usage: load report", "-md", "-html"}, true},
		{"no-command-is-usage-error", nil, 2, nil, false},
		{"unknown-command-is-usage-error", []string{"bogus"}, 2, nil, false},
		{"unknown-flag-is-usage-error", []string{"report", "-nope"}, 2, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cli(context.Background(), c.args, &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, c.code, out.String(), errb.String())
			}
			for _, s := range c.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			if c.noStderr && errb.Len() > 0 {
				t.Errorf("help wrote to stderr: %q", errb.String())
			}
			if c.code == 2 && !strings.Contains(errb.String(), "usage: load") {
				t.Errorf("a usage error shows no usage on stderr: %q", errb.String())
			}
		})
	}
}
