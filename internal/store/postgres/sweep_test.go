package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/internal/store/postgres"
	"github.com/spool-run/spool/internal/store/postgres/pgtest"
)

// The retention sweeper runs on one node at a time: while another holds the sweep lock, a
// sweep deletes nothing; a user's clear is not affected.
func TestSweepRunsOnOneNodeAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, _ := pgtest.Schema(t)
	s := openStore(t, u)
	now := time.Now().UTC()
	for _, id := range []string{"run_a", "run_b"} {
		if _, _, err := s.RunInsert(ctx, &store.RunInsertParams{ID: id, Recipe: "r", Agent: "r", Workspace: "default",
			Input: json.RawMessage("null"), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RunCancel(ctx, id, now); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, postgres.SweepLockKey(s)); err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Hour)
	n, err := s.RunClear(ctx, &store.RunClearParams{Sweep: true, Before: later, Now: later})
	if err != nil || n != 0 {
		t.Fatalf("sweep while another node sweeps deleted %d (%v), want 0", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	n, err = s.RunClear(ctx, &store.RunClearParams{Sweep: true, Before: later, Now: later})
	if err != nil || n != 2 {
		t.Fatalf("sweep deleted %d (%v), want 2", n, err)
	}
}
