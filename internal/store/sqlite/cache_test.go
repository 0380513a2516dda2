package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

func openCacheTest(t *testing.T, name string) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestClaimCacheMatchesDatabase plays the same random submits, claims, finishes, cancels,
// holds and rate changes on two stores, one of which drops its claimCache before every
// claim (so each claim reads the database), and checks that both start the same runs and
// report the same NextAt, and that the cached counts always equal run_stats.
func TestClaimCacheMatchesDatabase(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			playClaims(t, rand.New(rand.NewPCG(seed, 11)))
		})
	}
}

func playClaims(t *testing.T, rng *rand.Rand) {
	ctx := context.Background()
	cached, fresh := openCacheTest(t, "cached.db"), openCacheTest(t, "fresh.db")
	both := func(fn func(s *Store) (any, error)) any {
		t.Helper()
		a, errA := fn(cached)
		b, errB := fn(fresh)
		if (errA == nil) != (errB == nil) || fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("cached store: %v, %v; fresh store: %v, %v", a, errA, b, errB)
		}
		return a
	}
	name := func(prefix string, n int) string { return fmt.Sprint(prefix, rng.IntN(n)) }
	rateSets := []map[string]store.Rate{
		nil,
		{"agent:*": {Limit: 2, Per: time.Second, Burst: 2}, "recipe:r0": {Limit: 1, Per: 3 * time.Second}},
		{"agent:a0": {Limit: 1, Per: time.Hour}, "agent:a1": {Limit: 3, Per: time.Minute, Burst: 3},
			"workspace:w1": {Limit: 5, Per: 10 * time.Second, Burst: 2}},
		{"workspace:*": {Limit: 4, Per: time.Second, Burst: 1}, "recipe:*": {Limit: 10, Per: time.Minute, Burst: 5}},
	}
	rates := rateSets[1]
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var (
		running []*store.ClaimedRun
		next    time.Time
		seq     int
	)
	for step := range 250 {
		switch r := rng.IntN(100); {
		case r < 5:
			rates = rateSets[rng.IntN(len(rateSets))]
		case r < 7:
			rates = maps.Clone(rates)
		}
		switch r := rng.IntN(100); {
		case r < 25 && next.After(now):
			now = next.Add(time.Duration(rng.IntN(3)-1) * time.Microsecond)
		case r < 28:
			now = now.Add(-time.Duration(rng.IntN(3000)) * time.Millisecond)
		default:
			now = now.Add(time.Duration(rng.Int64N(int64(1500 * time.Millisecond))))
		}
		switch r := rng.IntN(100); {
		case r < 30: // submit
			ps := make([]*store.RunInsertParams, 1+rng.IntN(6))
			for i := range ps {
				seq++
				ps[i] = &store.RunInsertParams{ID: fmt.Sprintf("run_%06d", seq), Recipe: name("r", 3), Agent: name("a", 5),
					Workspace: name("w", 3), Priority: spool.Priority(rng.IntN(4)), Input: json.RawMessage(`{}`), CreatedAt: now}
				if rng.IntN(4) == 0 {
					ps[i].SessionID = name("s", 3)
				}
			}
			both(func(s *Store) (any, error) {
				runs, err := s.RunInsertMany(ctx, ps)
				return len(runs), err
			})
		case r < 70: // claim
			p := &store.RunClaimParams{Node: "n", Now: now, LeaseUntil: now.Add(time.Hour), Max: 1 + rng.IntN(8),
				Rates: rates, Limits: spool.Limits{PerAgent: rng.IntN(4), PerWorkspace: rng.IntN(6), Global: rng.IntN(30)}}
			if rng.IntN(5) == 0 {
				p.HeldAgents = []string{name("a", 5)}
			}
			var resA, resB store.ClaimResult
			pa, pb := *p, *p
			pa.Result, pb.Result = &resA, &resB
			got := both(func(s *Store) (any, error) {
				pp := &pa
				if s == fresh {
					pp = &pb
					if err := s.write(ctx, func(tx *wtx) error { tx.w.cache.reset(); return nil }); err != nil {
						return nil, err
					}
				}
				cs, err := s.RunClaim(ctx, pp)
				ids := make([]string, len(cs))
				for i, c := range cs {
					ids[i] = c.ID
				}
				return ids, err
			}).([]string)
			if !resA.NextAt.Equal(resB.NextAt) {
				t.Fatalf("step %d: NextAt %v cached, %v fresh", step, resA.NextAt, resB.NextAt)
			}
			next = resA.NextAt
			cs, err := cached.RunClaim(ctx, &store.RunClaimParams{Node: "n", Max: 0})
			if err != nil || len(cs) != 0 {
				t.Fatal(cs, err)
			}
			for _, id := range got {
				r, err := cached.RunGet(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				running = append(running, &store.ClaimedRun{Run: r})
			}
		case r < 85 && len(running) > 0: // finish some
			n := 1 + rng.IntN(len(running))
			var ps []*store.RunFinishParams
			for _, c := range running[:n] {
				state := spool.StateSucceeded
				if rng.IntN(3) == 0 {
					state = spool.StateQueued
				}
				ps = append(ps, &store.RunFinishParams{ID: c.ID, Node: c.Node, Attempt: c.Attempt, State: state, Now: now})
			}
			running = running[n:]
			both(func(s *Store) (any, error) {
				runs, err := s.RunFinishMany(ctx, nil, ps)
				return len(runs), err
			})
		case r < 90 && seq > 0: // cancel, pause or resume one
			id := fmt.Sprintf("run_%06d", 1+rng.IntN(seq))
			both(func(s *Store) (any, error) {
				var r *spool.Run
				var err error
				switch rng := step % 3; rng {
				case 0:
					r, err = s.RunCancel(ctx, id, now)
				case 1:
					r, err = s.RunPause(ctx, id, now)
				default:
					r, err = s.RunResume(ctx, id, now)
				}
				if r == nil {
					return nil, err
				}
				return r.State, err
			})
		case r < 92 && seq > 0: // delete one, or clear the finished runs
			id := fmt.Sprintf("run_%06d", 1+rng.IntN(seq))
			clear := rng.IntN(4) == 0
			both(func(s *Store) (any, error) {
				if clear {
					return s.RunClear(ctx, &store.RunClearParams{Before: now, Now: now})
				}
				return nil, s.RunDelete(ctx, id)
			})
		case r < 95: // a provider hold
			key := store.RateKey(store.RateAgent, name("a", 5))
			until := now.Add(time.Duration(rng.Int64N(int64(4*time.Second))) - time.Second)
			both(func(s *Store) (any, error) { return nil, s.RateHold(ctx, key, until) })
		default: // a write that fails after changing the cache is rolled back, cache too
			both(func(s *Store) (any, error) {
				err := s.write(ctx, func(tx *wtx) error {
					if err := tx.w.cache.hold(tx, "agent:a0", now.Add(time.Hour)); err != nil {
						return err
					}
					tx.statsChange(statsKey{"w0", "a0", "r0", string(spool.StateQueued), 0}, statsDelta{runs: 5}, 1)
					if err := tx.flushStats(); err != nil {
						return err
					}
					return errors.New("refused")
				})
				return nil, err
			})
		}
		checkCounts(t, cached, step)
	}
}

