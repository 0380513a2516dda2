package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/internal/store/postgres"
	"github.com/spool-run/spool/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newStore opens a store on a fresh schema, closed when the test ends.
func newStore(t testing.TB) *postgres.Store {
	t.Helper()
	u, _ := pgtest.Schema(t)
	return openStore(t, u)
}

func openStore(t testing.TB, u string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), u, opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func params(id string, mods ...func(*store.RunInsertParams)) *store.RunInsertParams {
	p := &store.RunInsertParams{
		ID: id, Recipe: "echo", Agent: "echo", Workspace: "default", Priority: spool.PriorityNormal,
		Input: json.RawMessage(`{"x":1}`), MaxRetries: 1, CreatedAt: t0,
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func insert(t testing.TB, s store.Store, p *store.RunInsertParams) *spool.Run {
	t.Helper()
	r, existed, err := s.RunInsert(context.Background(), p)
	if err != nil {
		t.Fatalf("insert %s: %v", p.ID, err)
	}
	if existed {
		t.Fatalf("insert %s: existed", p.ID)
	}
	return r
}

func claim(t testing.TB, s store.Store, p store.RunClaimParams) []*store.ClaimedRun {
	t.Helper()
	if p.Node == "" {
		p.Node = "n1"
	}
	if p.Now.IsZero() {
		p.Now = t0.Add(time.Second)
	}
	if p.LeaseUntil.IsZero() {
		p.LeaseUntil = p.Now.Add(10 * time.Second)
	}
	cr, err := s.RunClaim(context.Background(), &p)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return cr
}

func ids(crs []*store.ClaimedRun) []string {
	var out []string
	for _, c := range crs {
		out = append(out, c.ID)
	}
	return out
}

func finish(t testing.TB, s store.Store, cr *store.ClaimedRun, st spool.State) *spool.Run {
	t.Helper()
	runs, err := s.RunFinishMany(context.Background(), nil, []*store.RunFinishParams{{
		ID: cr.ID, Node: cr.Node, Attempt: cr.Attempt, State: st, Now: t0.Add(3 * time.Second),
	}})
	if err != nil {
		t.Fatalf("finish %s: %v", cr.ID, err)
	}
	return runs[0]
}

func TestOpenMigratesOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	base := pgtest.URL(t)
	_, schema := pgtest.Schema(t)
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 4)
	errs := make([]error, 4)
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(context.Background(), base, postgres.WithSchema(schema))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var applied int
	if err := stores[0].Pool().QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) < 2 {
		t.Fatalf("migration files: %v %v", files, err)
	}
	if applied != len(files) {
		t.Fatalf("schema_migrations has %d rows, want %d", applied, len(files))
	}
	// Every store works on the same tables.
	insert(t, stores[1], params("run_a"))
	if _, err := stores[3].RunGet(context.Background(), "run_a"); err != nil {
		t.Fatalf("get from another store: %v", err)
	}
}

func TestOpenSchemaFromURL(t *testing.T) {
	t.Parallel()
	u, schema := pgtest.Schema(t)
	s := openStore(t, u)
	if s.Schema() != schema {
		t.Fatalf("schema %q, want %q", s.Schema(), schema)
	}
	if s.DatabaseName() != "postgres" {
		t.Fatalf("DatabaseName %q", s.DatabaseName())
	}
}

func TestInsertRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	sched := t0.Add(-time.Minute)
	runAt := t0.Add(time.Hour + 1500*time.Nanosecond)
	p := params("run_rt", func(p *store.RunInsertParams) {
		p.SessionID = "sess"
		p.Priority = spool.PriorityHigh
		p.Input = json.RawMessage(`{"b": 2,  "a": [1, 2]}`) // kept byte for byte
		p.Config = json.RawMessage(`{"model":"x"}`)
		p.Metadata = map[string]any{"framework": "crewai"}
		p.TimeoutSec = 90
		p.RetryOf = "run_old"
		p.IdempotencyKey, p.IdempotencyScope = "k1", spool.ScopeSession
		p.IdemKey = store.IdemKey(p.Workspace, p.SessionID, p.IdempotencyScope, p.IdempotencyKey)
		p.WebhookURL, p.WebhookEvents = "https://example.com/h", []string{"completed", "failed"}
		p.ScheduleID, p.ScheduledFor = "sch_1", &sched
		p.RunAt = &runAt
	})
	got := insert(t, s, p)
	again, err := s.RunGet(ctx, "run_rt")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*spool.Run{got, again} {
		if r.State != spool.StateScheduled || r.Priority != spool.PriorityHigh || r.SessionID != "sess" {
			t.Fatalf("run %+v", r)
		}
		if string(r.Input) != `{"b": 2,  "a": [1, 2]}` || string(r.Config) != `{"model":"x"}` {
			t.Fatalf("json changed: input %s config %s", r.Input, r.Config)
		}
		if r.Metadata["framework"] != "crewai" || len(r.WebhookEvents) != 2 || r.WebhookEvents[1] != "failed" {
			t.Fatalf("metadata %v, webhook events %v", r.Metadata, r.WebhookEvents)
		}
		if r.RunAt == nil || !r.RunAt.Equal(runAt.Truncate(time.Microsecond)) || r.RunAt.Location() != time.UTC {
			t.Fatalf("run_at %v", r.RunAt)
		}
		if !r.AvailableAt.Equal(r.RunAt.Truncate(time.Microsecond)) || !r.CreatedAt.Equal(t0) || r.CreatedAt.Location() != time.UTC {
			t.Fatalf("available_at %v created_at %v", r.AvailableAt, r.CreatedAt)
		}
		if r.ScheduledFor == nil || !r.ScheduledFor.Equal(sched) || r.TimeoutSec != 90 || r.RetryOf != "run_old" || r.MaxRetries != 1 {
			t.Fatalf("run %+v", r)
		}
	}
	evs, err := s.EventList(ctx, "run_rt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Seq != 1 || evs[0].Type != spool.EventStatus || evs[0].Status != spool.StateScheduled {
		t.Fatalf("events %+v", evs)
	}
	if _, err := s.RunGet(ctx, "run_missing"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
}

