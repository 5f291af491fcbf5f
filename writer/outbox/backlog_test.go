package outbox

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/licensing/licensing/internal/dbtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBacklogCountsUnsentRows: the backlog gauges count the unsent rows of every brand
// (row-level security would hide them from a session without app.brand_id = 'all') and
// report the oldest one's age; published rows leave them; the sample time moves.
func TestBacklogCountsUnsentRows(t *testing.T) {
	db := dbtest.New(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, db.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	b := NewBacklog(pool, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))

	gauges := func(want string) {
		t.Helper()
		if err := b.Sample(ctx); err != nil {
			t.Fatal(err)
		}
		if err := testutil.CollectAndCompare(b, strings.NewReader(want), "license_outbox_unsent_rows", "license_outbox_backlog_sampled_timestamp_seconds"); err != nil {
			t.Error(err)
		}
	}
	const head = `# HELP license_outbox_backlog_sampled_timestamp_seconds When the outbox backlog gauges were last sampled successfully (Unix time; 0: never).
# TYPE license_outbox_backlog_sampled_timestamp_seconds gauge
license_outbox_backlog_sampled_timestamp_seconds 1.7959464e+09
# HELP license_outbox_unsent_rows Outbox rows not yet published to JetStream; database-wide (every writer reports it: take the max), sampled every 10 s.
# TYPE license_outbox_unsent_rows gauge
`
	gauges(head + "license_outbox_unsent_rows 0\n")

	// three unsent rows of two brands, the oldest 90 s old, and one sent row
	if _, err := pool.Exec(ctx, `BEGIN; SELECT set_config('app.brand_id', 'all', true);
		INSERT INTO outbox (brand_id, license_key_id, version, subject, payload, created_at, sent_at) VALUES
		  (gen_random_uuid(), gen_random_uuid(), 1, 's', '{}', now() - interval '90 seconds', NULL),
		  (gen_random_uuid(), gen_random_uuid(), 1, 's', '{}', now() - interval '10 seconds', NULL),
		  (gen_random_uuid(), gen_random_uuid(), 2, 's', '{}', now(), NULL),
		  (gen_random_uuid(), gen_random_uuid(), 1, 's', '{}', now() - interval '1 hour', now());
		COMMIT`); err != nil {
		t.Fatal(err)
	}
	gauges(head + "license_outbox_unsent_rows 3\n")
	if age := testutil.ToFloat64(oldestOnly{b}); age < 90 || age > 120 {
		t.Errorf("oldest unsent age %v s, want about 90", age)
	}

	if _, err := pool.Exec(ctx, `BEGIN; SELECT set_config('app.brand_id', 'all', true);
		UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL; COMMIT`); err != nil {
		t.Fatal(err)
	}
	gauges(head + "license_outbox_unsent_rows 0\n")
	if age := testutil.ToFloat64(oldestOnly{b}); age != 0 {
		t.Errorf("oldest unsent age %v s with nothing unsent, want 0", age)
	}
}

// oldestOnly collects the oldest-unsent-age gauge of a Backlog alone.
type oldestOnly struct{ b *Backlog }

func (o oldestOnly) Describe(ch chan<- *prometheus.Desc) { ch <- oldestUnsentDesc }

func (o oldestOnly) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 3)
	o.b.Collect(all)
	close(all)
	for m := range all {
		if m.Desc() == oldestUnsentDesc {
			ch <- m
		}
	}
}