// checkCounts checks that the cached counts, when loaded, equal run_stats.
func checkCounts(t *testing.T, s *Store, step int) {
	t.Helper()
	err := s.write(context.Background(), func(tx *wtx) error {
		c := &tx.w.cache
		if !c.countsLoaded {
			return nil
		}
		var db claimCache
		if err := db.loadCounts(tx); err != nil {
			return err
		}
		if !maps.Equal(c.queued, db.queued) || !maps.Equal(c.running, db.running) {
			return fmt.Errorf("step %d: cached queued %v running %v; run_stats queued %v running %v",
				step, c.queued, c.running, db.queued, db.running)
		}
		if !c.groupsOK || c.groupsVersion != c.buckets.Version() {
			return nil
		}
		db.buckets = c.buckets
		db.splitGroups()
		if !maps.Equal(c.open, db.open) || c.blockedQueued != db.blockedQueued {
			return fmt.Errorf("step %d: open groups %v and %d queued in blocked ones; want %v and %d",
				step, c.open, c.blockedQueued, db.open, db.blockedQueued)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestClaimCacheRollback checks that a write rolled back takes the cache's changes with it:
// alone, and beside writes that commit in the same transaction.
func TestClaimCacheRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openCacheTest(t, "rollback.db")
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 4 {
		if _, _, err := s.RunInsert(ctx, &store.RunInsertParams{ID: fmt.Sprint("run_", i), Recipe: "r", Agent: "a",
			Workspace: "w", Input: json.RawMessage(`{}`), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	claimOne := func() int {
		t.Helper()
		cs, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: now, Max: 1})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	if claimOne() != 1 { // loads the cache
		t.Fatal("first claim started nothing")
	}
	fail := func(tx *wtx) error {
		if err := tx.w.cache.hold(tx, "agent:a", now.Add(time.Hour)); err != nil {
			return err
		}
		tx.statsChange(statsKey{"w", "a", "r", string(spool.StateQueued), 0}, statsDelta{runs: -3}, 1)
		if err := tx.flushStats(); err != nil {
			return err
		}
		return errors.New("refused")
	}
	if err := s.write(ctx, fail); err == nil {
		t.Fatal("the failing write succeeded")
	}
	if claimOne() != 1 {
		t.Fatal("a rolled-back hold (or count) still stops claims")
	}
	// In one batch: the failing write between two that commit, the last of which claims.
	// (The test runs the batch itself: the writer goroutine is idle, waiting for jobs, and
	// the channels order these steps with its own.)
	errs := make(chan error, 3)
	var started int
	s.w.run([]*writeJob{
		{ctx: ctx, fn: func(tx *wtx) error { return nil }, done: errs},
		{ctx: ctx, fn: fail, done: errs},
		{ctx: ctx, fn: func(tx *wtx) error {
			cs, err := claim(tx, &store.RunClaimParams{Node: "n", Now: now, Max: 1})
			started = len(cs)
			return err
		}, done: errs},
	})
	var failed int
	for range 3 {
		if err := <-errs; err != nil {
			failed++
		}
	}
	if failed != 1 || started != 1 {
		t.Fatalf("%d writes failed, want 1; the claim after the failed one started %d, want 1", failed, started)
	}
	if claimOne() != 1 {
		t.Fatal("a hold rolled back within a batch still stops claims")
	}
	checkCounts(t, s, 0)
}
