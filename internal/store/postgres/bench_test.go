package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/internal/store/postgres"
)

// seedRuns inserts n queued runs in batches of 1,000 (not timed).
func seedRuns(b *testing.B, s *postgres.Store, n int, mods ...func(i int, p *store.RunInsertParams)) {
	b.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 1000 {
		var ps []*store.RunInsertParams
		for i := start; i < min(n, start+1000); i++ {
			p := params(fmt.Sprintf("run_%09d", i))
			for _, m := range mods {
				m(i, p)
			}
			ps = append(ps, p)
		}
		if _, err := s.RunInsertMany(ctx, ps); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsert measures submits one at a time, one transaction each.
func BenchmarkInsert(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := s.RunInsert(ctx, params(fmt.Sprintf("run_%09d", i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertMany measures submits in batches of 1,000 (ns/op is per run).
func BenchmarkInsertMany(b *testing.B) {
	s := newStore(b)
	b.ReportAllocs()
	b.ResetTimer()
	seedRuns(b, s, b.N)
}

// BenchmarkClaim measures claims of 100 runs at a time from a queue of b.N runs of 10
// agents, 3 of which are full (ns/op is per run).
func BenchmarkClaim(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	seedRuns(b, s, b.N, func(i int, p *store.RunInsertParams) {
		p.Agent = fmt.Sprintf("agent%d", i%10)
		p.Priority = spool.Priority(i % 4)
	})
	limits := spool.Limits{Agents: map[string]int{"agent0": 1, "agent1": 1, "agent2": 1}}
	b.ReportAllocs()
	b.ResetTimer()
	claimed := 0
	for claimed < b.N-3 {
		crs, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n1", Now: t0.Add(time.Second),
			LeaseUntil: t0.Add(time.Hour), Max: 100, Limits: limits})
		if err != nil {
			b.Fatal(err)
		}
		if len(crs) == 0 {
			break
		}
		claimed += len(crs)
	}
	if claimed < b.N*7/10 {
		b.Fatalf("claimed %d of %d", claimed, b.N)
	}
}

// BenchmarkFinishMany measures finishes in batches of 100, each with one output event
// (ns/op is per run).
func BenchmarkFinishMany(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	seedRuns(b, s, b.N)
	var crs []*store.ClaimedRun
	for len(crs) < b.N {
		got, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n1", Now: t0.Add(time.Second),
			LeaseUntil: t0.Add(time.Hour), Max: 1000})
		if err != nil {
			b.Fatal(err)
		}
		crs = append(crs, got...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for start := 0; start < len(crs); start += 100 {
		var (
			evs []*spool.Event
			ps  []*store.RunFinishParams
		)
		for _, cr := range crs[start:min(len(crs), start+100)] {
			evs = append(evs, &spool.Event{RunID: cr.ID, Seq: cr.LastSeq + 1, Type: spool.EventResult, Time: t0, Result: []byte(`{"ok":true}`)})
			ps = append(ps, &store.RunFinishParams{ID: cr.ID, Node: "n1", Attempt: cr.Attempt, State: spool.StateSucceeded,
				Result: []byte(`{"ok":true}`), Now: t0.Add(2 * time.Second)})
		}
		runs, err := s.RunFinishMany(ctx, evs, ps)
		if err != nil {
			b.Fatal(err)
		}
		if runs[0] == nil {
			b.Fatal("finish did not apply")
		}
	}
}

// BenchmarkEventAppend measures appending output events in batches of 100 (ns/op is per
// event).
func BenchmarkEventAppend(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	seedRuns(b, s, 10)
	b.ReportAllocs()
	b.ResetTimer()
	for start := 0; start < b.N; start += 100 {
		var evs []*spool.Event
		for i := start; i < min(b.N, start+100); i++ {
			evs = append(evs, &spool.Event{RunID: fmt.Sprintf("run_%09d", i%10), Seq: int64(2 + i/10), Type: spool.EventOutput, Time: t0, Text: "token "})
		}
		if err := s.EventAppend(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimPastFullBacklog measures claims of one run of an agent with room while a
// full agent has 10,000 more urgent runs queued (ns/op is per claim).
func BenchmarkClaimPastFullBacklog(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	seedRuns(b, s, 10000, func(i int, p *store.RunInsertParams) { p.Agent, p.Priority = "full", spool.PriorityUrgent })
	var ps []*store.RunInsertParams
	for i := range b.N {
		ps = append(ps, params(fmt.Sprintf("run_b%09d", i), func(p *store.RunInsertParams) { p.Agent, p.Priority = "free", spool.PriorityLow }))
	}
	if _, err := s.RunInsertMany(ctx, ps); err != nil {
		b.Fatal(err)
	}
	limits := spool.Limits{Agents: map[string]int{"full": 1}}
	claimP := &store.RunClaimParams{Node: "n1", Now: t0.Add(time.Second), LeaseUntil: t0.Add(time.Hour), Max: 1, Limits: limits}
	if _, err := s.RunClaim(ctx, claimP); err != nil { // fills agent "full"
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		crs, err := s.RunClaim(ctx, claimP)
		if err != nil {
			b.Fatal(err)
		}
		if len(crs) != 1 || crs[0].Agent != "free" {
			b.Fatalf("claimed %v", ids(crs))
		}
	}
}
