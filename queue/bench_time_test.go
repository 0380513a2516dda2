package queue_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store/postgres/pgtest"
	"github.com/spool-run/spool/queue"
)

// BenchmarkDispatch measures how fast b.N pre-inserted no-op runs are claimed and worked
// (100 workers), alone ("plain") and with a background that must not slow the dispatcher:
// 100,000 runs scheduled an hour ahead ("scheduled-100k"); the work spread over 1,000
// agents without ("agents-1000") and with a rate limit each, so that every claim takes
// tokens from their buckets ("rated-1000": compare it with agents-1000); or 1,000
// rate-limited agents whose buckets are empty, each with 10 urgent runs waiting ahead of the
// work ("blocked-1000"). Run it with a fixed count so they compare:
//
//	go test ./queue -run '^$' -bench BenchmarkDispatch -benchtime 20000x
func BenchmarkDispatch(b *testing.B) {
	for _, driver := range []string{"sqlite", "postgres"} {
		for _, bg := range []string{"plain", "scheduled-100k", "agents-1000", "rated-1000", "blocked-1000"} {
			b.Run(driver+"/"+bg, func(b *testing.B) { benchDispatch(b, driver, bg) })
		}
	}
}

const (
	benchScheduled     = 100_000
	benchLimitedAgents = 1000
	benchLimitedRuns   = 10
)

func benchDispatch(b *testing.B, driver, background string) {
	ctx := context.Background()
	db := filepath.Join(b.TempDir(), "spool.db")
	if driver == "postgres" {
		db, _ = pgtest.Schema(b)
	}
	cfg := queue.Config{DB: db, Limits: spool.Limits{Global: 100}, MaxQueueSize: -1}
	workAgent := func(int) string { return "" }
	switch background {
	case "agents-1000":
		workAgent = func(i int) string { return fmt.Sprintf("lim%04d", i%benchLimitedAgents) }
	case "rated-1000":
		cfg.AgentRates = map[string]queue.Rate{}
		for i := 0; i < benchLimitedAgents; i++ {
			cfg.AgentRates[fmt.Sprintf("lim%04d", i)] = queue.Rate{Limit: 1_000_000, Per: time.Second, Burst: 1_000_000}
		}
		workAgent = func(i int) string { return fmt.Sprintf("lim%04d", i%benchLimitedAgents) }
	case "blocked-1000":
		cfg.AgentRates = map[string]queue.Rate{}
		for i := 0; i < benchLimitedAgents; i++ {
			cfg.AgentRates[fmt.Sprintf("lim%04d", i)] = queue.Rate{Limit: 1, Per: time.Hour}
		}
	}
	var limitedDone atomic.Int64
	var workDone atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	handlers := func(e *queue.Engine) {
		e.Register("limited", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			limitedDone.Add(1)
			return nil, nil
		}))
		e.Register("work", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			if workDone.Add(1) == n {
				close(all)
			}
			return nil, nil
		}))
	}
	open := func() *queue.Engine {
		e, err := queue.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		handlers(e)
		return e
	}
	submit := func(e *queue.Engine, count int, req func(i int) *spool.SubmitRequest) {
		reqs := make([]*spool.SubmitRequest, 0, 1000)
		for i := 0; i < count; i++ {
			reqs = append(reqs, req(i))
			if len(reqs) == cap(reqs) || i == count-1 {
				if _, err := e.SubmitMany(ctx, reqs); err != nil {
					b.Fatal(err)
				}
				reqs = reqs[:0]
			}
		}
	}

	// The background, then the work, inserted while no engine works runs.
	e := open()
	switch background {
	case "scheduled-100k":
		submit(e, benchScheduled, func(int) *spool.SubmitRequest {
			return &spool.SubmitRequest{Recipe: "work", Delay: spool.Duration(time.Hour)}
		})
	case "blocked-1000":
		submit(e, benchLimitedAgents*benchLimitedRuns, func(i int) *spool.SubmitRequest {
			return &spool.SubmitRequest{Recipe: "limited", Agent: fmt.Sprintf("lim%04d", i%benchLimitedAgents), Priority: prio(spool.PriorityUrgent)}
		})
		// Let each agent spend its token, so every bucket is empty when the work starts.
		if err := e.Start(ctx); err != nil {
			b.Fatal(err)
		}
		for limitedDone.Load() < benchLimitedAgents {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := e.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	e = open()
	submit(e, b.N, func(i int) *spool.SubmitRequest { return &spool.SubmitRequest{Recipe: "work", Agent: workAgent(i)} })
	if err := e.Stop(ctx); err != nil {
		b.Fatal(err)
	}

	e = open()
	b.ResetTimer()
	start := time.Now()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	<-all
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
	b.StopTimer()
	if got := limitedDone.Load(); background == "blocked-1000" && got != benchLimitedAgents {
		b.Errorf("%d rate-limited runs ran, want %d (one per agent)", got, benchLimitedAgents)
	}
	e.Stop(ctx)
}
