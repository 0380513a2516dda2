package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// TestStatsMatchRecount drives every state change through the store and checks after each
// step that the running totals in run_stats equal a recount of runs.
func TestStatsMatchRecount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "stats.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	step := 0
	check := func(what string) {
		t.Helper()
		step++
		got, want := statsRows(t, s, `SELECT workspace, agent, recipe, state, priority, runs, waited, wait_us, timed, duration_us
FROM run_stats WHERE runs <> 0 OR waited <> 0 OR wait_us <> 0 OR timed <> 0 OR duration_us <> 0`), statsRows(t, s, sqlStatsRecount)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d (%s): run_stats differs from a recount:\n got  %v\n want %v", step, what, got, want)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	var ids []string
	later := now.Add(time.Hour)
	for i := range 30 {
		p := &store.RunInsertParams{ID: fmt.Sprintf("run_%02d", i), Recipe: fmt.Sprint("r", i%2), Agent: fmt.Sprint("a", i%3),
			Workspace: fmt.Sprint("w", i%2), Priority: spool.Priority(i % 4), CreatedAt: now, MaxRetries: i % 2,
			WebhookURL: "https://example.com/h"}
		if i%5 == 0 {
			p.SessionID = "s"
		}
		if i%7 == 0 {
			p.RunAt = &later
		}
		_, _, err := s.RunInsert(ctx, p)
		must(err)
		ids = append(ids, p.ID)
	}
	check("insert")
	for _, id := range ids[1:4] {
		_, err := s.RunPause(ctx, id, now)
		must(err)
	}
	check("pause")
	_, err = s.RunResume(ctx, ids[1], now)
	must(err)
	check("resume")
	for _, id := range []string{ids[2], ids[5], ids[7]} {
		_, err := s.RunCancel(ctx, id, now)
		must(err)
	}
	check("cancel waiting")
	claimed, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: now.Add(2 * time.Second), LeaseUntil: now.Add(time.Minute), Max: 12})
	must(err)
	check("claim")
	var fin []*store.RunFinishParams
	for i, c := range claimed {
		p := &store.RunFinishParams{ID: c.ID, Node: "n", Attempt: c.Attempt, Now: now.Add(5 * time.Second)}
		switch i % 5 {
		case 0:
			p.State = spool.StateSucceeded
		case 1:
			p.State, p.ErrorCode = spool.StateFailed, spool.CodeTimeout
		case 2:
			p.State, p.AvailableAt = spool.StateQueued, now
		case 3:
			p.State, p.AvailableAt, p.KeepAttempt = spool.StateQueued, now, true
		default:
			continue // stays running
		}
		fin = append(fin, p)
	}
	_, err = s.RunFinishMany(ctx, nil, fin)
	must(err)
	check("finish")
	_, err = s.RunCancel(ctx, claimed[4].ID, now)
	must(err)
	check("cancel running")
	_, err = s.RunClear(ctx, &store.RunClearParams{All: true, Workspace: claimed[4].Workspace, Now: now})
	must(err)
	check("clear all")
	_, err = s.RunFinishMany(ctx, nil, []*store.RunFinishParams{{ID: claimed[4].ID, Node: "n", Attempt: claimed[4].Attempt,
		State: spool.StateCancelled, Now: now.Add(6 * time.Second)}})
	must(err)
	check("finish of a cleared run (purged)")
	_, err = s.RunRescue(ctx, &store.RunRescueParams{Now: now.Add(2 * time.Minute)})
	must(err)
	check("rescue")
	_, err = s.RunPromote(ctx, later)
	must(err)
	check("promote")
	more, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: later, Max: 100})
	must(err)
	for _, c := range more {
		_, err := s.RunFinishMany(ctx, nil, []*store.RunFinishParams{{ID: c.ID, Node: "n", Attempt: c.Attempt, State: spool.StateSucceeded, Now: later.Add(time.Second)}})
		must(err)
	}
	check("claim and finish the rest")
	_, err = s.RunRescue(ctx, &store.RunRescueParams{Now: later, AllRunning: true})
	must(err)
	check("rescue all")
	for _, c := range more[:3] {
		must(s.RunDelete(ctx, c.ID))
	}
	check("delete")
	_, err = s.RunClear(ctx, &store.RunClearParams{Before: later, Workspace: "w1", Now: later})
	must(err)
	check("clear aged")
	_, err = s.RunClear(ctx, &store.RunClearParams{Now: later})
	must(err)
	check("clear")
	st, err := s.RunStats(ctx, "")
	must(err)
	if st.Total == 0 || st.Succeeded+st.Failed+st.Cancelled != 0 {
		t.Fatalf("after clearing every terminal run: %+v", st)
	}
}

func statsRows(t *testing.T, s *Store, query string) []string {
	t.Helper()
	rows, err := s.rdb.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			ws, agent, recipe, state string
			prio, n, w, wus, tm, dus int64
		)
		if err := rows.Scan(&ws, &agent, &recipe, &state, &prio, &n, &w, &wus, &tm, &dus); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(ws, "/", agent, "/", recipe, "/", state, "/", prio, ": ", n, " ", w, " ", wus, " ", tm, " ", dus))
	}
	slices.Sort(out)
	return out
}
