package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/internal/store/sqlite"
)

// The benchmarks report cpu-ns/op beside ns/op: the process CPU time per op, which is
// steadier than wall time on a shared machine. One op is one run (or event) in every
// benchmark, whatever the batch size.

func benchStore(b *testing.B) *sqlite.Store {
	b.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// startCPU resets the timer and returns a func that reports CPU time per op.
func startCPU(b *testing.B) func() {
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	return func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchParams(now time.Time, agent string) *store.RunInsertParams {
	return &store.RunInsertParams{
		ID: "run_" + ulid.Make().String(), Recipe: agent, Agent: agent, Workspace: "default",
		Priority: spool.PriorityNormal, Input: json.RawMessage(`{"prompt":"hello"}`), CreatedAt: now,
	}
}

// fill inserts n queued runs in batches of 1000.
func fill(b *testing.B, s *sqlite.Store, n int, now time.Time, agent func(i int) string) {
	b.Helper()
	ctx := context.Background()
	for done := 0; done < n; {
		k := min(1000, n-done)
		ps := make([]*store.RunInsertParams, k)
		for i := range ps {
			ps[i] = benchParams(now, agent(done+i))
		}
		if _, err := s.RunInsertMany(ctx, ps); err != nil {
			b.Fatal(err)
		}
		done += k
	}
}

func oneAgent(int) string { return "echo" }

func eightAgents(i int) string { return fmt.Sprint("agent-", i%8) }

// BenchmarkInsert measures RunInsert, one run per call (Serial: one commit each; Parallel:
// concurrent calls share commits), and RunInsertMany with 100 runs per call.
func BenchmarkInsert(b *testing.B) {
	b.Run("Serial", func(b *testing.B) {
		s := benchStore(b)
		ctx, now := context.Background(), time.Now()
		defer startCPU(b)()
		for range b.N {
			if _, _, err := s.RunInsert(ctx, benchParams(now, "echo")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		s := benchStore(b)
		ctx, now := context.Background(), time.Now()
		b.SetParallelism(32)
		defer startCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.RunInsert(ctx, benchParams(now, "echo")); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("Many100", func(b *testing.B) {
		s := benchStore(b)
		ctx, now := context.Background(), time.Now()
		defer startCPU(b)()
		for i := 0; i < b.N; i += 100 {
			ps := make([]*store.RunInsertParams, min(100, b.N-i))
			for j := range ps {
				ps[j] = benchParams(now, "echo")
			}
			if _, err := s.RunInsertMany(ctx, ps); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkClaim measures claiming in batches of 100 across eight agents, alone and with a
// full agent whose backlog of 100,000 runs the claim has to look past.
func BenchmarkClaim(b *testing.B) {
	for _, backlog := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("Batch100/Backlog%d", backlog), func(b *testing.B) {
			s := benchStore(b)
			ctx, now := context.Background(), time.Now()
			limits := spool.Limits{Agents: map[string]int{"full": 1}}
			if backlog > 0 {
				fill(b, s, 1, now, func(int) string { return "full" })
				if got, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: now, Max: 1, Limits: limits}); err != nil || len(got) != 1 {
					b.Fatal(err)
				}
				fill(b, s, backlog, now, func(int) string { return "full" })
			}
			fill(b, s, b.N, now, eightAgents)
			p := &store.RunClaimParams{Node: "n", Now: now, LeaseUntil: now.Add(time.Minute), Max: 100, Limits: limits}
			defer startCPU(b)()
			for claimed := 0; claimed < b.N; {
				got, err := s.RunClaim(ctx, p)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) == 0 {
					b.Fatalf("claimed nothing after %d of %d", claimed, b.N)
				}
				claimed += len(got)
			}
		})
	}
}

// BenchmarkClaimSmall measures claims of four runs at a time with 100 runs running, as an
// engine claims when a few of its workers free up.
func BenchmarkClaimSmall(b *testing.B) {
	s := benchStore(b)
	ctx, now := context.Background(), time.Now()
	fill(b, s, b.N+100, now, eightAgents)
	if got, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: now, Max: 100}); err != nil || len(got) != 100 {
		b.Fatal(err)
	}
	p := &store.RunClaimParams{Node: "n", Now: now, LeaseUntil: now.Add(time.Minute), Max: 4,
		Limits: spool.Limits{Global: 1_000_000, PerAgent: 1_000_000}}
	defer startCPU(b)()
	for claimed := 0; claimed < b.N; {
		got, err := s.RunClaim(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			b.Fatalf("claimed nothing after %d of %d", claimed, b.N)
		}
		claimed += len(got)
	}
}

// BenchmarkClaimRateLimited measures claims of 16 runs at a time, alone and while 1,000
// rate-limited agents, their tokens spent, wait with 10 urgent runs each (the bench's
// rate_limited_agents workload): the claim has to look past 10,000 runs it may not start.
func BenchmarkClaimRateLimited(b *testing.B) {
	for _, agents := range []int{0, 1000} {
		b.Run(fmt.Sprintf("Agents%d", agents), func(b *testing.B) {
			s := benchStore(b)
			ctx, now := context.Background(), time.Now()
			rates := map[string]store.Rate{}
			limited := func(i int) string { return fmt.Sprintf("limited%04d", i%agents) }
			for i := range agents {
				rates[store.RateKey(store.RateAgent, limited(i))] = store.Rate{Limit: 1, Per: time.Hour}
			}
			urgent := func(n int) {
				for done := 0; done < n; {
					k := min(1000, n-done)
					ps := make([]*store.RunInsertParams, k)
					for i := range ps {
						ps[i] = benchParams(now, limited(done+i))
						ps[i].Priority = spool.PriorityUrgent
					}
					if _, err := s.RunInsertMany(ctx, ps); err != nil {
						b.Fatal(err)
					}
					done += k
				}
			}
			if agents > 0 {
				urgent(agents)
				got, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: now, Max: agents, Rates: rates})
				if err != nil || len(got) != agents {
					b.Fatalf("spending the tokens: %d claimed, %v", len(got), err)
				}
				evs, ps := finishes(got, now)
				if _, err := s.RunFinishMany(ctx, evs, ps); err != nil {
					b.Fatal(err)
				}
				urgent(10 * agents)
			}
			fill(b, s, b.N, now, oneAgent)
			p := &store.RunClaimParams{Node: "n", LeaseUntil: now.Add(time.Minute), Max: 16, Rates: rates}
			defer startCPU(b)()
			for claimed := 0; claimed < b.N; {
				p.Now = now.Add(time.Duration(claimed) * time.Microsecond)
				got, err := s.RunClaim(ctx, p)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) == 0 {
					b.Fatalf("claimed nothing after %d of %d", claimed, b.N)
				}
				claimed += len(got)
			}
		})
	}
}