func TestIdempotencyRaceCreatesOneRun(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	const n = 8
	var (
		wg      sync.WaitGroup
		created atomic.Int32
		runs    = make([]*spool.Run, n)
	)
	for i := range n {
		wg.Go(func() {
			p := params(fmt.Sprintf("run_%d", i), func(p *store.RunInsertParams) {
				p.IdempotencyKey = "same"
				p.IdemKey = store.IdemKey(p.Workspace, "", spool.ScopeGlobal, "same")
			})
			r, existed, err := s.RunInsert(context.Background(), p)
			if err != nil {
				t.Errorf("insert: %v", err)
				return
			}
			if !existed {
				created.Add(1)
			}
			runs[i] = r
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("%d runs created, want 1", created.Load())
	}
	for _, r := range runs {
		if r == nil || r.ID != runs[0].ID {
			t.Fatalf("runs differ: %v vs %v", r, runs[0])
		}
	}
	// InsertMany returns the existing run for a known key, and dedupes within the batch.
	out, err := s.RunInsertMany(context.Background(), []*store.RunInsertParams{
		params("run_m1", func(p *store.RunInsertParams) { p.IdemKey = store.IdemKey(p.Workspace, "", spool.ScopeGlobal, "same") }),
		params("run_m2", func(p *store.RunInsertParams) { p.IdemKey = "g\x1fdefault\x1fnew" }),
		params("run_m3", func(p *store.RunInsertParams) { p.IdemKey = "g\x1fdefault\x1fnew" }),
		params("run_m4"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].ID != runs[0].ID || out[1].ID != "run_m2" || out[2].ID != "run_m2" || out[3].ID != "run_m4" {
		t.Fatalf("insert many: %s %s %s %s", out[0].ID, out[1].ID, out[2].ID, out[3].ID)
	}
}

func TestMaxQueuedHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	const n, limit = 12, 5
	var (
		wg       sync.WaitGroup
		accepted atomic.Int32
	)
	for i := range n {
		wg.Go(func() {
			_, _, err := s.RunInsert(context.Background(), params(fmt.Sprintf("run_%02d", i), func(p *store.RunInsertParams) { p.MaxQueued = limit }))
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.Is(err, spool.ErrQueueFull):
			default:
				t.Errorf("insert: %v", err)
			}
		})
	}
	wg.Wait()
	if accepted.Load() != limit {
		t.Fatalf("accepted %d, want %d", accepted.Load(), limit)
	}
}

// TestClaimLimitsAcrossStores has four claimers on two stores (two "nodes" sharing one
// schema) work through runs of three agents and two workspaces. After every claim it reads
// the running counts from the database: no limit may ever be exceeded.
func TestClaimLimitsAcrossStores(t *testing.T) {
	t.Parallel()
	u, _ := pgtest.Schema(t)
	a, b := openStore(t, u), openStore(t, u)
	ctx := context.Background()
	limits := spool.Limits{Global: 5, PerAgent: 3, PerWorkspace: 4, Agents: map[string]int{"a": 2}}
	agents := []string{"a", "b", "c"}
	var ps []*store.RunInsertParams
	for i := range 60 {
		ps = append(ps, params(fmt.Sprintf("run_%03d", i), func(p *store.RunInsertParams) {
			p.Agent = agents[i%3]
			p.Workspace = []string{"w1", "w2"}[i%2]
			p.Priority = spool.Priority(i % 4)
			if i%10 == 0 {
				p.SessionID = "s1"
			}
		}))
	}
	if _, err := a.RunInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	var (
		wg        sync.WaitGroup
		done      atomic.Int32
		claimedBy sync.Map
		held      sync.Mutex
		running   = map[string]int{}
	)
	check := func(s *postgres.Store) {
		st, err := s.RunStats(ctx, "")
		if err != nil {
			t.Error(err)
			return
		}
		if st.Running > int64(limits.Global) {
			t.Errorf("running %d > global limit %d", st.Running, limits.Global)
		}
		for ag, k := range st.RunningByAgent {
			lim := limits.PerAgent
			if ag == "a" {
				lim = 2
			}
			if k > int64(lim) {
				t.Errorf("agent %s running %d > %d", ag, k, lim)
			}
		}
		for ws, k := range st.RunningByWorkspace {
			if k > int64(limits.PerWorkspace) {
				t.Errorf("workspace %s running %d > %d", ws, k, limits.PerWorkspace)
			}
		}
	}
	for i := range 4 {
		s := []*postgres.Store{a, b}[i%2]
		node := fmt.Sprintf("node%d", i)
		wg.Go(func() {
			deadline := time.Now().Add(30 * time.Second)
			for done.Load() < int32(len(ps)) && time.Now().Before(deadline) && !t.Failed() {
				crs, err := s.RunClaim(ctx, &store.RunClaimParams{Node: node, Now: t0.Add(time.Second),
					LeaseUntil: t0.Add(time.Hour), Max: 3, Limits: limits})
				if err != nil {
					t.Error(err)
					return
				}
				check(s)
				held.Lock()
				for _, cr := range crs {
					if prev, dup := claimedBy.LoadOrStore(cr.ID, node); dup {
						t.Errorf("run %s claimed by %s and %s", cr.ID, prev, node)
					}
					running["agent:"+cr.Agent]++
					running["ws:"+cr.Workspace]++
					if cr.SessionID != "" {
						running["session:"+cr.SessionID]++
						if running["session:"+cr.SessionID] > 1 {
							t.Errorf("two runs of session %s running", cr.SessionID)
						}
					}
				}
				held.Unlock()
				var fps []*store.RunFinishParams
				held.Lock()
				for _, cr := range crs {
					running["agent:"+cr.Agent]--
					running["ws:"+cr.Workspace]--
					if cr.SessionID != "" {
						running["session:"+cr.SessionID]--
					}
					fps = append(fps, &store.RunFinishParams{ID: cr.ID, Node: node, Attempt: cr.Attempt,
						State: spool.StateSucceeded, Now: t0.Add(2 * time.Second)})
				}
				held.Unlock()
				if len(fps) > 0 {
					runs, err := s.RunFinishMany(ctx, nil, fps)
					if err != nil {
						t.Error(err)
						return
					}
					for _, r := range runs {
						if r == nil || r.State != spool.StateSucceeded {
							t.Errorf("finish returned %v", r)
						}
					}
					done.Add(int32(len(fps)))
				}
			}
		})
	}
	wg.Wait()
	st, err := a.RunStats(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Succeeded != int64(len(ps)) {
		t.Fatalf("succeeded %d of %d (stats %+v)", st.Succeeded, len(ps), st)
	}
}

func TestClaimNoHeadOfLineBlocking(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	var ps []*store.RunInsertParams
	for i := range 60 {
		ps = append(ps, params(fmt.Sprintf("run_a%02d", i), func(p *store.RunInsertParams) {
			p.Agent, p.Priority = "a", spool.PriorityUrgent
		}))
	}
	ps = append(ps, params("run_b", func(p *store.RunInsertParams) { p.Agent, p.Priority = "b", spool.PriorityLow }))
	ps = append(ps, params("run_c", func(p *store.RunInsertParams) {
		p.Agent, p.Workspace, p.Priority = "c", "w2", spool.PriorityLow
	}))
	if _, err := s.RunInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	limits := spool.Limits{Agents: map[string]int{"a": 1}}
	got := ids(claim(t, s, store.RunClaimParams{Max: 10, Limits: limits}))
	if fmt.Sprint(got) != "[run_a00 run_b run_c]" {
		t.Fatalf("claimed %v, want [run_a00 run_b run_c]", got)
	}
	if got := claim(t, s, store.RunClaimParams{Max: 10, Limits: limits}); len(got) != 0 {
		t.Fatalf("claimed %v while every group is full or empty", ids(got))
	}
	// A held agent is skipped, others are not.
	if _, err := s.RunInsertMany(ctx, []*store.RunInsertParams{
		params("run_d", func(p *store.RunInsertParams) { p.Agent = "d" }),
		params("run_e", func(p *store.RunInsertParams) { p.Agent = "e" }),
	}); err != nil {
		t.Fatal(err)
	}
	got = ids(claim(t, s, store.RunClaimParams{Max: 10, Limits: limits, HeldAgents: []string{"d"}}))
	if fmt.Sprint(got) != "[run_e]" {
		t.Fatalf("claimed %v, want [run_e]", got)
	}
	// Workspace and global limits.
	if _, err := s.RunInsertMany(ctx, []*store.RunInsertParams{
		params("run_f1", func(p *store.RunInsertParams) { p.Agent, p.Workspace = "f", "w3" }),
		params("run_f2", func(p *store.RunInsertParams) { p.Agent, p.Workspace = "f", "w3" }),
		params("run_g1", func(p *store.RunInsertParams) { p.Agent, p.Workspace = "g", "w4" }),
	}); err != nil {
		t.Fatal(err)
	}
	got = ids(claim(t, s, store.RunClaimParams{Max: 10, Limits: spool.Limits{Global: 5, PerWorkspace: 1, Agents: map[string]int{"a": 1}}}))
	// running: a00, b, c, e (4 of global 5): one more, the first in claim order of w3.
	if fmt.Sprint(got) != "[run_f1]" {
		t.Fatalf("claimed %v, want [run_f1]", got)
	}
}

// TestClaimPastLongBacklog makes a full agent's backlog longer than what the claim reads in
// claim order, so that the claim must read group by group.
func TestClaimPastLongBacklog(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	var ps []*store.RunInsertParams
	for i := range 500 {
		ps = append(ps, params(fmt.Sprintf("run_a%03d", i), func(p *store.RunInsertParams) { p.Agent, p.Priority = "a", spool.PriorityUrgent }))
	}
	ps = append(ps,
		params("run_b1", func(p *store.RunInsertParams) { p.Agent, p.Workspace, p.SessionID = "b", "w3", "s" }),
		params("run_b2", func(p *store.RunInsertParams) { p.Agent, p.Workspace, p.SessionID = "b", "w3", "s" }),
		params("run_c1", func(p *store.RunInsertParams) { p.Agent, p.Workspace = "c", "full" }),
		params("run_d1", func(p *store.RunInsertParams) { p.Agent, p.Workspace, p.Priority = "d", "w2", spool.PriorityHigh }),
		params("run_d2", func(p *store.RunInsertParams) { p.Agent, p.Workspace, p.Priority = "d", "w2", spool.PriorityLow }),
	)
	if _, err := s.RunInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	limits := spool.Limits{Agents: map[string]int{"a": 1}}
	if got := ids(claim(t, s, store.RunClaimParams{Max: 1, Limits: limits})); fmt.Sprint(got) != "[run_a000]" {
		t.Fatalf("claimed %v", got)
	}
	// Workspace "full" is held at its limit by a run of agent e.
	insert(t, s, params("run_e", func(p *store.RunInsertParams) { p.Agent, p.Workspace, p.Priority = "e", "full", spool.PriorityUrgent }))
	if got := ids(claim(t, s, store.RunClaimParams{Max: 1, Limits: limits})); fmt.Sprint(got) != "[run_e]" {
		t.Fatalf("claimed %v", got)
	}
	// One run per workspace: "default" (run_a000) and "full" (run_e) are full; w2 and w3
	// take one run each, in claim order; run_b2 waits behind its session.
	limits.PerWorkspace = 1
	var got []string
	for range 4 {
		got = append(got, ids(claim(t, s, store.RunClaimParams{Max: 1, Limits: limits}))...)
	}
	if fmt.Sprint(got) != "[run_d1 run_b1]" {
		t.Fatalf("claimed %v, want [run_d1 run_b1]", got)
	}
}

func TestClaimSessionOrderAndPriority(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.RunInsertMany(ctx, []*store.RunInsertParams{
		params("run_1", func(p *store.RunInsertParams) { p.SessionID, p.Priority = "s", spool.PriorityLow }),
		params("run_2", func(p *store.RunInsertParams) { p.SessionID, p.Priority = "s", spool.PriorityUrgent }),
		params("run_3", func(p *store.RunInsertParams) { p.Priority = spool.PriorityHigh }),
		params("run_4", func(p *store.RunInsertParams) { p.Priority = spool.PriorityHigh }),
		params("run_5", func(p *store.RunInsertParams) { p.Priority = spool.PriorityUrgent }),
	}); err != nil {
		t.Fatal(err)
	}
	crs := claim(t, s, store.RunClaimParams{Max: 10})
	if got := fmt.Sprint(ids(crs)); got != "[run_5 run_3 run_4 run_1]" {
		t.Fatalf("claimed %s, want [run_5 run_3 run_4 run_1]", got)
	}
	if crs[3].LastSeq != 2 || crs[3].Attempt != 1 || crs[3].State != spool.StateRunning || crs[3].Node != "n1" {
		t.Fatalf("claimed run %+v lastSeq %d", crs[3].Run, crs[3].LastSeq)
	}
	if got := claim(t, s, store.RunClaimParams{Max: 10}); len(got) != 0 {
		t.Fatalf("claimed %v while the session runs", ids(got))
	}
	// run_1 fails and is re-queued to retry later: run_2 stays behind it.
	runs, err := s.RunFinishMany(ctx, nil, []*store.RunFinishParams{{ID: "run_1", Node: "n1", Attempt: 1,
		State: spool.StateQueued, Error: "boom", ErrorCode: spool.CodeHandlerError, Now: t0.Add(2 * time.Second),
		AvailableAt: t0.Add(time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	if r := runs[0]; r.State != spool.StateQueued || !r.AvailableAt.Equal(t0.Add(time.Minute)) || r.Node != "" {
		t.Fatalf("requeued run %+v", r)
	}
	if got := claim(t, s, store.RunClaimParams{Max: 10, Now: t0.Add(3 * time.Second)}); len(got) != 0 {
		t.Fatalf("claimed %v while the session's head backs off", ids(got))
	}
	wake, ok, err := s.RunNextWake(ctx, t0.Add(3*time.Second))
	if err != nil || !ok || !wake.Equal(t0.Add(time.Minute)) {
		t.Fatalf("next wake %v %v %v", wake, ok, err)
	}
	crs = claim(t, s, store.RunClaimParams{Max: 10, Now: t0.Add(time.Minute)})
	if got := fmt.Sprint(ids(crs)); got != "[run_1]" || crs[0].Attempt != 2 {
		t.Fatalf("claimed %s attempt %d, want run_1 attempt 2", got, crs[0].Attempt)
	}
	finish(t, s, crs[0], spool.StateSucceeded)
	if got := fmt.Sprint(ids(claim(t, s, store.RunClaimParams{Max: 10, Now: t0.Add(time.Minute)}))); got != "[run_2]" {
		t.Fatalf("claimed %s, want [run_2]", got)
	}
}

func TestFinishGuardAndCancelRace(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	insert(t, s, params("run_1", func(p *store.RunInsertParams) { p.WebhookURL = "https://example.com/h" }))
	insert(t, s, params("run_2"))
	crs := claim(t, s, store.RunClaimParams{Max: 2})
	if len(crs) != 2 {
		t.Fatalf("claimed %d", len(crs))
	}
	if _, err := s.RunCancel(ctx, "run_1", t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	req, err := s.RunCancelRequested(ctx, "n1")
	if err != nil || fmt.Sprint(req) != "[run_1]" {
		t.Fatalf("cancel requested %v %v", req, err)
	}
	// The handler of run_1 succeeded anyway, and a stale node reports on run_2.
	events := []*spool.Event{
		{RunID: "run_1", Seq: crs[0].LastSeq + 1, Type: spool.EventOutput, Time: t0, Text: "hello\n"},
		{RunID: "run_1", Seq: crs[0].LastSeq + 2, Type: spool.EventResult, Time: t0, Result: json.RawMessage(`"ok"`)},
		{RunID: "run_2", Seq: crs[1].LastSeq + 1, Type: spool.EventOutput, Time: t0, Text: "stale\n"},
	}
	runs, err := s.RunFinishMany(ctx, events, []*store.RunFinishParams{
		{ID: "run_1", Node: "n1", Attempt: 1, State: spool.StateSucceeded, Result: json.RawMessage(`"ok"`), Now: t0.Add(3 * time.Second),
			Progress: &spool.Progress{Percentage: 100}},
		{ID: "run_2", Node: "n1", Attempt: 7, State: spool.StateSucceeded, Now: t0.Add(3 * time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs[1] != nil {
		t.Fatalf("stale finish changed run_2: %+v", runs[1])
	}
	r := runs[0]
	if r.State != spool.StateCancelled || r.ErrorCode != spool.CodeCancelled || r.Result != nil || r.Progress.Percentage != 100 {
		t.Fatalf("run_1 %+v, want cancelled", r)
	}
	evs, err := s.EventList(ctx, "run_1", crs[0].LastSeq, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Text != "hello\n" || evs[1].Type != spool.EventCancelled {
		t.Fatalf("run_1 events %+v", evs)
	}
	if evs, _ := s.EventList(ctx, "run_2", 0, 0); len(evs) != 2 {
		t.Fatalf("run_2 has %d events, want the stale output dropped", len(evs))
	}
	ds, err := s.WebhookList(ctx, "run_1")
	if err != nil || len(ds) != 1 || ds[0].Event != "cancelled" || ds[0].State != store.DeliveryPending {
		t.Fatalf("deliveries %+v %v", ds, err)
	}
	// Terminal runs conflict.
	_, err = s.RunCancel(ctx, "run_1", t0)
	var se *spool.Error
	if !errors.As(err, &se) || se.Code != spool.CodeConflict || se.State != spool.StateCancelled {
		t.Fatalf("cancel of a cancelled run: %v", err)
	}
}

func TestRescue(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	insert(t, s, params("run_retry", func(p *store.RunInsertParams) { p.MaxRetries = 1 }))
	insert(t, s, params("run_fail", func(p *store.RunInsertParams) { p.MaxRetries = 0; p.WebhookURL = "https://example.com/h" }))
	insert(t, s, params("run_live"))
	dead := claim(t, s, store.RunClaimParams{Node: "dead", Max: 2, LeaseUntil: t0.Add(5 * time.Second)})
	live := claim(t, s, store.RunClaimParams{Node: "live", Max: 1, LeaseUntil: t0.Add(5 * time.Second)})
	if len(dead) != 2 || len(live) != 1 {
		t.Fatalf("claimed %v and %v", ids(dead), ids(live))
	}
	if cancel, err := s.RunHeartbeat(ctx, "live", []string{"run_live", "run_retry"}, t0.Add(time.Minute)); err != nil || len(cancel) != 0 {
		t.Fatalf("heartbeat: %v %v", cancel, err)
	}
	runs, err := s.RunRescue(ctx, &store.RunRescueParams{Now: t0.Add(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("rescued %d runs, want 2", len(runs))
	}
	for _, r := range runs {
		switch r.ID {
		case "run_retry":
			if r.State != spool.StateQueued || r.ErrorCode != spool.CodeInterrupted || r.Attempt != 1 || r.Node != "" {
				t.Fatalf("run_retry %+v", r)
			}
		case "run_fail":
			if r.State != spool.StateFailed || r.ErrorCode != spool.CodeInterrupted || r.CompletedAt == nil {
				t.Fatalf("run_fail %+v", r)
			}
		default:
			t.Fatalf("rescued %s", r.ID)
		}
	}
	evs, _ := s.EventList(ctx, "run_fail", 0, 0)
	if len(evs) != 4 || evs[2].Status != spool.StateFailed || evs[3].Type != spool.EventError || evs[3].ErrorCode != spool.CodeInterrupted {
		t.Fatalf("run_fail events %+v", evs)
	}
	if ds, _ := s.WebhookList(ctx, "run_fail"); len(ds) != 1 || ds[0].Event != "failed" {
		t.Fatalf("run_fail deliveries %+v", ds)
	}
	// The re-queued run starts again, as attempt 2.
	crs := claim(t, s, store.RunClaimParams{Node: "live", Max: 5, Now: t0.Add(10 * time.Second)})
	if len(crs) != 1 || crs[0].ID != "run_retry" || crs[0].Attempt != 2 || crs[0].LastSeq != 4 {
		t.Fatalf("claimed %+v", crs)
	}
	// AllRunning takes every running run.
	runs, err = s.RunRescue(ctx, &store.RunRescueParams{Now: t0.Add(11 * time.Second), AllRunning: true})
	if err != nil || len(runs) != 2 {
		t.Fatalf("rescue all: %d runs, %v", len(runs), err)
	}
}

func TestWebhookDeliveriesClaimedOnce(t *testing.T) {
	t.Parallel()
	u, _ := pgtest.Schema(t)
	a, b := openStore(t, u), openStore(t, u)
	ctx := context.Background()
	var ps []*store.RunInsertParams
	for i := range 20 {
		ps = append(ps, params(fmt.Sprintf("run_%02d", i), func(p *store.RunInsertParams) { p.WebhookURL = "https://example.com/h" }))
	}
	if _, err := a.RunInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	crs := claim(t, a, store.RunClaimParams{Max: 20})
	var fps []*store.RunFinishParams
	for _, cr := range crs {
		fps = append(fps, &store.RunFinishParams{ID: cr.ID, Node: cr.Node, Attempt: 1, State: spool.StateSucceeded, Now: t0.Add(2 * time.Second)})
	}
	if _, err := a.RunFinishMany(ctx, nil, fps); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		seen sync.Map
		n    atomic.Int32
	)
	for i, s := range []*postgres.Store{a, b, a, b} {
		wg.Go(func() {
			for {
				ds, err := s.WebhookClaim(ctx, fmt.Sprint("node", i), t0.Add(3*time.Second), t0.Add(time.Minute), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				for _, d := range ds {
					if _, dup := seen.LoadOrStore(d.ID, i); dup {
						t.Errorf("delivery %s claimed twice", d.ID)
					}
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n.Load() != 20 {
		t.Fatalf("claimed %d deliveries, want 20", n.Load())
	}
	ds, _ := a.WebhookList(ctx, "run_00")
	if len(ds) != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	d := ds[0]
	// A failed attempt, due again later; then a success.
	if err := a.WebhookRecord(ctx, &store.WebhookRecordParams{ID: d.ID, State: store.DeliveryPending, NextAt: t0.Add(time.Hour),
		Attempt: store.DeliveryAttempt{At: t0.Add(3 * time.Second), StatusCode: 500, Error: "HTTP 500", DurationMS: 12}}); err != nil {
		t.Fatal(err)
	}
	// Later, the other deliveries' leases have expired (they were never recorded): they are
	// due again, but d is not due yet.
	ds, _ = a.WebhookClaim(ctx, "n", t0.Add(10*time.Minute), t0.Add(11*time.Minute), 50)
	if len(ds) != 19 {
		t.Fatalf("claimed %d deliveries, want the 19 with expired leases", len(ds))
	}
	for _, x := range ds {
		if x.ID == d.ID {
			t.Fatal("claimed a delivery before it was due")
		}
	}
	ds, _ = a.WebhookClaim(ctx, "n", t0.Add(2*time.Hour), t0.Add(3*time.Hour), 50)
	if len(ds) != 20 || ds[len(ds)-1].ID != d.ID || len(ds[len(ds)-1].Attempts) != 1 {
		t.Fatalf("claimed %d deliveries; last %+v", len(ds), ds[len(ds)-1])
	}
	if err := a.WebhookRecord(ctx, &store.WebhookRecordParams{ID: d.ID, State: store.DeliveryDelivered,
		Attempt: store.DeliveryAttempt{At: t0.Add(2 * time.Hour), StatusCode: 204, DurationMS: 3}}); err != nil {
		t.Fatal(err)
	}
	ds, _ = a.WebhookList(ctx, "run_00")
	if ds[0].State != store.DeliveryDelivered || len(ds[0].Attempts) != 2 || ds[0].Attempts[0].StatusCode != 500 ||
		!ds[0].Attempts[1].At.Equal(t0.Add(2*time.Hour)) || ds[0].Event != "succeeded" {
		t.Fatalf("delivery %+v", ds[0])
	}
	if err := a.WebhookRecord(ctx, &store.WebhookRecordParams{ID: "whd_missing", State: store.DeliveryFailed}); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("record of a missing delivery: %v", err)
	}
}

// waitFor reads notifications until one matches, or fails after a deadline.
func waitFor(t *testing.T, ch <-chan store.Notification, topic, payload string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed waiting for %s:%s", topic, payload)
			}
			if n.Topic == topic && n.Payload == payload {
				return
			}
		case <-timeout:
			t.Fatalf("no %s:%s notification", topic, payload)
		}
	}
}

func TestNotificationsReachOtherStores(t *testing.T) {
	t.Parallel()
	u, _ := pgtest.Schema(t)
	a, b := openStore(t, u), openStore(t, u)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	insert(t, a, params("run_1"))
	waitFor(t, ch, store.TopicSubmit, "")
	crs := claim(t, a, store.RunClaimParams{Max: 1})
	if err := a.EventAppend(context.Background(), []*spool.Event{{RunID: "run_1", Seq: crs[0].LastSeq + 1, Type: spool.EventOutput, Text: "x"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, store.TopicEvent, "run_1")
	if _, err := a.RunCancel(context.Background(), "run_1", t0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, store.TopicCancel, "run_1")
	finish(t, a, crs[0], spool.StateCancelled)
	waitFor(t, ch, store.TopicFinish, "run_1")
	cancel()
	for range ch { // the channel closes when ctx ends
	}
}

func TestListenReconnects(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var killed int
	if err := s.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, postgres.ListenApplicationName(s)).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listening backends, want 1", killed)
	}
	// After reconnecting the listener says "look again", then works as before.
	waitFor(t, ch, store.TopicSubmit, "")
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		insert(t, s, params(fmt.Sprintf("run_%d", i)))
		select {
		case n := <-ch:
			if n.Topic == store.TopicSubmit {
				return
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification after reconnecting")
		}
	}
}

func TestClearAllPurgesRunningRunsWhenTheyEnd(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	insert(t, s, params("run_1"))
	crs := claim(t, s, store.RunClaimParams{Max: 1})
	insert(t, s, params("run_2"))
	insert(t, s, params("run_3"))
	finish(t, s, claim(t, s, store.RunClaimParams{Max: 1})[0], spool.StateSucceeded)
	n, err := s.RunClear(ctx, &store.RunClearParams{All: true, Now: t0.Add(time.Hour)})
	if err != nil || n != 2 {
		t.Fatalf("cleared %d, %v; want 2 (run_2 done, run_3 queued)", n, err)
	}
	r, err := s.RunGet(ctx, "run_1")
	if err != nil || r.CancelRequestedAt == nil {
		t.Fatalf("running run after clear: %+v %v", r, err)
	}
	if r := finish(t, s, crs[0], spool.StateSucceeded); r == nil || r.State != spool.StateCancelled {
		t.Fatalf("finish of a purged run returned %+v", r)
	}
	if _, err := s.RunGet(ctx, "run_1"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("purged run still there: %v", err)
	}
	st, err := s.RunStats(ctx, "")
	if err != nil || st.Total != 0 || st.AvgWaitSeconds != 0 {
		t.Fatalf("stats after clear %+v %v", st, err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	insert(t, s, params("run_1"))
	insert(t, s, params("run_2", func(p *store.RunInsertParams) { p.Workspace = "w2"; p.Priority = spool.PriorityUrgent }))
	insert(t, s, params("run_3", func(p *store.RunInsertParams) { p.Workspace = "w2" }))
	crs := claim(t, s, store.RunClaimParams{Max: 1, Now: t0.Add(2 * time.Second)}) // run_2 waited 2 s
	runs, err := s.RunFinishMany(ctx, nil, []*store.RunFinishParams{{ID: crs[0].ID, Node: "n1", Attempt: 1,
		State: spool.StateSucceeded, Now: t0.Add(6 * time.Second)}}) // and ran 4 s
	if err != nil || runs[0] == nil {
		t.Fatal(err)
	}
	if _, err := s.RunPause(ctx, "run_3", t0); err != nil {
		t.Fatal(err)
	}
	st, err := s.RunStats(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 3 || st.Queued != 1 || st.Paused != 1 || st.Succeeded != 1 || st.QueuedByPriority["normal"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	if st.AvgWaitSeconds != 2 || st.AvgDurationSeconds != 4 {
		t.Fatalf("avg wait %v duration %v, want 2 and 4", st.AvgWaitSeconds, st.AvgDurationSeconds)
	}
	st, _ = s.RunStats(ctx, "default")
	if st.Total != 1 || st.AvgWaitSeconds != 0 {
		t.Fatalf("stats of default %+v", st)
	}
	if err := s.RunDelete(ctx, "run_2"); err != nil {
		t.Fatal(err)
	}
	if st, _ = s.RunStats(ctx, ""); st.AvgDurationSeconds != 0 || st.Total != 2 {
		t.Fatalf("stats after delete %+v", st)
	}
}

func TestLimitsAndNodes(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	if l, err := s.LimitsGet(ctx); err != nil || l.Global != 0 || l.Agents != nil {
		t.Fatalf("limits %+v %v", l, err)
	}
	l := spool.Limits{Global: 10, PerAgent: 2, Agents: map[string]int{"x": 5}}
	if changed, err := s.LimitsSet(ctx, l); err != nil || !changed {
		t.Fatalf("set: %v %v", changed, err)
	}
	if changed, err := s.LimitsSet(ctx, l); err != nil || changed {
		t.Fatalf("set again: %v %v", changed, err)
	}
	if got, _ := s.LimitsGet(ctx); got.Global != 10 || got.Agents["x"] != 5 {
		t.Fatalf("limits %+v", got)
	}
	if err := s.NodeHeartbeat(ctx, &store.Node{ID: "n1", Host: "h", PID: 42, StartedAt: t0, SeenAt: t0.Add(time.Second), Running: 3}); err != nil {
		t.Fatal(err)
	}
	ns, err := s.NodeList(ctx)
	if err != nil || len(ns) != 1 || ns[0].PID != 42 || ns[0].Running != 3 || !ns[0].SeenAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("nodes %+v %v", ns, err)
	}
}

func TestPromoteScheduled(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	at := t0.Add(time.Minute)
	insert(t, s, params("run_1", func(p *store.RunInsertParams) { p.RunAt = &at }))
	if wake, ok, err := s.RunNextWake(ctx, t0); err != nil || !ok || !wake.Equal(at) {
		t.Fatalf("next wake %v %v %v", wake, ok, err)
	}
	if n, err := s.RunPromote(ctx, t0.Add(time.Second)); err != nil || n != 0 {
		t.Fatalf("promoted %d early, %v", n, err)
	}
	if n, err := s.RunPromote(ctx, at); err != nil || n != 1 {
		t.Fatalf("promoted %d, %v", n, err)
	}
	r, _ := s.RunGet(ctx, "run_1")
	if r.State != spool.StateQueued {
		t.Fatalf("state %s", r.State)
	}
	if evs, _ := s.EventList(ctx, "run_1", 1, 0); len(evs) != 1 || evs[0].Status != spool.StateQueued || evs[0].Seq != 2 {
		t.Fatalf("events %+v", evs)
	}
	if _, ok, _ := s.RunNextWake(ctx, at); ok {
		t.Fatal("next wake with nothing scheduled")
	}
}
