package webhook

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The specification's own test vector, and the reference library's verification of a
// signature made with one and with two secrets (a rotation).
func TestSignStandardWebhooks(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	sig, err := Sign([]string{secret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; sig != want {
		t.Fatalf("signature %q, want the specification's %q", sig, want)
	}
	const other = "whsec_dGhlIG90aGVyIHNlY3JldCBvZiAzMiBieXRlcyEhISE="
	body := []byte(`{"type":"license.created","timestamp":"2026-01-01T00:00:00Z","data":{}}`)
	ts := time.Now().Unix()
	both, err := Sign([]string{secret, other}, "evt_1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "evt_1")
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", both)
	for _, s := range []string{secret, other} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("the reference library refuses a two-secret signature for one of them: %v", err)
		}
	}
	wh, _ := standardwebhooks.NewWebhook("whsec_" + strings.Repeat("A", 43) + "=")
	if err := wh.Verify(body, h); err == nil {
		t.Error("a third secret verifies")
	}
	if _, err := Sign([]string{"whsec_not base64!"}, "x", 1, nil); err == nil {
		t.Error("a malformed secret signs")
	}
}

func TestGuardCheck(t *testing.T) {
	strict := Guard{}
	local := Guard{AllowLoopback: true}
	onPrem := Guard{AllowPrivate: true}
	for _, c := range []struct {
		addr                  string
		strict, local, onPrem bool // allowed?
	}{
		{"93.184.216.34", true, true, true},
		{"2606:2800:220:1:248:1893:25c8:1946", true, true, true},
		{"127.0.0.1", false, true, false},
		{"127.8.9.10", false, true, false},
		{"::1", false, true, false},
		{"::ffff:127.0.0.1", false, true, false},
		{"10.0.0.1", false, false, true},
		{"172.16.5.4", false, false, true},
		{"192.168.0.1", false, false, true},
		{"100.64.0.1", false, false, true},
		{"fd12::1", false, false, true},
		{"169.254.169.254", false, false, false},
		{"169.254.1.1", false, false, false},
		{"fe80::1", false, false, false},
		{"fd00:ec2::254", false, false, false},
		{"100.100.100.200", false, false, false},
		{"0.0.0.0", false, false, false},
		{"::", false, false, false},
		{"224.0.0.1", false, false, false},
		{"255.255.255.255", false, false, false},
		{"64:ff9b::a9fe:a9fe", false, false, false}, // NAT64 of 169.254.169.254
		{"64:ff9b::7f00:1", false, true, false},     // NAT64 of 127.0.0.1
		{"2002:a00:1::", false, false, true},        // 6to4 of 10.0.0.1
	} {
		a := netip.MustParseAddr(c.addr)
		for _, g := range []struct {
			name  string
			guard Guard
			want  bool
		}{{"strict", strict, c.strict}, {"loopback allowed", local, c.local}, {"private allowed", onPrem, c.onPrem}} {
			err := g.guard.Check(a)
			if (err == nil) != g.want {
				t.Errorf("%s, %s: allowed=%v, want %v (%v)", c.addr, g.name, err == nil, g.want, err)
			}
			if err != nil && !IsForbidden(err) {
				t.Errorf("%s: %v is not a forbidden-address error", c.addr, err)
			}
		}
	}
}

func TestGuardCheckURL(t *testing.T) {
	ctx := context.Background()
	strict, local := Guard{}, Guard{AllowLoopback: true}
	for _, c := range []struct {
		url           string
		strict, local bool
	}{
		{"https://93.184.216.34/hooks?x=1", true, true},
		{"http://93.184.216.34/hooks", false, false}, // https only off loopback
		{"http://127.0.0.1:8080/hooks", false, true},
		{"https://127.0.0.1/hooks", false, true},
		{"http://localhost:9/hooks", false, true},
		{"https://[::1]:8443/", false, true},
		{"https://169.254.169.254/latest/meta-data/", false, false},
		{"ftp://93.184.216.34/", false, false},
		{"https://user:pw@93.184.216.34/", false, false},
		{"https://93.184.216.34/#frag", false, false},
		{"//93.184.216.34/", false, false},
		{"not a url", false, false},
		{"https:///nohost", false, false},
		{"https://no-such-host.invalid/", false, false},
	} {
		for _, g := range []struct {
			name  string
			guard Guard
			want  bool
		}{{"strict", strict, c.strict}, {"loopback allowed", local, c.local}} {
			_, err := g.guard.CheckURL(ctx, c.url)
			if (err == nil) != g.want {
				t.Errorf("%s, %s: allowed=%v, want %v (%v)", c.url, g.name, err == nil, g.want, err)
			}
		}
	}
}

// Retries follow the schedule within ±20 %, the same for the same job and attempt, and
// different jobs spread.
func TestRetryDelay(t *testing.T) {
	p := retryPolicy{DefaultSchedule}
	seen := map[time.Duration]bool{}
	for id := int64(1); id <= 50; id++ {
		for attempt := 1; attempt <= 9; attempt++ {
			base := DefaultSchedule[min(attempt-1, len(DefaultSchedule)-1)]
			d := p.delay(id, attempt)
			if d < base*8/10 || d > base*12/10 {
				t.Fatalf("job %d attempt %d: %v, base %v", id, attempt, d, base)
			}
			if d != p.delay(id, attempt) {
				t.Fatal("not deterministic")
			}
			if attempt == 1 {
				seen[d] = true
			}
		}
	}
	if len(seen) < 40 {
		t.Fatalf("only %d distinct first delays over 50 jobs: no jitter", len(seen))
	}
}
