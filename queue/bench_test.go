package queue_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// BenchmarkWorkRate drains b.N pre-inserted no-op runs with 100 workers on SQLite.
func BenchmarkWorkRate(b *testing.B) {
	ctx := context.Background()
	db := filepath.Join(b.TempDir(), "spool.db")
	e, err := queue.New(queue.Config{DB: db, Limits: spool.Limits{Global: 100}, MaxQueueSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	var done atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	e.Register("noop", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) { return nil, nil }))
	reqs := make([]*spool.SubmitRequest, 0, 1000)
	for i := 0; i < b.N; i++ {
		reqs = append(reqs, &spool.SubmitRequest{Recipe: "noop"})
		if len(reqs) == 1000 || i == b.N-1 {
			if _, err := e.SubmitMany(ctx, reqs); err != nil {
				b.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
	e2cfg := queue.Config{DB: db, Limits: spool.Limits{Global: 100}, MaxQueueSize: -1,
		OnComplete: func(*spool.Run) {
			if done.Add(1) == n {
				close(all)
			}
		}}
	if err := e.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	e, err = queue.New(e2cfg)
	if err != nil {
		b.Fatal(err)
	}
	e.Register("noop", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) { return nil, nil }))
	b.ResetTimer()
	start := time.Now()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	<-all
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
	b.StopTimer()
	e.Stop(ctx)
}

// BenchmarkEventBatching streams b.N output chunks from one run through the event writer
// (batched inserts) and a live subscriber.
func BenchmarkEventBatching(b *testing.B) {
	ctx := context.Background()
	e, err := queue.New(queue.Config{DB: filepath.Join(b.TempDir(), "spool.db")})
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	e.Register("talk", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		for i := 0; i < n; i++ {
			queue.Output(ctx, "token ")
		}
		return nil, nil
	}))
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer e.Stop(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	run, _, err := e.Submit(ctx, &spool.SubmitRequest{Recipe: "talk"})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := e.Subscribe(ctx, run.ID, 0)
	if err != nil {
		b.Fatal(err)
	}
	outputs := 0
	for ev := range sub.C {
		if ev.Type == spool.EventOutput {
			outputs++
		}
	}
	sub.Close()
	if outputs != n {
		b.Fatalf("subscriber saw %d outputs, want %d", outputs, n)
	}
}
