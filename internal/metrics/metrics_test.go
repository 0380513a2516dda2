package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spool-run/spool"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape status %d: %s", rec.Code, rec.Body)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestHooksFeedTheCounters(t *testing.T) {
	t.Parallel()
	m := New()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	started := t0.Add(2 * time.Second)
	done := started.Add(3 * time.Second)
	run := &spool.Run{ID: "run_1", Recipe: "echo", Workspace: "acme", State: spool.StateQueued, CreatedAt: t0}
	m.RunSubmitted(run)
	m.RunSubmitted(&spool.Run{ID: "run_2", Recipe: "echo", Workspace: "acme"})
	run.StartedAt, run.Attempt = &started, 1
	m.RunStarted(run)
	run.State, run.CompletedAt = spool.StateSucceeded, &done
	m.RunCompleted(run)
	m.WebhookAttempt("retry")
	m.WebhookAttempt("delivered")

	if got := testutil.ToFloat64(m.submitted.WithLabelValues("echo", "acme")); got != 2 {
		t.Errorf("submitted = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.completed.WithLabelValues("echo", "acme", "succeeded")); got != 1 {
		t.Errorf("completed = %v, want 1", got)
	}
	body := scrape(t, m)
	for _, want := range []string{
		`spool_run_wait_seconds_sum{recipe="echo"} 2`,
		`spool_run_duration_seconds_sum{recipe="echo"} 3`,
		`spool_run_duration_seconds_count{recipe="echo"} 1`,
		`spool_webhook_deliveries_total{outcome="delivered"} 1`,
		`spool_webhook_deliveries_total{outcome="failed"} 0`,
		`spool_webhook_deliveries_total{outcome="retry"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, "run_1") || strings.Contains(body, "run_2") {
		t.Error("a run id appears in the metrics")
	}
}

// A retry's wait counts from when it became available again, not from the submit.
func TestWaitOfARetryCountsFromItsBackoff(t *testing.T) {
	t.Parallel()
	m := New()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	avail := t0.Add(time.Minute)
	started := avail.Add(500 * time.Millisecond)
	m.RunStarted(&spool.Run{Recipe: "flaky", CreatedAt: t0, AvailableAt: avail, StartedAt: &started, Attempt: 2})
	if body := scrape(t, m); !strings.Contains(body, `spool_run_wait_seconds_sum{recipe="flaky"} 0.5`) {
		t.Errorf("wait sum not 0.5:\n%s", grep(body, "spool_run_wait_seconds_sum"))
	}
}

func TestQueueGaugesReadStatsAtScrape(t *testing.T) {
	t.Parallel()
	m := New()
	if body := scrape(t, m); strings.Contains(body, "spool_runs_queued") {
		t.Error("gauges exported before SetStats")
	}
	calls := 0
	m.SetStats(func(ctx context.Context) (*spool.Stats, error) {
		calls++
		return &spool.Stats{Running: 3, QueuedByPriority: map[string]int64{"high": 2, "normal": 5}}, nil
	})
	body := scrape(t, m)
	for _, want := range []string{
		`spool_runs_queued{priority="high"} 2`,
		`spool_runs_queued{priority="normal"} 5`,
		`spool_runs_queued{priority="urgent"} 0`,
		`spool_runs_queued{priority="low"} 0`,
		`spool_runs_running 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if calls != 1 {
		t.Errorf("stats read %d times in one scrape", calls)
	}
}

func TestStatsErrorFailsTheScrapeVisibly(t *testing.T) {
	t.Parallel()
	m := New()
	m.SetStats(func(ctx context.Context) (*spool.Stats, error) { return nil, errors.New("database is down") })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "database is down") {
		t.Fatalf("status %d body %q, want 500 naming the cause", rec.Code, rec.Body)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestRateLimitGauges(t *testing.T) {
	t.Parallel()
	m := New()
	m.SetStats(func(ctx context.Context) (*spool.Stats, error) { return &spool.Stats{}, nil })
	if body := scrape(t, m); strings.Contains(body, "spool_runs_rate_limited") {
		t.Error("rate gauges exported before SetRateStats")
	}
	next := time.Unix(1900000000, 500_000_000)
	var waiting int64 = 7
	m.SetRateStats(func(ctx context.Context) (int64, *time.Time, error) {
		if waiting == 0 {
			return 0, nil, nil
		}
		return waiting, &next, nil
	})
	body := scrape(t, m)
	for _, want := range []string{"spool_runs_rate_limited 7", "spool_rate_limit_next_start_timestamp_seconds 1.9000000005e+09"} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q:\n%s", want, grep(body, "rate"))
		}
	}
	waiting = 0
	body = scrape(t, m)
	if !strings.Contains(body, "spool_runs_rate_limited 0") || strings.Contains(body, "spool_rate_limit_next_start_timestamp_seconds ") {
		t.Errorf("with nothing waiting:\n%s", grep(body, "rate"))
	}
}