// finishes builds the finish of claimed runs as the engine sends it: a result and a status
// event per run.
func finishes(cs []*store.ClaimedRun, now time.Time) ([]*spool.Event, []*store.RunFinishParams) {
	var (
		evs []*spool.Event
		ps  []*store.RunFinishParams
	)
	for _, c := range cs {
		evs = append(evs,
			&spool.Event{RunID: c.ID, Seq: c.LastSeq + 1, Type: spool.EventResult, Time: now, Result: json.RawMessage(`"ok"`)},
			&spool.Event{RunID: c.ID, Seq: c.LastSeq + 2, Type: spool.EventStatus, Time: now, Status: spool.StateSucceeded})
		ps = append(ps, &store.RunFinishParams{ID: c.ID, Node: c.Node, Attempt: c.Attempt, State: spool.StateSucceeded,
			Result: json.RawMessage(`"ok"`), Now: now})
	}
	return evs, ps
}

// BenchmarkFinishMany measures finishing runs, 100 per call with two events each.
func BenchmarkFinishMany(b *testing.B) {
	s := benchStore(b)
	ctx, now := context.Background(), time.Now()
	fill(b, s, b.N, now, oneAgent)
	var claimed []*store.ClaimedRun
	for len(claimed) < b.N {
		got, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: now, Max: 1000})
		if err != nil {
			b.Fatal(err)
		}
		claimed = append(claimed, got...)
	}
	defer startCPU(b)()
	for i := 0; i < len(claimed); i += 100 {
		evs, ps := finishes(claimed[i:min(i+100, len(claimed))], now)
		if _, err := s.RunFinishMany(ctx, evs, ps); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventAppend measures storing output events of ten runs, 100 per call.
func BenchmarkEventAppend(b *testing.B) {
	s := benchStore(b)
	ctx, now := context.Background(), time.Now()
	fill(b, s, 10, now, oneAgent)
	claimed, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: now, Max: 10})
	if err != nil {
		b.Fatal(err)
	}
	seq := make([]int64, len(claimed))
	for i, c := range claimed {
		seq[i] = c.LastSeq
	}
	defer startCPU(b)()
	for i := 0; i < b.N; i += 100 {
		evs := make([]*spool.Event, min(100, b.N-i))
		for j := range evs {
			k := j % len(claimed)
			seq[k]++
			evs[j] = &spool.Event{RunID: claimed[k].ID, Seq: seq[k], Type: spool.EventOutput, Time: now, Text: "a token of output "}
		}
		if err := s.EventAppend(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWorkRate works a prefilled queue the way the engine does (claim 100, finish them
// with a result and a status event each) and reports runs per second.
func BenchmarkWorkRate(b *testing.B) {
	s := benchStore(b)
	ctx, now := context.Background(), time.Now()
	fill(b, s, b.N, now, func(i int) string { return fmt.Sprint("agent-", i%4) })
	p := &store.RunClaimParams{Node: "n", Now: now, LeaseUntil: now.Add(time.Minute), Max: 100,
		Limits: spool.Limits{Global: 1000, PerAgent: 500}}
	start := time.Now()
	defer startCPU(b)()
	for done := 0; done < b.N; {
		got, err := s.RunClaim(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			b.Fatalf("claimed nothing after %d of %d", done, b.N)
		}
		evs, ps := finishes(got, now)
		if _, err := s.RunFinishMany(ctx, evs, ps); err != nil {
			b.Fatal(err)
		}
		done += len(got)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
}
