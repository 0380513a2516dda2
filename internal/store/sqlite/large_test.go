package sqlite

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// The large-queue benchmarks share one database of largeRuns runs, built once per process:
// agent "bulk" holds all but largeOther urgent runs, agent "other" the rest, at low
// priority, so a claim with "bulk" full must look past a million runs. The oldest thousand
// are running.
const (
	largeRuns  = 1_000_000
	largeOther = 1_000
)

var (
	largeOnce  sync.Once
	largeStore *Store
	largeDir   string
	largeErr   error
	largeNow   = time.Now()
)

func openLarge(b *testing.B) *Store {
	b.Helper()
	largeOnce.Do(func() {
		largeDir, largeErr = os.MkdirTemp("", "spool-large-")
		if largeErr != nil {
			return
		}
		ctx := context.Background()
		largeStore, largeErr = Open(ctx, filepath.Join(largeDir, "large.db"))
		if largeErr != nil {
			return
		}
		t0 := time.Now()
		largeErr = largeStore.write(ctx, func(tx *wtx) error {
			_, err := tx.exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1)
INSERT INTO runs (id, recipe, agent, workspace, state, priority, input, created_at, available_at)
SELECT printf('run_%08d', x), 'r',
	CASE WHEN x > ?1 - ?2 THEN 'other' ELSE 'bulk' END, 'default', 'queued',
	CASE WHEN x > ?1 - ?2 THEN 0 ELSE 3 END, '{"prompt":"hello"}', ?3, ?3
FROM c`, largeRuns, largeOther, micros(largeNow))
			if err != nil {
				return err
			}
			return recountStats(tx)
		})
		if largeErr == nil {
			// A thousand of the oldest runs are running, as behind a busy queue.
			_, largeErr = largeStore.RunClaim(ctx, &store.RunClaimParams{Node: "keep", Now: largeNow, Max: 1000})
		}
		b.Logf("built %d queued runs (1000 of them running) in %v", largeRuns, time.Since(t0))
	})
	if largeErr != nil {
		b.Fatal(largeErr)
	}
	return largeStore
}

// CloseLarge removes the shared large database, if a benchmark built it.
func CloseLarge() {
	if largeStore != nil {
		largeStore.Close()
		os.RemoveAll(largeDir)
	}
}

// BenchmarkLargeQueue measures claims and reads against a million queued runs. Each claim
// op re-queues what it claimed (untimed), so the queue stays the same.
func BenchmarkLargeQueue(b *testing.B) {
	ctx := context.Background()
	claimRequeue := func(b *testing.B, p *store.RunClaimParams, want int) {
		s := openLarge(b)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			got, err := s.RunClaim(ctx, p)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) != want {
				b.Fatalf("claimed %d, want %d", len(got), want)
			}
			b.StopTimer()
			ps := make([]*store.RunFinishParams, len(got))
			for i, c := range got {
				ps[i] = &store.RunFinishParams{ID: c.ID, Node: p.Node, Attempt: c.Attempt, State: spool.StateQueued,
					KeepAttempt: true, Now: largeNow, AvailableAt: largeNow}
			}
			if _, err := s.RunFinishMany(ctx, nil, ps); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.Run("Claim100", func(b *testing.B) {
		claimRequeue(b, &store.RunClaimParams{Node: "n", Now: largeNow, Max: 100}, 100)
	})
	b.Run("Claim100PastFullAgent", func(b *testing.B) {
		// "bulk" is at its limit of 1000 with its 998,000 queued runs ahead of "other".
		claimRequeue(b, &store.RunClaimParams{Node: "n", Now: largeNow, Max: 100,
			Limits: spool.Limits{Agents: map[string]int{"bulk": 1000}}}, 100)
	})
	b.Run("Claim100PastHeldAgent", func(b *testing.B) {
		claimRequeue(b, &store.RunClaimParams{Node: "n", Now: largeNow, Max: 100, HeldAgents: []string{"bulk"}}, 100)
	})
	list := func(name string, p spool.ListParams, want int) {
		b.Run(name, func(b *testing.B) {
			s := openLarge(b)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				runs, _, err := s.RunList(ctx, &p)
				if err != nil {
					b.Fatal(err)
				}
				if len(runs) != want {
					b.Fatalf("listed %d, want %d", len(runs), want)
				}
			}
		})
	}
	list("ListNewest", spool.ListParams{PageSize: 20}, 20)
	list("ListWorkspaceTotal", spool.ListParams{Workspace: "default", PageSize: 20, WithTotal: true}, 20)
	list("ListQueuedRunning", spool.ListParams{States: []spool.State{spool.StateQueued, spool.StateRunning}, PageSize: 20, WithTotal: true}, 20)
	list("ListRareAgent", spool.ListParams{Agent: "other", PageSize: 20, Page: 3, WithTotal: true}, 20)
	list("ListRunning", spool.ListParams{States: []spool.State{spool.StateRunning}, PageSize: 20, WithTotal: true}, 20)
	list("ListFailed", spool.ListParams{States: []spool.State{spool.StateFailed}, PageSize: 20, WithTotal: true}, 0)
	b.Run("Stats", func(b *testing.B) {
		s := openLarge(b)
		b.ReportAllocs()
		for b.Loop() {
			st, err := s.RunStats(ctx, "")
			if err != nil {
				b.Fatal(err)
			}
			if st.Queued < largeRuns-2000 || st.Running < 1000 {
				b.Fatalf("queued %d", st.Queued)
			}
		}
	})
	b.Run("Claim100Again", func(b *testing.B) {
		claimRequeue(b, &store.RunClaimParams{Node: "n", Now: largeNow, Max: 100}, 100)
	})
	b.Run("InsertOne", func(b *testing.B) {
		s := openLarge(b)
		b.ReportAllocs()
		for b.Loop() {
			p := &store.RunInsertParams{Recipe: "r", Agent: "other", Workspace: "default", Input: json.RawMessage(`{}`),
				CreatedAt: largeNow, MaxQueued: 10 * largeRuns}
			if _, _, err := s.RunInsert(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
