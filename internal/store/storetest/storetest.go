// Package storetest is the conformance suite of store.Store: every driver runs
// [Exercise] against a real database, so the drivers behave the same way.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// Exercise runs the behaviour suite. newStore returns a fresh, empty store for one subtest
// and closes it in t.Cleanup. Every subtest runs in parallel with the others.
func Exercise(ctx context.Context, t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"Insert", testInsert},
		{"InsertScheduled", testInsertScheduled},
		{"Idempotency", testIdempotency},
		{"IdempotencyRace", testIdempotencyRace},
		{"QueueFull", testQueueFull},
		{"InsertMany", testInsertMany},
		{"GetNotFound", testGetNotFound},
		{"List", testList},
		{"ClaimOrder", testClaimOrder},
		{"ClaimSetsRunning", testClaimSetsRunning},
		{"ClaimGlobalLimit", testClaimGlobalLimit},
		{"ClaimAgentLimit", testClaimAgentLimit},
		{"ClaimWorkspaceLimit", testClaimWorkspaceLimit},
		{"ClaimSession", testClaimSession},
		{"ClaimSessionPerWorkspace", testClaimSessionPerWorkspace},
		{"ClaimHeldAgents", testClaimHeldAgents},
		{"ClaimAvailableAt", testClaimAvailableAt},
		{"ClaimNoHeadOfLineBlocking", testClaimNoHeadOfLineBlocking},
		{"ClaimConcurrent", testClaimConcurrent},
		{"ClaimMatchesModel", testClaimMatchesModel},
		{"FinishTerminal", testFinishTerminal},
		{"FinishGuard", testFinishGuard},
		{"FinishRetryKeepsPlace", testFinishRetryKeepsPlace},
		{"FinishKeepAttempt", testFinishKeepAttempt},
		{"FinishWebhooks", testFinishWebhooks},
		{"Cancel", testCancel},
		{"CancelRunning", testCancelRunning},
		{"CancelTerminal", testCancelTerminal},
		{"PauseResume", testPauseResume},
		{"PauseResumeScheduled", testPauseResumeScheduled},
		{"Delete", testDelete},
		{"Clear", testClear},
		{"ClearAll", testClearAll},
		{"Stats", testStats},
		{"Rescue", testRescue},
		{"RescueAllRunning", testRescueAllRunning},
		{"Heartbeat", testHeartbeat},
		{"PromoteNextWake", testPromoteNextWake},
		{"Events", testEvents},
		{"EventDropOutput", testEventDropOutput},
		{"WebhookDeliveries", testWebhookDeliveries},
		{"WebhookClaimConcurrent", testWebhookClaimConcurrent},
		{"Limits", testLimits},
		{"Nodes", testNodes},
		{"ScheduleUpsertGetList", testScheduleUpsertGetList},
		{"ScheduleUpsertKeepsNextTick", testScheduleUpsertKeepsNextTick},
		{"SchedulePauseResumeDelete", testSchedulePauseResumeDelete},
		{"ScheduleDueAndNextWake", testScheduleDueAndNextWake},
		{"ScheduleFire", testScheduleFire},
		{"ScheduleFireRace", testScheduleFireRace},
		{"ScheduleFireOverlapSkip", testScheduleFireOverlapSkip},
		{"ScheduleTrigger", testScheduleTrigger},
		{"ClaimRateLimit", testClaimRateLimit},
		{"ClaimRateLimitKinds", testClaimRateLimitKinds},
		{"ClaimRateLimitConcurrent", testClaimRateLimitConcurrent},
		{"RateHold", testRateHold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fixture{ctx: ctx, newStore: newStore}
			tt.fn(t, f.fresh(t))
		})
	}
}

// fixture is one subtest's store and clock, with helpers that fail the test on errors.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	s        store.Store
	now      time.Time
	newStore func(t *testing.T) store.Store
}

// fresh returns a fixture for t with a new, empty store.
func (f *fixture) fresh(t *testing.T) *fixture {
	return &fixture{t: t, ctx: f.ctx, s: f.newStore(t), now: time.Now().UTC().Truncate(time.Millisecond), newStore: f.newStore}
}

const node = "node-1"

func newID() string { return "run_" + ulid.Make().String() }

// params returns insert parameters for a normal-priority run of recipe "echo".
func (f *fixture) params(mods ...func(*store.RunInsertParams)) *store.RunInsertParams {
	p := &store.RunInsertParams{
		ID:        newID(),
		Recipe:    "echo",
		Agent:     "echo",
		Workspace: "default",
		Priority:  spool.PriorityNormal,
		Input:     json.RawMessage(`{"x":1}`),
		CreatedAt: f.now,
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func (f *fixture) insert(mods ...func(*store.RunInsertParams)) *spool.Run {
	f.t.Helper()
	r, existed, err := f.s.RunInsert(f.ctx, f.params(mods...))
	if err != nil {
		f.t.Fatalf("RunInsert: %v", err)
	}
	if existed {
		f.t.Fatalf("RunInsert: existed = true for a new run")
	}
	return r
}

func (f *fixture) get(id string) *spool.Run {
	f.t.Helper()
	r, err := f.s.RunGet(f.ctx, id)
	if err != nil {
		f.t.Fatalf("RunGet(%s): %v", id, err)
	}
	return r
}

// claim claims with defaults: node, now, a 10 s lease, Max 1, no limits.
func (f *fixture) claim(mods ...func(*store.RunClaimParams)) []*store.ClaimedRun {
	f.t.Helper()
	p := &store.RunClaimParams{Node: node, Now: f.now, LeaseUntil: f.now.Add(10 * time.Second), Max: 1}
	for _, m := range mods {
		m(p)
	}
	got, err := f.s.RunClaim(f.ctx, p)
	if err != nil {
		f.t.Fatalf("RunClaim: %v", err)
	}
	return got
}

func (f *fixture) claimOne(mods ...func(*store.RunClaimParams)) *store.ClaimedRun {
	f.t.Helper()
	got := f.claim(mods...)
	if len(got) != 1 {
		f.t.Fatalf("RunClaim: got %d runs, want 1", len(got))
	}
	return got[0]
}

func (f *fixture) finish(events []*spool.Event, ps ...*store.RunFinishParams) []*spool.Run {
	f.t.Helper()
	got, err := f.s.RunFinishMany(f.ctx, events, ps)
	if err != nil {
		f.t.Fatalf("RunFinishMany: %v", err)
	}
	if len(got) != len(ps) {
		f.t.Fatalf("RunFinishMany: got %d results for %d finishes", len(got), len(ps))
	}
	return got
}

// succeed finishes a claimed run as succeeded at now.
func (f *fixture) succeed(c *store.ClaimedRun, now time.Time) *spool.Run {
	f.t.Helper()
	got := f.finish(nil, &store.RunFinishParams{ID: c.ID, Node: c.Node, Attempt: c.Attempt,
		State: spool.StateSucceeded, Result: json.RawMessage(`"ok"`), Now: now})
	if got[0] == nil {
		f.t.Fatalf("finish %s: guard did not hold", c.ID)
	}
	return got[0]
}

func (f *fixture) events(id string) []*spool.Event {
	f.t.Helper()
	evs, err := f.s.EventList(f.ctx, id, 0, 0)
	if err != nil {
		f.t.Fatalf("EventList(%s): %v", id, err)
	}
	return evs
}

func (f *fixture) list(p spool.ListParams) ([]*spool.Run, int64) {
	f.t.Helper()
	p.WithTotal = true
	runs, total, err := f.s.RunList(f.ctx, &p)
	if err != nil {
		f.t.Fatalf("RunList: %v", err)
	}
	return runs, total
}

func runIDs(rs []*spool.Run) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		if r != nil {
			out[i] = r.ID
		}
	}
	return out
}

func claimedIDs(rs []*store.ClaimedRun) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func equalIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("%s (any order):\n got  %v\n want %v", what, got, want)
	}
}

func wantState(t *testing.T, r *spool.Run, want spool.State) {
	t.Helper()
	if r.State != want {
		t.Fatalf("run %s: state %s, want %s", r.ID, r.State, want)
	}
}

func wantTime(t *testing.T, what string, got *time.Time, want time.Time) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil, want %v", what, want)
	}
	if !got.Equal(want) {
		t.Fatalf("%s: %v, want %v", what, *got, want)
	}
	if got.Location() != time.UTC {
		t.Fatalf("%s: location %v, want UTC", what, got.Location())
	}
}

// wantCode checks that err is a *spool.Error with the given code.
func wantCode(t *testing.T, err error, code string) *spool.Error {
	t.Helper()
	var se *spool.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T): want a *spool.Error with code %s", err, err, code)
	}
	if se.Code != code {
		t.Fatalf("error %v: code %s, want %s", err, se.Code, code)
	}
	return se
}

func wantConflict(t *testing.T, err error, state spool.State) {
	t.Helper()
	se := wantCode(t, err, spool.CodeConflict)
	if !errors.Is(err, spool.ErrConflict) {
		t.Fatalf("errors.Is(%v, ErrConflict) = false", err)
	}
	if se.State != state {
		t.Fatalf("conflict %v: State %q, want %q", err, se.State, state)
	}
}

func wantNotFound(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("error %v: want spool.ErrNotFound", err)
	}
}

func withPriority(p spool.Priority) func(*store.RunInsertParams) {
	return func(rp *store.RunInsertParams) { rp.Priority = p }
}

func withAgent(a string) func(*store.RunInsertParams) {
	return func(rp *store.RunInsertParams) { rp.Agent = a }
}

func withWorkspace(w string) func(*store.RunInsertParams) {
	return func(rp *store.RunInsertParams) { rp.Workspace = w }
}

func withSession(s string) func(*store.RunInsertParams) {
	return func(rp *store.RunInsertParams) { rp.SessionID = s }
}

func withMaxRetries(n int) func(*store.RunInsertParams) {
	return func(rp *store.RunInsertParams) { rp.MaxRetries = n }
}

func withWebhook(url string, events ...string) func(*store.RunInsertParams) {
	return func(rp *store.RunInsertParams) { rp.WebhookURL, rp.WebhookEvents = url, events }
}

func claimMax(n int) func(*store.RunClaimParams) {
	return func(p *store.RunClaimParams) { p.Max = n }
}

func claimAt(t time.Time) func(*store.RunClaimParams) {
	return func(p *store.RunClaimParams) { p.Now, p.LeaseUntil = t, t.Add(10*time.Second) }
}

func claimLimits(l spool.Limits) func(*store.RunClaimParams) {
	return func(p *store.RunClaimParams) { p.Limits = l }
}

func claimNode(n string) func(*store.RunClaimParams) {
	return func(p *store.RunClaimParams) { p.Node = n }
}

// ---- insert ----

func testInsert(t *testing.T, f *fixture) {
	sched := f.now.Add(-time.Hour)
	p := f.params(func(p *store.RunInsertParams) {
		p.Recipe, p.Agent, p.Workspace, p.SessionID = "summarize", "writer", "team-a", "sess-1"
		p.Priority = spool.PriorityHigh
		p.Config = json.RawMessage(`{"model":"m"}`)
		p.Metadata = map[string]any{"framework": "crewai"}
		p.MaxRetries, p.TimeoutSec = 2, 600
		p.RetryOf = "run_previous"
		p.IdempotencyKey, p.IdempotencyScope = "key-1", spool.ScopeSession
		p.IdemKey = store.IdemKey(p.Workspace, p.SessionID, p.IdempotencyScope, p.IdempotencyKey)
		p.WebhookURL, p.WebhookEvents = "https://example.com/hook", []string{"completed", "failed"}
		p.ScheduleID, p.ScheduledFor = "sch_1", &sched
		p.RunAt = &sched // in the past: queued at once
	})
	r, existed, err := f.s.RunInsert(f.ctx, p)
	if err != nil || existed {
		t.Fatalf("RunInsert: existed %v, err %v", existed, err)
	}
	got := f.get(p.ID)
	for _, run := range []*spool.Run{r, got} {
		wantState(t, run, spool.StateQueued)
		if run.ID != p.ID || run.Recipe != "summarize" || run.Agent != "writer" || run.Workspace != "team-a" ||
			run.SessionID != "sess-1" || run.Priority != spool.PriorityHigh {
			t.Fatalf("identity fields: %+v", run)
		}
		if string(run.Input) != `{"x":1}` || string(run.Config) != `{"model":"m"}` || run.Metadata["framework"] != "crewai" {
			t.Fatalf("input/config/metadata: %s %s %v", run.Input, run.Config, run.Metadata)
		}
		if run.MaxRetries != 2 || run.TimeoutSec != 600 || run.RetryOf != "run_previous" || run.Attempt != 0 {
			t.Fatalf("retry fields: %+v", run)
		}
		if run.IdempotencyKey != "key-1" || run.IdempotencyScope != spool.ScopeSession {
			t.Fatalf("idempotency fields: %q %q", run.IdempotencyKey, run.IdempotencyScope)
		}
		if run.WebhookURL != "https://example.com/hook" || !slices.Equal(run.WebhookEvents, []string{"completed", "failed"}) {
			t.Fatalf("webhook fields: %q %v", run.WebhookURL, run.WebhookEvents)
		}
		if run.ScheduleID != "sch_1" {
			t.Fatalf("schedule id %q", run.ScheduleID)
		}
		wantTime(t, "ScheduledFor", run.ScheduledFor, sched)
		wantTime(t, "RunAt", run.RunAt, sched)
		wantTime(t, "CreatedAt", &run.CreatedAt, f.now)
		if run.AvailableAt.After(f.now) {
			t.Fatalf("AvailableAt %v after CreatedAt %v", run.AvailableAt, f.now)
		}
		if run.StartedAt != nil || run.CompletedAt != nil || run.CancelRequestedAt != nil || run.Node != "" {
			t.Fatalf("run not started yet has start/end fields: %+v", run)
		}
		if run.Result != nil || run.Error != "" {
			t.Fatalf("new run has result %s / error %q", run.Result, run.Error)
		}
	}
	evs := f.events(p.ID)
	if len(evs) != 1 || evs[0].Seq != 1 || evs[0].Type != spool.EventStatus || evs[0].Status != spool.StateQueued {
		t.Fatalf("events after insert: %+v, want one status(queued) event with seq 1", evs)
	}
	wantTime(t, "event time", &evs[0].Time, f.now)

	second := f.insert()
	if second.Seq <= r.Seq {
		t.Fatalf("Seq of later run %d <= earlier %d", second.Seq, r.Seq)
	}
}

func testInsertScheduled(t *testing.T, f *fixture) {
	at := f.now.Add(time.Hour)
	r := f.insert(func(p *store.RunInsertParams) { p.RunAt = &at })
	wantState(t, r, spool.StateScheduled)
	wantTime(t, "RunAt", r.RunAt, at)
	evs := f.events(r.ID)
	if len(evs) != 1 || evs[0].Seq != 1 || evs[0].Status != spool.StateScheduled {
		t.Fatalf("events: %+v, want one status(scheduled) event", evs)
	}
	if got := f.claim(claimMax(10)); len(got) != 0 {
		t.Fatalf("claimed a scheduled run: %v", claimedIDs(got))
	}
}

func testIdempotency(t *testing.T, f *fixture) {
	insert := func(ws, session, scope, key string) (*spool.Run, bool) {
		t.Helper()
		p := f.params(withWorkspace(ws), withSession(session), func(p *store.RunInsertParams) {
			p.IdempotencyKey, p.IdempotencyScope = key, scope
			p.IdemKey = store.IdemKey(ws, session, scope, key)
		})
		r, existed, err := f.s.RunInsert(f.ctx, p)
		if err != nil {
			t.Fatalf("RunInsert: %v", err)
		}
		if !existed && r.ID != p.ID {
			t.Fatalf("new run has id %s, want %s", r.ID, p.ID)
		}
		return r, existed
	}

	// Global scope: one run per key in a workspace, whatever the session.
	g1, existed := insert("w1", "s1", spool.ScopeGlobal, "k")
	if existed {
		t.Fatal("first insert: existed")
	}
	g2, existed := insert("w1", "s2", spool.ScopeGlobal, "k")
	if !existed || g2.ID != g1.ID {
		t.Fatalf("global repeat: existed %v, id %s, want %s", existed, g2.ID, g1.ID)
	}
	// Keys never match across workspaces.
	if other, existed := insert("w2", "s1", spool.ScopeGlobal, "k"); existed || other.ID == g1.ID {
		t.Fatalf("other workspace matched: existed %v", existed)
	}

	// Session scope: one run per key and session.
	s1, _ := insert("w1", "s1", spool.ScopeSession, "sk")
	if again, existed := insert("w1", "s1", spool.ScopeSession, "sk"); !existed || again.ID != s1.ID {
		t.Fatalf("session repeat: existed %v, id %s, want %s", existed, again.ID, s1.ID)
	}
	if s2, existed := insert("w1", "s2", spool.ScopeSession, "sk"); existed || s2.ID == s1.ID {
		t.Fatalf("other session matched: existed %v", existed)
	}

	// Scope none: no deduplication.
	n1, _ := insert("w1", "", spool.ScopeNone, "nk")
	if n2, existed := insert("w1", "", spool.ScopeNone, "nk"); existed || n2.ID == n1.ID {
		t.Fatalf("scope none deduplicated: existed %v", existed)
	}

	// The existing run is returned whatever its state.
	if _, err := f.s.RunCancel(f.ctx, g1.ID, f.now); err != nil {
		t.Fatal(err)
	}
	if again, existed := insert("w1", "s9", spool.ScopeGlobal, "k"); !existed || again.ID != g1.ID || again.State != spool.StateCancelled {
		t.Fatalf("repeat of cancelled run: existed %v, id %s, state %s", existed, again.ID, again.State)
	}

	_, total := f.list(spool.ListParams{})
	if total != 6 {
		t.Fatalf("total runs %d, want 6", total)
	}
}

func testIdempotencyRace(t *testing.T, f *fixture) {
	const n = 50
	key := store.IdemKey("default", "", spool.ScopeGlobal, "race")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		gotIDs  = map[string]int{}
		existed int
		errs    []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			p := f.params(func(p *store.RunInsertParams) {
				p.IdempotencyKey, p.IdempotencyScope, p.IdemKey = "race", spool.ScopeGlobal, key
			})
			r, ex, err := f.s.RunInsert(f.ctx, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			gotIDs[r.ID]++
			if ex {
				existed++
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d inserts failed, first: %v", len(errs), errs[0])
	}
	if len(gotIDs) != 1 {
		t.Fatalf("%d distinct runs returned, want 1: %v", len(gotIDs), gotIDs)
	}
	if existed != n-1 {
		t.Fatalf("existed=true for %d callers, want %d", existed, n-1)
	}
	if _, total := f.list(spool.ListParams{}); total != 1 {
		t.Fatalf("%d runs stored, want 1", total)
	}
}

func testQueueFull(t *testing.T, f *fixture) {
	limited := func(p *store.RunInsertParams) { p.MaxQueued = 2 }
	a := f.insert(limited)
	b := f.insert(limited, func(p *store.RunInsertParams) {
		p.IdempotencyKey, p.IdempotencyScope = "kb", spool.ScopeGlobal
		p.IdemKey = store.IdemKey(p.Workspace, "", spool.ScopeGlobal, "kb")
	})

	refused := f.params(limited)
	_, _, err := f.s.RunInsert(f.ctx, refused)
	wantCode(t, err, spool.CodeQueueFull)
	if !errors.Is(err, spool.ErrQueueFull) {
		t.Fatalf("errors.Is(%v, ErrQueueFull) = false", err)
	}
	_, err = f.s.RunGet(f.ctx, refused.ID)
	wantNotFound(t, err)
	if _, total := f.list(spool.ListParams{}); total != 2 {
		t.Fatalf("%d runs stored, want 2", total)
	}

	// A repeated submit returns the existing run even when the queue is full.
	again, existed, err := f.s.RunInsert(f.ctx, f.params(limited, func(p *store.RunInsertParams) {
		p.IdempotencyKey, p.IdempotencyScope = "kb", spool.ScopeGlobal
		p.IdemKey = store.IdemKey(p.Workspace, "", spool.ScopeGlobal, "kb")
	}))
	if err != nil || !existed || again.ID != b.ID {
		t.Fatalf("idempotent repeat on a full queue: existed %v, err %v", existed, err)
	}

	// Paused runs count; running ones do not.
	if _, err := f.s.RunPause(f.ctx, b.ID, f.now); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.s.RunInsert(f.ctx, f.params(limited))
	wantCode(t, err, spool.CodeQueueFull)
	if c := f.claimOne(); c.ID != a.ID {
		t.Fatalf("claimed %s, want %s", c.ID, a.ID)
	}
	f.insert(limited)
	_, _, err = f.s.RunInsert(f.ctx, f.params(limited))
	wantCode(t, err, spool.CodeQueueFull)

	// Without MaxQueued there is no check.
	f.insert()
}

func testInsertMany(t *testing.T, f *fixture) {
	key := store.IdemKey("default", "", spool.ScopeGlobal, "dup")
	withKey := func(p *store.RunInsertParams) {
		p.IdempotencyKey, p.IdempotencyScope, p.IdemKey = "dup", spool.ScopeGlobal, key
	}
	first := f.insert(withKey)

	ps := []*store.RunInsertParams{f.params(), f.params(withKey), f.params(withPriority(spool.PriorityUrgent)), f.params(func(p *store.RunInsertParams) { p.MaxQueued = 1 })}
	runs, err := f.s.RunInsertMany(f.ctx, ps)
	if err != nil {
		t.Fatalf("RunInsertMany: %v", err)
	}
	if len(runs) != len(ps) {
		t.Fatalf("got %d runs for %d params", len(runs), len(ps))
	}
	equalIDs(t, "RunInsertMany ids", runIDs(runs), []string{ps[0].ID, first.ID, ps[2].ID, ps[3].ID})
	for i, r := range runs {
		if i == 1 {
			continue
		}
		wantState(t, r, spool.StateQueued)
		if r.Seq <= first.Seq {
			t.Fatalf("run %d: seq %d not after earlier run's %d", i, r.Seq, first.Seq)
		}
		evs := f.events(r.ID)
		if len(evs) != 1 || evs[0].Seq != 1 || evs[0].Status != spool.StateQueued {
			t.Fatalf("run %d events: %+v", i, evs)
		}
	}
	if _, total := f.list(spool.ListParams{}); total != 4 {
		t.Fatalf("%d runs stored, want 4", total)
	}
}

func testGetNotFound(t *testing.T, f *fixture) {
	_, err := f.s.RunGet(f.ctx, "run_missing")
	wantNotFound(t, err)
	wantCode(t, err, spool.CodeNotFound)
}

func testList(t *testing.T, f *fixture) {
	var all []*spool.Run // oldest first
	add := func(mods ...func(*store.RunInsertParams)) *spool.Run {
		r := f.insert(mods...)
		all = append(all, r)
		return r
	}
	a1 := add(withAgent("a"), func(p *store.RunInsertParams) { p.Recipe = "r1" })
	a2 := add(withAgent("a"), func(p *store.RunInsertParams) { p.Recipe = "r2" }, withSession("s"))
	b1 := add(withAgent("b"), func(p *store.RunInsertParams) { p.Recipe = "r1" }, withWorkspace("other"))
	b2 := add(withAgent("b"), func(p *store.RunInsertParams) { p.Recipe = "r2" }, withSession("s"))
	c1 := add(withAgent("c"), func(p *store.RunInsertParams) { p.Recipe = "r3" })
	if _, err := f.s.RunCancel(f.ctx, c1.ID, f.now); err != nil {
		t.Fatal(err)
	}
	claimed := f.claimOne() // a1
	if claimed.ID != a1.ID {
		t.Fatalf("claimed %s, want %s", claimed.ID, a1.ID)
	}

	newestFirst := func(rs ...*spool.Run) []string {
		out := runIDs(rs)
		slices.Reverse(out)
		return out
	}
	for _, tc := range []struct {
		name string
		p    spool.ListParams
		want []string
	}{
		{"all", spool.ListParams{}, newestFirst(all...)},
		{"state", spool.ListParams{States: []spool.State{spool.StateQueued}}, newestFirst(a2, b1, b2)},
		{"states", spool.ListParams{States: []spool.State{spool.StateRunning, spool.StateCancelled}}, newestFirst(a1, c1)},
		{"recipe", spool.ListParams{Recipe: "r1"}, newestFirst(a1, b1)},
		{"agent", spool.ListParams{Agent: "b"}, newestFirst(b1, b2)},
		{"workspace", spool.ListParams{Workspace: "default"}, newestFirst(a1, a2, b2, c1)},
		{"session", spool.ListParams{SessionID: "s"}, newestFirst(a2, b2)},
		{"combined", spool.ListParams{Workspace: "default", Recipe: "r2", States: []spool.State{spool.StateQueued}}, newestFirst(a2, b2)},
		{"none", spool.ListParams{Agent: "nobody"}, nil},
	} {
		runs, total := f.list(tc.p)
		equalIDs(t, tc.name, runIDs(runs), tc.want)
		if total != int64(len(tc.want)) {
			t.Fatalf("%s: total %d, want %d", tc.name, total, len(tc.want))
		}
	}

	// Pages.
	want := newestFirst(all...)
	page1, total := f.list(spool.ListParams{PageSize: 2})
	page2, _ := f.list(spool.ListParams{PageSize: 2, Page: 2})
	page3, _ := f.list(spool.ListParams{PageSize: 2, Page: 3})
	page4, _ := f.list(spool.ListParams{PageSize: 2, Page: 4})
	if total != 5 {
		t.Fatalf("total %d, want 5", total)
	}
	equalIDs(t, "page 1", runIDs(page1), want[0:2])
	equalIDs(t, "page 2", runIDs(page2), want[2:4])
	equalIDs(t, "page 3", runIDs(page3), want[4:5])
	equalIDs(t, "page 4", runIDs(page4), nil)
	// Keyset paging.
	after, _ := f.list(spool.ListParams{PageSize: 2, After: want[1]})
	equalIDs(t, "after", runIDs(after), want[2:4])
}

// ---- claim ----

func testClaimOrder(t *testing.T, f *fixture) {
	if got := f.claim(); len(got) != 0 {
		t.Fatalf("claimed %v from an empty queue", claimedIDs(got))
	}
	byPriority := map[spool.Priority][]string{}
	for range 25 {
		for _, p := range []spool.Priority{spool.PriorityLow, spool.PriorityUrgent, spool.PriorityNormal, spool.PriorityHigh} {
			r := f.insert(withPriority(p))
			byPriority[p] = append(byPriority[p], r.ID)
		}
	}
	var want []string
	for _, p := range []spool.Priority{spool.PriorityUrgent, spool.PriorityHigh, spool.PriorityNormal, spool.PriorityLow} {
		want = append(want, byPriority[p]...)
	}
	var got []string
	for range 100 {
		got = append(got, f.claimOne().ID)
	}
	equalIDs(t, "claim order, one at a time", got, want)
	if rest := f.claim(); len(rest) != 0 {
		t.Fatalf("claimed %d runs after the queue was drained", len(rest))
	}

	// The same order when many are claimed at once.
	want = want[:0]
	for range 3 {
		for _, p := range []spool.Priority{spool.PriorityNormal, spool.PriorityUrgent} {
			r := f.insert(withPriority(p))
			if p == spool.PriorityUrgent {
				want = append(want, r.ID)
			}
		}
	}
	got = claimedIDs(f.claim(claimMax(4)))
	if len(got) != 4 || !slices.Equal(got[:3], want) {
		t.Fatalf("batch claim order %v, want the urgent runs %v first", got, want)
	}
}

func testClaimSetsRunning(t *testing.T, f *fixture) {
	r := f.insert()
	at := f.now.Add(3 * time.Second)
	c := f.claimOne(claimAt(at), claimNode("node-x"))
	if c.ID != r.ID {
		t.Fatalf("claimed %s, want %s", c.ID, r.ID)
	}
	for _, run := range []*spool.Run{c.Run, f.get(r.ID)} {
		wantState(t, run, spool.StateRunning)
		if run.Node != "node-x" || run.Attempt != 1 {
			t.Fatalf("node %q attempt %d, want node-x and 1", run.Node, run.Attempt)
		}
		wantTime(t, "StartedAt", run.StartedAt, at)
		if run.Seq != r.Seq {
			t.Fatalf("seq changed: %d -> %d", r.Seq, run.Seq)
		}
	}
	evs := f.events(r.ID)
	if c.LastSeq != 2 || len(evs) != 2 {
		t.Fatalf("LastSeq %d with %d events, want 2 and 2", c.LastSeq, len(evs))
	}
	last := evs[len(evs)-1]
	if last.Seq != c.LastSeq || last.Type != spool.EventStatus || last.Status != spool.StateRunning {
		t.Fatalf("last event %+v, want status(running) with seq %d", last, c.LastSeq)
	}

	// A run's LastSeq counts the events written while it ran.
	evsIn := []*spool.Event{
		{RunID: r.ID, Seq: 3, Type: spool.EventOutput, Time: at, Text: "a"},
		{RunID: r.ID, Seq: 4, Type: spool.EventStatus, Time: at, Status: spool.StateQueued},
	}
	f.finish(evsIn, &store.RunFinishParams{ID: r.ID, Node: "node-x", Attempt: 1, State: spool.StateQueued, Now: at, AvailableAt: at})
	c2 := f.claimOne(claimAt(at))
	if c2.LastSeq != 5 || c2.Attempt != 2 {
		t.Fatalf("second claim: LastSeq %d attempt %d, want 5 and 2", c2.LastSeq, c2.Attempt)
	}
}

func testClaimGlobalLimit(t *testing.T, f *fixture) {
	for range 6 {
		f.insert()
	}
	lim := claimLimits(spool.Limits{Global: 3})
	if got := f.claim(claimMax(1), lim); len(got) != 1 {
		t.Fatalf("first claim got %d", len(got))
	}
	// Another node: limits count every running run, whoever holds it.
	if got := f.claim(claimMax(10), lim, claimNode("node-2")); len(got) != 2 {
		t.Fatalf("claim under global limit 3 with 1 running got %d, want 2", len(got))
	}
	if got := f.claim(claimMax(10), lim); len(got) != 0 {
		t.Fatalf("claim at the global limit got %d, want 0", len(got))
	}
	if got := f.claim(claimMax(10), claimLimits(spool.Limits{Global: 4})); len(got) != 1 {
		t.Fatalf("claim with a raised limit got %d, want 1", len(got))
	}
}

func testClaimAgentLimit(t *testing.T, f *fixture) {
	var a, b []string
	for range 5 {
		a = append(a, f.insert(withAgent("a")).ID)
		b = append(b, f.insert(withAgent("b")).ID)
	}
	lim := spool.Limits{PerAgent: 2}
	got := claimedIDs(f.claim(claimMax(10), claimLimits(lim)))
	sameIDs(t, "per-agent limit 2", got, []string{a[0], b[0], a[1], b[1]})
	if more := f.claim(claimMax(10), claimLimits(lim)); len(more) != 0 {
		t.Fatalf("claimed %v with every agent at its limit", claimedIDs(more))
	}
	// An override for one agent.
	lim.Agents = map[string]int{"a": 4}
	got = claimedIDs(f.claim(claimMax(10), claimLimits(lim)))
	sameIDs(t, "agent override 4", got, []string{a[2], a[3]})
}

func testClaimWorkspaceLimit(t *testing.T, f *fixture) {
	var w1, w2 []string
	for range 4 {
		w1 = append(w1, f.insert(withWorkspace("w1"), withAgent("x")).ID)
		w2 = append(w2, f.insert(withWorkspace("w2"), withAgent("y")).ID)
	}
	lim := claimLimits(spool.Limits{PerWorkspace: 3})
	got := claimedIDs(f.claim(claimMax(4), lim))
	sameIDs(t, "first claim", got, []string{w1[0], w2[0], w1[1], w2[1]})
	got = claimedIDs(f.claim(claimMax(10), lim))
	sameIDs(t, "up to the workspace limit", got, []string{w1[2], w2[2]})
	if more := f.claim(claimMax(10), lim); len(more) != 0 {
		t.Fatalf("claimed %v with every workspace at its limit", claimedIDs(more))
	}
}

func testClaimSession(t *testing.T, f *fixture) {
	s1 := f.insert(withSession("s"), withPriority(spool.PriorityLow), withMaxRetries(3))
	s2 := f.insert(withSession("s"), withPriority(spool.PriorityUrgent))
	s3 := f.insert(withSession("s"), withPriority(spool.PriorityHigh))
	other := f.insert(withSession("t"), withPriority(spool.PriorityNormal))
	plain := f.insert(withPriority(spool.PriorityUrgent))

	// One run per session, the session's first; the urgent s2 waits for s1.
	got := claimedIDs(f.claim(claimMax(10)))
	equalIDs(t, "first claim", got, []string{plain.ID, other.ID, s1.ID})
	if more := f.claim(claimMax(10)); len(more) != 0 {
		t.Fatalf("claimed %v while the sessions run", claimedIDs(more))
	}

	// s1 goes back to the queue to retry later: s2 still waits, since s1 comes first.
	later := f.now.Add(time.Minute)
	f.finish(nil, &store.RunFinishParams{ID: s1.ID, Node: node, Attempt: 1, State: spool.StateQueued, Now: f.now, AvailableAt: later, Error: "boom"})
	if more := f.claim(claimMax(10)); len(more) != 0 {
		t.Fatalf("claimed %v while the session's first run backs off", claimedIDs(more))
	}
	c := f.claimOne(claimAt(later), claimMax(10))
	if c.ID != s1.ID {
		t.Fatalf("after the back-off claimed %s, want %s", c.ID, s1.ID)
	}
	f.succeed(c, later)
	got = claimedIDs(f.claim(claimAt(later), claimMax(10)))
	equalIDs(t, "after s1 ended", got, []string{s2.ID})
	f.succeed(&store.ClaimedRun{Run: f.get(s2.ID)}, later)
	got = claimedIDs(f.claim(claimAt(later), claimMax(10)))
	equalIDs(t, "after s2 ended", got, []string{s3.ID})
}

// A session is a session_id within a workspace: equal ids in two workspaces are two sessions.
func testClaimSessionPerWorkspace(t *testing.T, f *fixture) {
	a1 := f.insert(withWorkspace("w1"), withSession("chat"))
	f.insert(withWorkspace("w1"), withSession("chat"))
	b1 := f.insert(withWorkspace("w2"), withSession("chat"))
	equalIDs(t, "one run of each workspace's session", claimedIDs(f.claim(claimMax(10))), []string{a1.ID, b1.ID})
}

func testClaimHeldAgents(t *testing.T, f *fixture) {
	held := f.insert(withAgent("held"), withPriority(spool.PriorityUrgent))
	free := f.insert(withAgent("free"), withPriority(spool.PriorityLow))
	got := claimedIDs(f.claim(claimMax(10), func(p *store.RunClaimParams) { p.HeldAgents = []string{"held"} }))
	equalIDs(t, "with agent held", got, []string{free.ID})
	got = claimedIDs(f.claim(claimMax(10)))
	equalIDs(t, "after release", got, []string{held.ID})
}

func testClaimAvailableAt(t *testing.T, f *fixture) {
	r := f.insert(withPriority(spool.PriorityUrgent), withMaxRetries(2))
	c := f.claimOne()
	later := f.now.Add(30 * time.Second)
	got := f.finish(nil, &store.RunFinishParams{ID: c.ID, Node: node, Attempt: 1, State: spool.StateQueued, Now: f.now, AvailableAt: later})
	wantState(t, got[0], spool.StateQueued)
	if !got[0].AvailableAt.Equal(later) {
		t.Fatalf("AvailableAt %v, want %v", got[0].AvailableAt, later)
	}
	other := f.insert(withPriority(spool.PriorityLow))
	equalIDs(t, "before available", claimedIDs(f.claim(claimMax(10))), []string{other.ID})
	equalIDs(t, "once available", claimedIDs(f.claim(claimMax(10), claimAt(later))), []string{r.ID})
}

func testClaimNoHeadOfLineBlocking(t *testing.T, f *fixture) {
	lim := claimLimits(spool.Limits{PerAgent: 1})
	first := f.insert(withAgent("A"), withPriority(spool.PriorityUrgent))
	equalIDs(t, "agent A starts", claimedIDs(f.claim(lim)), []string{first.ID})
	backlog := func(n int) {
		t.Helper()
		var ps []*store.RunInsertParams
		for range n {
			ps = append(ps, f.params(withAgent("A"), withPriority(spool.PriorityUrgent)))
		}
		if _, err := f.s.RunInsertMany(f.ctx, ps); err != nil {
			t.Fatal(err)
		}
	}

	// Agent A is at its limit with urgent runs waiting; a low-priority run of B still starts.
	backlog(200)
	b := f.insert(withAgent("B"), withPriority(spool.PriorityLow))
	equalIDs(t, "B behind A's backlog", claimedIDs(f.claim(claimMax(5), lim)), []string{b.ID})

	// The same behind a large backlog, with another group filling up inside the claim.
	backlog(2500)
	c1 := f.insert(withAgent("C"), withPriority(spool.PriorityHigh))
	f.insert(withAgent("C"), withPriority(spool.PriorityHigh))
	d := f.insert(withAgent("D"), withPriority(spool.PriorityLow))
	equalIDs(t, "one C run, then D", claimedIDs(f.claim(claimMax(5), lim)), []string{c1.ID, d.ID})
	if more := f.claim(claimMax(5), lim); len(more) != 0 {
		t.Fatalf("claimed %v with every agent at its limit", claimedIDs(more))
	}

	// Behind the backlog, exact claim order still holds when one agent leads the queue.
	var urgent, low []string
	for range 60 {
		urgent = append(urgent, f.insert(withAgent("E"), withPriority(spool.PriorityUrgent)).ID)
		low = append(low, f.insert(withAgent("F"), withPriority(spool.PriorityLow)).ID)
	}
	unlimited := claimLimits(spool.Limits{Agents: map[string]int{"A": 1, "B": 1, "C": 1, "D": 1}})
	equalIDs(t, "urgent E runs first", claimedIDs(f.claim(claimMax(50), unlimited)), urgent[:50])
	equalIDs(t, "then the rest in order", claimedIDs(f.claim(claimMax(20), unlimited)), append(urgent[50:], low[:10]...))
}

func testClaimConcurrent(t *testing.T, f *fixture) {
	const runs = 60
	for i := range runs {
		f.insert(withAgent(fmt.Sprint("agent-", i%5)))
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]int{}
		errs []error
	)
	for w := range 6 {
		wg.Go(func() {
			for {
				got, err := f.s.RunClaim(f.ctx, &store.RunClaimParams{Node: fmt.Sprint("node-", w), Now: f.now,
					LeaseUntil: f.now.Add(time.Minute), Max: 4, Limits: spool.Limits{Global: 40, PerAgent: 7}})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, c := range got {
					seen[c.ID]++
				}
				mu.Unlock()
				if err != nil || len(got) == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("claim failed: %v", errs[0])
	}
	if len(seen) != 35 {
		t.Fatalf("claimed %d runs under a limit of 7 for each of 5 agents", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("run %s claimed %d times", id, n)
		}
	}
	st, err := f.s.RunStats(f.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for a, n := range st.RunningByAgent {
		if n != 7 {
			t.Fatalf("agent %s has %d running, want 7", a, n)
		}
	}
}

// ---- finish ----

func testFinishTerminal(t *testing.T, f *fixture) {
	ok := f.insert()
	bad := f.insert()
	f.claim(claimMax(2))
	at := f.now.Add(5 * time.Second)
	events := []*spool.Event{
		{RunID: ok.ID, Seq: 3, Type: spool.EventOutput, Time: at, Text: "hello\n"},
		{RunID: ok.ID, Seq: 4, Type: spool.EventResult, Time: at, Result: json.RawMessage(`{"answer":42}`)},
		{RunID: bad.ID, Seq: 3, Type: spool.EventProgress, Time: at, Progress: &spool.Progress{Percentage: 30, CurrentStep: "step 1"}},
		{RunID: bad.ID, Seq: 4, Type: spool.EventError, Time: at, Error: "exit status 2", ErrorCode: spool.CodeExitStatus},
	}
	prog := &spool.Progress{Percentage: 100, CurrentStep: "done", StepsCompleted: 3, StepsTotal: 3}
	got := f.finish(events,
		&store.RunFinishParams{ID: ok.ID, Node: node, Attempt: 1, State: spool.StateSucceeded, Result: json.RawMessage(`{"answer":42}`), Progress: prog, Now: at},
		&store.RunFinishParams{ID: bad.ID, Node: node, Attempt: 1, State: spool.StateFailed, Error: "exit status 2", ErrorCode: spool.CodeExitStatus, Now: at},
	)
	for i, want := range []spool.State{spool.StateSucceeded, spool.StateFailed} {
		if got[i] == nil {
			t.Fatalf("finish %d: guard did not hold", i)
		}
		wantState(t, got[i], want)
		wantTime(t, "CompletedAt", got[i].CompletedAt, at)
	}
	r := f.get(ok.ID)
	wantState(t, r, spool.StateSucceeded)
	if string(r.Result) != `{"answer":42}` || r.Error != "" {
		t.Fatalf("result %s error %q", r.Result, r.Error)
	}
	if r.Progress != *prog {
		t.Fatalf("progress %+v, want %+v", r.Progress, *prog)
	}
	r = f.get(bad.ID)
	if r.Error != "exit status 2" || r.ErrorCode != spool.CodeExitStatus || r.Result != nil {
		t.Fatalf("failed run: error %q code %q result %s", r.Error, r.ErrorCode, r.Result)
	}
	if r.Progress.Percentage != 30 || r.Progress.CurrentStep != "step 1" {
		t.Fatalf("progress of the failed run %+v, want its last progress event's", r.Progress)
	}
	evs := f.events(ok.ID)
	if len(evs) != 4 || evs[2].Text != "hello\n" || evs[3].Type != spool.EventResult || string(evs[3].Result) != `{"answer":42}` {
		t.Fatalf("events of the succeeded run: %+v", evs)
	}
	if evs := f.events(bad.ID); len(evs) != 4 || evs[3].ErrorCode != spool.CodeExitStatus || evs[3].Error != "exit status 2" {
		t.Fatalf("events of the failed run: %+v", evs)
	}
	// A finished run cannot finish again.
	again := f.finish(nil, &store.RunFinishParams{ID: ok.ID, Node: node, Attempt: 1, State: spool.StateFailed, Now: at})
	if again[0] != nil {
		t.Fatalf("second finish changed the run: %+v", again[0])
	}
}

func testFinishGuard(t *testing.T, f *fixture) {
	r := f.insert()
	queued := f.insert()
	f.claimOne()
	got := f.finish(nil,
		&store.RunFinishParams{ID: r.ID, Node: "other-node", Attempt: 1, State: spool.StateSucceeded, Now: f.now},
		&store.RunFinishParams{ID: r.ID, Node: node, Attempt: 2, State: spool.StateSucceeded, Now: f.now},
		&store.RunFinishParams{ID: queued.ID, Node: node, Attempt: 0, State: spool.StateSucceeded, Now: f.now},
		&store.RunFinishParams{ID: "run_missing", Node: node, Attempt: 1, State: spool.StateSucceeded, Now: f.now},
	)
	for i, g := range got {
		if g != nil {
			t.Fatalf("finish %d changed run %s", i, g.ID)
		}
	}
	wantState(t, f.get(r.ID), spool.StateRunning)
	wantState(t, f.get(queued.ID), spool.StateQueued)
	// In one call, only the finish whose guard holds reports the run.
	got = f.finish(nil,
		&store.RunFinishParams{ID: r.ID, Node: "other-node", Attempt: 1, State: spool.StateFailed, Now: f.now},
		&store.RunFinishParams{ID: r.ID, Node: node, Attempt: 1, State: spool.StateSucceeded, Now: f.now},
		&store.RunFinishParams{ID: r.ID, Node: node, Attempt: 1, State: spool.StateFailed, Now: f.now},
	)
	if got[0] != nil || got[1] == nil || got[2] != nil {
		t.Fatalf("finishes of one run in one call: %v", runIDs(got))
	}
	wantState(t, got[1], spool.StateSucceeded)
	wantState(t, f.get(r.ID), spool.StateSucceeded)
}

func testFinishRetryKeepsPlace(t *testing.T, f *fixture) {
	first := f.insert(withMaxRetries(2))
	second := f.insert()
	c := f.claimOne()
	if c.ID != first.ID {
		t.Fatalf("claimed %s, want %s", c.ID, first.ID)
	}
	third := f.insert()
	got := f.finish(nil, &store.RunFinishParams{ID: first.ID, Node: node, Attempt: 1, State: spool.StateQueued,
		Error: "flaky", ErrorCode: spool.CodeExitStatus, Now: f.now, AvailableAt: f.now})
	wantState(t, got[0], spool.StateQueued)
	if got[0].Attempt != 1 || got[0].CompletedAt != nil || got[0].Node != "" {
		t.Fatalf("re-queued run: attempt %d completed %v node %q", got[0].Attempt, got[0].CompletedAt, got[0].Node)
	}
	if got[0].Seq != first.Seq {
		t.Fatalf("re-queued run's seq changed: %d -> %d", first.Seq, got[0].Seq)
	}
	order := claimedIDs(f.claim(claimMax(3)))
	equalIDs(t, "claim after the retry", order, []string{first.ID, second.ID, third.ID})
	if r := f.get(first.ID); r.Attempt != 2 {
		t.Fatalf("attempt %d after the second start, want 2", r.Attempt)
	}
}

func testFinishKeepAttempt(t *testing.T, f *fixture) {
	r := f.insert()
	f.claimOne()
	got := f.finish(nil, &store.RunFinishParams{ID: r.ID, Node: node, Attempt: 1, State: spool.StateQueued,
		KeepAttempt: true, Now: f.now, AvailableAt: f.now})
	if got[0] == nil || got[0].Attempt != 0 {
		t.Fatalf("after a back-off re-queue attempt = %v, want 0", got[0])
	}
	c := f.claimOne()
	if c.Attempt != 1 {
		t.Fatalf("next start has attempt %d, want 1", c.Attempt)
	}
}

func testFinishWebhooks(t *testing.T, f *fixture) {
	type tc struct {
		name   string
		events []string
		state  spool.State
		code   string
		want   bool
	}
	cases := []tc{
		{"default succeeded", nil, spool.StateSucceeded, "", true},
		{"default failed", nil, spool.StateFailed, spool.CodeExitStatus, true},
		{"default timeout", nil, spool.StateFailed, spool.CodeTimeout, true},
		{"default cancelled", nil, spool.StateCancelled, spool.CodeCancelled, true},
		{"completed on success", []string{"completed"}, spool.StateSucceeded, "", true},
		{"succeeded on success", []string{"succeeded"}, spool.StateSucceeded, "", true},
		{"completed on failure", []string{"completed"}, spool.StateFailed, spool.CodeExitStatus, false},
		{"failed on failure", []string{"failed"}, spool.StateFailed, spool.CodeExitStatus, true},
		{"failed on cancel", []string{"failed"}, spool.StateCancelled, spool.CodeCancelled, false},
		{"timeout on timeout", []string{"timeout"}, spool.StateFailed, spool.CodeTimeout, true},
		{"timeout on other failure", []string{"timeout"}, spool.StateFailed, spool.CodeExitStatus, false},
		{"cancelled on cancel", []string{"cancelled"}, spool.StateCancelled, spool.CodeCancelled, true},
		{"cancelled on success", []string{"cancelled"}, spool.StateSucceeded, "", false},
	}
	runs := make([]*spool.Run, len(cases))
	for i, c := range cases {
		runs[i] = f.insert(withWebhook("https://example.com/hook", c.events...))
	}
	noHook := f.insert()
	claimed := f.claim(claimMax(len(cases) + 1))
	if len(claimed) != len(cases)+1 {
		t.Fatalf("claimed %d", len(claimed))
	}
	var ps []*store.RunFinishParams
	for i, c := range cases {
		ps = append(ps, &store.RunFinishParams{ID: runs[i].ID, Node: node, Attempt: 1, State: c.state, ErrorCode: c.code, Error: c.code, Now: f.now})
	}
	ps = append(ps, &store.RunFinishParams{ID: noHook.ID, Node: node, Attempt: 1, State: spool.StateSucceeded, Now: f.now})
	f.finish(nil, ps...)
	for i, c := range cases {
		ds, err := f.s.WebhookList(f.ctx, runs[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(ds) == 1; got != c.want {
			t.Fatalf("%s: %d deliveries, want delivery %v", c.name, len(ds), c.want)
		}
		if c.want {
			d := ds[0]
			if d.Event != string(c.state) || d.URL != "https://example.com/hook" || d.State != store.DeliveryPending || len(d.Attempts) != 0 {
				t.Fatalf("%s: delivery %+v", c.name, d)
			}
			if d.NextAt.After(f.now.Add(time.Second)) {
				t.Fatalf("%s: delivery due at %v, not now", c.name, d.NextAt)
			}
		}
	}
	if ds, err := f.s.WebhookList(f.ctx, noHook.ID); err != nil || len(ds) != 0 {
		t.Fatalf("run without webhook_url: %d deliveries, err %v", len(ds), err)
	}
	// A re-queue is not terminal: no delivery.
	retry := f.insert(withWebhook("https://example.com/hook"), withMaxRetries(1))
	f.claimOne()
	f.finish(nil, &store.RunFinishParams{ID: retry.ID, Node: node, Attempt: 1, State: spool.StateQueued, Now: f.now, AvailableAt: f.now})
	if ds, _ := f.s.WebhookList(f.ctx, retry.ID); len(ds) != 0 {
		t.Fatalf("re-queue enqueued %d deliveries", len(ds))
	}
}

// ---- cancel, pause, resume ----

func testCancel(t *testing.T, f *fixture) {
	at := f.now.Add(time.Hour)
	queued := f.insert(withWebhook("https://example.com/hook"))
	scheduled := f.insert(func(p *store.RunInsertParams) { p.RunAt = &at })
	paused := f.insert()
	if _, err := f.s.RunPause(f.ctx, paused.ID, f.now); err != nil {
		t.Fatal(err)
	}
	cancelAt := f.now.Add(time.Second)
	for _, r := range []*spool.Run{queued, scheduled, paused} {
		got, err := f.s.RunCancel(f.ctx, r.ID, cancelAt)
		if err != nil {
			t.Fatalf("cancel %s: %v", r.ID, err)
		}
		wantState(t, got, spool.StateCancelled)
		wantTime(t, "CompletedAt", got.CompletedAt, cancelAt)
		wantState(t, f.get(r.ID), spool.StateCancelled)
		evs := f.events(r.ID)
		var status, cancelled bool
		for _, e := range evs {
			status = status || (e.Type == spool.EventStatus && e.Status == spool.StateCancelled)
			cancelled = cancelled || e.Type == spool.EventCancelled
		}
		if !status || !cancelled || evs[len(evs)-1].Type != spool.EventCancelled {
			t.Fatalf("events after cancel: %+v, want status(cancelled) then cancelled last", evs)
		}
		for i, e := range evs {
			if e.Seq != int64(i+1) {
				t.Fatalf("event seqs %v not 1..n", evs)
			}
		}
	}
	ds, err := f.s.WebhookList(f.ctx, queued.ID)
	if err != nil || len(ds) != 1 || ds[0].Event != string(spool.StateCancelled) {
		t.Fatalf("cancel of a run with a webhook: deliveries %+v err %v", ds, err)
	}
	if got := f.claim(claimMax(10), claimAt(at.Add(time.Hour))); len(got) != 0 {
		t.Fatalf("claimed cancelled runs %v", claimedIDs(got))
	}
	_, err = f.s.RunCancel(f.ctx, "run_missing", f.now)
	wantNotFound(t, err)
}

func testCancelRunning(t *testing.T, f *fixture) {
	r := f.insert()
	f.claimOne()
	at := f.now.Add(2 * time.Second)
	got, err := f.s.RunCancel(f.ctx, r.ID, at)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, got, spool.StateRunning)
	wantTime(t, "CancelRequestedAt", got.CancelRequestedAt, at)
	wantTime(t, "CancelRequestedAt (get)", f.get(r.ID).CancelRequestedAt, at)
	if got.CompletedAt != nil {
		t.Fatalf("CompletedAt set on a running run")
	}
	// A second cancel keeps the first request time.
	again, err := f.s.RunCancel(f.ctx, r.ID, at.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	wantTime(t, "CancelRequestedAt after a second cancel", again.CancelRequestedAt, at)
	ids, err := f.s.RunCancelRequested(f.ctx, node)
	if err != nil || !slices.Equal(ids, []string{r.ID}) {
		t.Fatalf("RunCancelRequested = %v, %v", ids, err)
	}
	if ids, err := f.s.RunCancelRequested(f.ctx, "other-node"); err != nil || len(ids) != 0 {
		t.Fatalf("RunCancelRequested(other) = %v, %v", ids, err)
	}
	f.finish(nil, &store.RunFinishParams{ID: r.ID, Node: node, Attempt: 1, State: spool.StateCancelled, Error: "cancelled", ErrorCode: spool.CodeCancelled, Now: at})
	if ids, _ := f.s.RunCancelRequested(f.ctx, node); len(ids) != 0 {
		t.Fatalf("RunCancelRequested lists ended runs: %v", ids)
	}
}

func testCancelTerminal(t *testing.T, f *fixture) {
	r := f.insert()
	f.succeed(f.claimOne(), f.now)
	_, err := f.s.RunCancel(f.ctx, r.ID, f.now)
	wantConflict(t, err, spool.StateSucceeded)
	wantState(t, f.get(r.ID), spool.StateSucceeded)
}

func testPauseResume(t *testing.T, f *fixture) {
	r1 := f.insert()
	r2 := f.insert()
	r3 := f.insert()
	p, err := f.s.RunPause(f.ctx, r1.ID, f.now)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, p, spool.StatePaused)
	wantState(t, f.get(r1.ID), spool.StatePaused)
	_, err = f.s.RunPause(f.ctx, r1.ID, f.now)
	wantConflict(t, err, spool.StatePaused)

	equalIDs(t, "while r1 is paused", claimedIDs(f.claim()), []string{r2.ID})
	res, err := f.s.RunResume(f.ctx, r1.ID, f.now)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, res, spool.StateQueued)
	// Back in its original place: before r3, which was submitted later.
	equalIDs(t, "after resume", claimedIDs(f.claim(claimMax(2))), []string{r1.ID, r3.ID})

	_, err = f.s.RunResume(f.ctx, r3.ID, f.now)
	wantConflict(t, err, spool.StateRunning)
	_, err = f.s.RunPause(f.ctx, r3.ID, f.now)
	wantConflict(t, err, spool.StateRunning)
	_, err = f.s.RunPause(f.ctx, "run_missing", f.now)
	wantNotFound(t, err)
	_, err = f.s.RunResume(f.ctx, "run_missing", f.now)
	wantNotFound(t, err)
}

func testPauseResumeScheduled(t *testing.T, f *fixture) {
	at := f.now.Add(time.Hour)
	r := f.insert(func(p *store.RunInsertParams) { p.RunAt = &at })
	if _, err := f.s.RunPause(f.ctx, r.ID, f.now); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.RunResume(f.ctx, r.ID, f.now)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, got, spool.StateScheduled)

	// Resumed after its time: queued.
	if _, err := f.s.RunPause(f.ctx, r.ID, f.now); err != nil {
		t.Fatal(err)
	}
	got, err = f.s.RunResume(f.ctx, r.ID, at.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, got, spool.StateQueued)
	equalIDs(t, "claim after resume", claimedIDs(f.claim(claimAt(at.Add(time.Second)))), []string{r.ID})
}

// ---- delete, clear ----

func testDelete(t *testing.T, f *fixture) {
	done := f.insert(withWebhook("https://example.com/hook"))
	active := f.insert()
	f.succeed(f.claimOne(), f.now)
	if ds, _ := f.s.WebhookList(f.ctx, done.ID); len(ds) != 1 {
		t.Fatalf("setup: %d deliveries", len(ds))
	}
	if err := f.s.RunDelete(f.ctx, done.ID); err != nil {
		t.Fatal(err)
	}
	_, err := f.s.RunGet(f.ctx, done.ID)
	wantNotFound(t, err)
	if evs := f.events(done.ID); len(evs) != 0 {
		t.Fatalf("%d events left after delete", len(evs))
	}
	if ds, err := f.s.WebhookList(f.ctx, done.ID); err != nil || len(ds) != 0 {
		t.Fatalf("%d deliveries left after delete (err %v)", len(ds), err)
	}
	err = f.s.RunDelete(f.ctx, active.ID)
	wantConflict(t, err, spool.StateQueued)
	wantState(t, f.get(active.ID), spool.StateQueued)
	wantNotFound(t, f.s.RunDelete(f.ctx, done.ID))
}

func testClear(t *testing.T, f *fixture) {
	old := f.insert(withWebhook("https://example.com/hook"))
	recent := f.insert()
	other := f.insert(withWorkspace("other"))
	queued := f.insert()
	cs := f.claim(claimMax(3))
	f.succeed(cs[0], f.now.Add(-2*time.Hour))
	f.succeed(cs[1], f.now)
	f.succeed(cs[2], f.now.Add(-2*time.Hour))

	n, err := f.s.RunClear(f.ctx, &store.RunClearParams{Before: f.now.Add(-time.Hour), Workspace: "default", Now: f.now})
	if err != nil || n != 1 {
		t.Fatalf("clear older than an hour in default: %d, %v; want 1", n, err)
	}
	_, err = f.s.RunGet(f.ctx, old.ID)
	wantNotFound(t, err)
	if evs := f.events(old.ID); len(evs) != 0 {
		t.Fatalf("events of a cleared run remain: %d", len(evs))
	}
	if ds, _ := f.s.WebhookList(f.ctx, old.ID); len(ds) != 0 {
		t.Fatalf("deliveries of a cleared run remain: %d", len(ds))
	}
	f.get(recent.ID)
	f.get(other.ID)

	n, err = f.s.RunClear(f.ctx, &store.RunClearParams{Now: f.now})
	if err != nil || n != 2 {
		t.Fatalf("clear all terminal: %d, %v; want 2", n, err)
	}
	wantState(t, f.get(queued.ID), spool.StateQueued)
	if _, total := f.list(spool.ListParams{}); total != 1 {
		t.Fatalf("%d runs left, want 1", total)
	}
	if st, err := f.s.RunStats(f.ctx, ""); err != nil || st.Total != 1 || st.Succeeded != 0 || st.Queued != 1 {
		t.Fatalf("stats after clear: %+v, %v", st, err)
	}
}

func testClearAll(t *testing.T, f *fixture) {
	done := f.insert()
	f.succeed(f.claimOne(), f.now)
	running := f.insert()
	equalIDs(t, "claim", claimedIDs(f.claim()), []string{running.ID})
	queued := f.insert()
	at := f.now.Add(time.Hour)
	scheduled := f.insert(func(p *store.RunInsertParams) { p.RunAt = &at })
	paused := f.insert()
	if _, err := f.s.RunPause(f.ctx, paused.ID, f.now); err != nil {
		t.Fatal(err)
	}
	elsewhere := f.insert(withWorkspace("other"))

	n, err := f.s.RunClear(f.ctx, &store.RunClearParams{All: true, Workspace: "default", Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("clear --all deleted %d, want 4 (done, queued, scheduled, paused)", n)
	}
	for _, id := range []string{done.ID, queued.ID, scheduled.ID, paused.ID} {
		_, err := f.s.RunGet(f.ctx, id)
		wantNotFound(t, err)
	}
	r := f.get(running.ID)
	wantState(t, r, spool.StateRunning)
	if r.CancelRequestedAt == nil {
		t.Fatal("running run not asked to stop")
	}
	wantState(t, f.get(elsewhere.ID), spool.StateQueued)

	// The running run is deleted once it ends.
	f.finish(nil, &store.RunFinishParams{ID: running.ID, Node: node, Attempt: 1, State: spool.StateCancelled, Now: f.now})
	_, err = f.s.RunGet(f.ctx, running.ID)
	wantNotFound(t, err)
	if _, total := f.list(spool.ListParams{}); total != 1 {
		t.Fatalf("%d runs left, want 1", total)
	}
}

// ---- stats ----

func testStats(t *testing.T, f *fixture) {
	t0 := f.now
	mk := func(agent, ws string, p spool.Priority) *spool.Run {
		return f.insert(withAgent(agent), withWorkspace(ws), withPriority(p))
	}
	a := mk("a", "w1", spool.PriorityUrgent)
	b := mk("b", "w1", spool.PriorityUrgent)
	mk("a", "w1", spool.PriorityLow)
	mk("a", "w2", spool.PriorityHigh)
	mk("b", "w2", spool.PriorityHigh)
	at := t0.Add(time.Hour)
	f.insert(withWorkspace("w2"), func(p *store.RunInsertParams) { p.RunAt = &at })

	// a: waits 2 s, runs 3 s. b: waits 4 s, runs 6 s.
	ca := f.claimOne(claimAt(t0.Add(2 * time.Second)))
	cb := f.claimOne(claimAt(t0.Add(4 * time.Second)))
	if ca.ID != a.ID || cb.ID != b.ID {
		t.Fatalf("claimed %s %s", ca.ID, cb.ID)
	}
	f.succeed(ca, t0.Add(5*time.Second))
	f.finish(nil, &store.RunFinishParams{ID: b.ID, Node: node, Attempt: 1, State: spool.StateFailed, Error: "x", Now: t0.Add(10 * time.Second)})
	st, err := f.s.RunStats(f.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !near(st.AvgWaitSeconds, 3) || !near(st.AvgDurationSeconds, 4.5) {
		t.Fatalf("avg wait %v duration %v, want 3 and 4.5", st.AvgWaitSeconds, st.AvgDurationSeconds)
	}
	running := f.claimOne(claimAt(t0.Add(20 * time.Second))) // the first high one, in w2
	if running.Workspace != "w2" || running.Agent != "a" {
		t.Fatalf("claimed %s/%s", running.Workspace, running.Agent)
	}
	if err := func() error { _, err := f.s.LimitsSet(f.ctx, spool.Limits{Global: 7}); return err }(); err != nil {
		t.Fatal(err)
	}

	st, err = f.s.RunStats(f.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued != 2 || st.Scheduled != 1 || st.Running != 1 || st.Paused != 0 || st.Succeeded != 1 || st.Failed != 1 || st.Cancelled != 0 || st.Total != 6 {
		t.Fatalf("counts: %+v", st)
	}
	if st.QueuedByPriority["low"] != 1 || st.QueuedByPriority["high"] != 1 || st.QueuedByPriority["urgent"] != 0 {
		t.Fatalf("queued by priority: %v", st.QueuedByPriority)
	}
	if st.RunningByAgent["a"] != 1 || len(st.RunningByAgent) != 1 || st.RunningByWorkspace["w2"] != 1 || len(st.RunningByWorkspace) != 1 {
		t.Fatalf("running by agent %v, by workspace %v", st.RunningByAgent, st.RunningByWorkspace)
	}
	if st.Limits.Global != 7 {
		t.Fatalf("limits in stats: %+v", st.Limits)
	}

	w1, err := f.s.RunStats(f.ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if w1.Total != 3 || w1.Queued != 1 || w1.Running != 0 || w1.Succeeded != 1 || w1.Failed != 1 || w1.Scheduled != 0 {
		t.Fatalf("w1 counts: %+v", w1)
	}
	if !near(w1.AvgWaitSeconds, 3) || !near(w1.AvgDurationSeconds, 4.5) {
		t.Fatalf("w1 avg wait %v duration %v", w1.AvgWaitSeconds, w1.AvgDurationSeconds)
	}
	w2, err := f.s.RunStats(f.ctx, "w2")
	if err != nil {
		t.Fatal(err)
	}
	if w2.Total != 3 || w2.Running != 1 || w2.Queued != 1 || w2.Scheduled != 1 || w2.Succeeded != 0 {
		t.Fatalf("w2 counts: %+v", w2)
	}
	empty, err := f.s.RunStats(f.ctx, "nobody")
	if err != nil || empty.Total != 0 || empty.AvgWaitSeconds != 0 {
		t.Fatalf("stats of an empty workspace: %+v, %v", empty, err)
	}
}

func near(a, b float64) bool { return a-b < 0.001 && b-a < 0.001 }

// ---- rescue, heartbeat, promote ----

func testRescue(t *testing.T, f *fixture) {
	r1 := f.insert(withMaxRetries(1))
	r2 := f.insert()
	r3 := f.insert()
	cs := f.claim(claimMax(2)) // r1, r2, leases until now+10s
	equalIDs(t, "claim", claimedIDs(cs), []string{r1.ID, r2.ID})
	if _, err := f.s.RunHeartbeat(f.ctx, node, []string{r2.ID}, f.now.Add(60*time.Second)); err != nil {
		t.Fatal(err)
	}
	at := f.now.Add(30 * time.Second)
	got, err := f.s.RunRescue(f.ctx, &store.RunRescueParams{Now: at})
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "rescued at +30s", runIDs(got), []string{r1.ID})
	wantState(t, got[0], spool.StateQueued)
	r := f.get(r1.ID)
	wantState(t, r, spool.StateQueued)
	if r.Attempt != 1 || r.Seq != r1.Seq || r.Node != "" {
		t.Fatalf("re-queued run: attempt %d seq %d node %q", r.Attempt, r.Seq, r.Node)
	}
	wantState(t, f.get(r2.ID), spool.StateRunning)
	// It keeps its place: before r3.
	c := f.claimOne(claimAt(at))
	if c.ID != r1.ID || c.Attempt != 2 {
		t.Fatalf("claimed %s attempt %d, want %s attempt 2", c.ID, c.Attempt, r1.ID)
	}

	// No retries left: failed, interrupted, with a terminal error event.
	late := f.now.Add(5 * time.Minute)
	got, err = f.s.RunRescue(f.ctx, &store.RunRescueParams{Now: late})
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "rescued at +5m", runIDs(got), []string{r1.ID, r2.ID})
	for _, id := range []string{r1.ID, r2.ID} {
		r := f.get(id)
		wantState(t, r, spool.StateFailed)
		if r.ErrorCode != spool.CodeInterrupted || r.Error == "" || r.CompletedAt == nil {
			t.Fatalf("interrupted run: code %q error %q completed %v", r.ErrorCode, r.Error, r.CompletedAt)
		}
		evs := f.events(id)
		last := evs[len(evs)-1]
		if last.Type != spool.EventError || last.ErrorCode != spool.CodeInterrupted {
			t.Fatalf("last event %+v, want an error event with code interrupted", last)
		}
	}
	wantState(t, f.get(r3.ID), spool.StateQueued)
	if got, err := f.s.RunRescue(f.ctx, &store.RunRescueParams{Now: late}); err != nil || len(got) != 0 {
		t.Fatalf("second rescue: %v, %v", runIDs(got), err)
	}
}

func testRescueAllRunning(t *testing.T, f *fixture) {
	r := f.insert(withMaxRetries(3))
	f.claimOne(func(p *store.RunClaimParams) { p.LeaseUntil = f.now.Add(time.Hour) })
	got, err := f.s.RunRescue(f.ctx, &store.RunRescueParams{Now: f.now})
	if err != nil || len(got) != 0 {
		t.Fatalf("rescue of a live lease: %v, %v", runIDs(got), err)
	}
	got, err = f.s.RunRescue(f.ctx, &store.RunRescueParams{Now: f.now, AllRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "AllRunning", runIDs(got), []string{r.ID})
	wantState(t, f.get(r.ID), spool.StateQueued)
}

func testHeartbeat(t *testing.T, f *fixture) {
	r := f.insert()
	other := f.insert()
	f.claim(claimMax(2))
	ids, err := f.s.RunHeartbeat(f.ctx, node, []string{r.ID, other.ID}, f.now.Add(100*time.Second))
	if err != nil || len(ids) != 0 {
		t.Fatalf("heartbeat: %v, %v", ids, err)
	}
	// Another node cannot extend these leases.
	if _, err := f.s.RunHeartbeat(f.ctx, "other-node", []string{r.ID}, f.now.Add(500*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := f.s.RunRescue(f.ctx, &store.RunRescueParams{Now: f.now.Add(50 * time.Second)}); err != nil || len(got) != 0 {
		t.Fatalf("rescue inside the extended lease: %v, %v", runIDs(got), err)
	}
	if _, err := f.s.RunCancel(f.ctx, r.ID, f.now); err != nil {
		t.Fatal(err)
	}
	ids, err = f.s.RunHeartbeat(f.ctx, node, []string{r.ID, other.ID}, f.now.Add(200*time.Second))
	if err != nil || !slices.Equal(ids, []string{r.ID}) {
		t.Fatalf("heartbeat after cancel: %v, %v; want [%s]", ids, err, r.ID)
	}
	got, err := f.s.RunRescue(f.ctx, &store.RunRescueParams{Now: f.now.Add(300 * time.Second)})
	if err != nil || len(got) != 2 {
		t.Fatalf("rescue after the leases ended: %v, %v", runIDs(got), err)
	}
}

func testPromoteNextWake(t *testing.T, f *fixture) {
	if _, ok, err := f.s.RunNextWake(f.ctx, f.now); err != nil || ok {
		t.Fatalf("NextWake of an empty store: ok %v, err %v", ok, err)
	}
	at := f.now.Add(time.Hour)
	r := f.insert(func(p *store.RunInsertParams) { p.RunAt = &at })
	wake, ok, err := f.s.RunNextWake(f.ctx, f.now)
	if err != nil || !ok || !wake.Equal(at) {
		t.Fatalf("NextWake = %v %v %v, want %v", wake, ok, err, at)
	}
	// A run backing off is woken for too.
	retry := f.insert(withMaxRetries(1))
	f.claimOne()
	backoff := f.now.Add(10 * time.Minute)
	f.finish(nil, &store.RunFinishParams{ID: retry.ID, Node: node, Attempt: 1, State: spool.StateQueued, Now: f.now, AvailableAt: backoff})
	wake, ok, err = f.s.RunNextWake(f.ctx, f.now)
	if err != nil || !ok || !wake.Equal(backoff) {
		t.Fatalf("NextWake = %v %v %v, want %v", wake, ok, err, backoff)
	}

	if n, err := f.s.RunPromote(f.ctx, f.now); err != nil || n != 0 {
		t.Fatalf("promote before the time: %d, %v", n, err)
	}
	n, err := f.s.RunPromote(f.ctx, at)
	if err != nil || n != 1 {
		t.Fatalf("promote at the time: %d, %v", n, err)
	}
	wantState(t, f.get(r.ID), spool.StateQueued)
	evs := f.events(r.ID)
	if last := evs[len(evs)-1]; last.Type != spool.EventStatus || last.Status != spool.StateQueued {
		t.Fatalf("last event after promote %+v", last)
	}
	got := claimedIDs(f.claim(claimAt(at), claimMax(5)))
	sameIDs(t, "claim after promote", got, []string{r.ID, retry.ID})
	if _, ok, err := f.s.RunNextWake(f.ctx, at); err != nil || ok {
		t.Fatalf("NextWake with nothing waiting: ok %v err %v", ok, err)
	}
}

// ---- events ----

func testEvents(t *testing.T, f *fixture) {
	r := f.insert()
	c := f.claimOne()
	var evs []*spool.Event
	seq := c.LastSeq
	for i := range 10 {
		seq++
		evs = append(evs, &spool.Event{RunID: r.ID, Seq: seq, Type: spool.EventOutput, Time: f.now, Text: fmt.Sprint("chunk ", i)})
	}
	seq++
	prog := &spool.Progress{Percentage: 45, CurrentStep: "halfway", StepsCompleted: 2, StepsTotal: 4}
	evs = append(evs, &spool.Event{RunID: r.ID, Seq: seq, Type: spool.EventProgress, Time: f.now, Progress: prog})
	seq++
	evs = append(evs, &spool.Event{RunID: r.ID, Seq: seq, Type: spool.EventLog, Time: f.now, Text: "warn\n"})
	other := f.insert()
	evs = append(evs, &spool.Event{RunID: other.ID, Seq: 2, Type: spool.EventLog, Time: f.now, Text: "x"})
	if err := f.s.EventAppend(f.ctx, evs); err != nil {
		t.Fatal(err)
	}
	all := f.events(r.ID)
	if int64(len(all)) != seq {
		t.Fatalf("%d events, want %d", len(all), seq)
	}
	for i, e := range all {
		if e.Seq != int64(i+1) || e.RunID != r.ID {
			t.Fatalf("event %d: seq %d run %s", i, e.Seq, e.RunID)
		}
	}
	if all[2].Text != "chunk 0" || all[2].Type != spool.EventOutput {
		t.Fatalf("first output event %+v", all[2])
	}
	if p := all[seq-2].Progress; p == nil || *p != *prog {
		t.Fatalf("progress event %+v", all[seq-2])
	}
	wantTime(t, "event time", &all[3].Time, f.now)
	if got := f.get(r.ID).Progress; got != *prog {
		t.Fatalf("run progress %+v, want %+v", got, *prog)
	}
	page, err := f.s.EventList(f.ctx, r.ID, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || page[0].Seq != 6 || page[2].Seq != 8 {
		t.Fatalf("after 5, limit 3: %+v", page)
	}
	if rest, err := f.s.EventList(f.ctx, r.ID, seq, 0); err != nil || len(rest) != 0 {
		t.Fatalf("after the last: %d, %v", len(rest), err)
	}
	if o := f.events(other.ID); len(o) != 2 || o[1].Text != "x" {
		t.Fatalf("other run's events %+v", o)
	}
	if none, err := f.s.EventList(f.ctx, "run_missing", 0, 0); err != nil || len(none) != 0 {
		t.Fatalf("events of a missing run: %d, %v", len(none), err)
	}
}

// ---- webhooks ----

// finishedWithWebhook makes n succeeded runs whose webhooks are due at f.now.
func (f *fixture) finishedWithWebhook(n int) []*spool.Run {
	f.t.Helper()
	var runs []*spool.Run
	for range n {
		runs = append(runs, f.insert(withWebhook("https://example.com/hook")))
	}
	for _, c := range f.claim(claimMax(n)) {
		f.succeed(c, f.now)
	}
	return runs
}

func testWebhookDeliveries(t *testing.T, f *fixture) {
	runs := f.finishedWithWebhook(1)
	lease := f.now.Add(30 * time.Second)
	got, err := f.s.WebhookClaim(f.ctx, "a", f.now, lease, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("claim: %d, %v", len(got), err)
	}
	d := got[0]
	if d.Event != string(spool.StateSucceeded) || d.URL != "https://example.com/hook" {
		t.Fatalf("delivery %+v", d)
	}
	// Leased: nobody else gets it until the lease ends.
	if again, err := f.s.WebhookClaim(f.ctx, "b", f.now, lease, 10); err != nil || len(again) != 0 {
		t.Fatalf("claim of a leased delivery: %d, %v", len(again), err)
	}
	if again, err := f.s.WebhookClaim(f.ctx, "b", lease.Add(time.Second), lease.Add(time.Minute), 10); err != nil || len(again) != 1 {
		t.Fatalf("claim after the lease ended: %d, %v", len(again), err)
	}

	// A failed attempt: due again at NextAt.
	next := f.now.Add(time.Hour)
	a1 := store.DeliveryAttempt{At: f.now, StatusCode: 500, Error: "server error", DurationMS: 12}
	if err := f.s.WebhookRecord(f.ctx, &store.WebhookRecordParams{ID: d.ID, Attempt: a1, State: store.DeliveryPending, NextAt: next}); err != nil {
		t.Fatal(err)
	}
	if due, _ := f.s.WebhookClaim(f.ctx, "a", next.Add(-time.Second), next.Add(time.Minute), 10); len(due) != 0 {
		t.Fatalf("claimed %d deliveries before NextAt", len(due))
	}
	due, err := f.s.WebhookClaim(f.ctx, "a", next, next.Add(time.Minute), 10)
	if err != nil || len(due) != 1 || len(due[0].Attempts) != 1 {
		t.Fatalf("claim at NextAt: %+v, %v", due, err)
	}
	a2 := store.DeliveryAttempt{At: next, StatusCode: 200, DurationMS: 8}
	if err := f.s.WebhookRecord(f.ctx, &store.WebhookRecordParams{ID: d.ID, Attempt: a2, State: store.DeliveryDelivered}); err != nil {
		t.Fatal(err)
	}
	if due, _ := f.s.WebhookClaim(f.ctx, "a", next.Add(time.Hour), next.Add(2*time.Hour), 10); len(due) != 0 {
		t.Fatalf("a delivered delivery was claimed again")
	}
	list, err := f.s.WebhookList(f.ctx, runs[0].ID)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	got0 := list[0]
	if got0.ID != d.ID || got0.State != store.DeliveryDelivered || len(got0.Attempts) != 2 {
		t.Fatalf("delivery after two attempts: %+v", got0)
	}
	if at := got0.Attempts[0]; at.StatusCode != 500 || at.Error != "server error" || at.DurationMS != 12 || !at.At.Equal(f.now) {
		t.Fatalf("first attempt %+v", at)
	}
	if at := got0.Attempts[1]; at.StatusCode != 200 || !at.At.Equal(next) {
		t.Fatalf("second attempt %+v", at)
	}
	err = f.s.WebhookRecord(f.ctx, &store.WebhookRecordParams{ID: "whd_missing", Attempt: a1, State: store.DeliveryFailed})
	wantNotFound(t, err)
}

func testWebhookClaimConcurrent(t *testing.T, f *fixture) {
	const n = 20
	f.finishedWithWebhook(n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]int{}
		errs []error
	)
	for w := range 5 {
		wg.Go(func() {
			for {
				got, err := f.s.WebhookClaim(f.ctx, fmt.Sprint("n", w), f.now, f.now.Add(time.Minute), 3)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, d := range got {
					seen[d.ID]++
				}
				mu.Unlock()
				if err != nil || len(got) == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	if len(seen) != n {
		t.Fatalf("claimed %d distinct deliveries, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("delivery %s claimed %d times", id, c)
		}
	}
}

// ---- limits, nodes ----

func testLimits(t *testing.T, f *fixture) {
	l, err := f.s.LimitsGet(f.ctx)
	if err != nil || l.Global != 0 || l.PerAgent != 0 || l.PerWorkspace != 0 || len(l.Agents) != 0 {
		t.Fatalf("default limits %+v, %v", l, err)
	}
	want := spool.Limits{Global: 10, PerAgent: 2, PerWorkspace: 5, Agents: map[string]int{"a": 1, "b": 4}}
	changed, err := f.s.LimitsSet(f.ctx, want)
	if err != nil || !changed {
		t.Fatalf("first set: changed %v, %v", changed, err)
	}
	changed, err = f.s.LimitsSet(f.ctx, spool.Limits{Global: 10, PerAgent: 2, PerWorkspace: 5, Agents: map[string]int{"b": 4, "a": 1}})
	if err != nil || changed {
		t.Fatalf("same limits again: changed %v, %v", changed, err)
	}
	got, err := f.s.LimitsGet(f.ctx)
	if err != nil || got.Global != 10 || got.PerAgent != 2 || got.PerWorkspace != 5 || got.Agents["a"] != 1 || got.Agents["b"] != 4 || len(got.Agents) != 2 {
		t.Fatalf("limits %+v, %v", got, err)
	}
	changed, err = f.s.LimitsSet(f.ctx, spool.Limits{Global: 10})
	if err != nil || !changed {
		t.Fatalf("different limits: changed %v, %v", changed, err)
	}
	got, _ = f.s.LimitsGet(f.ctx)
	if got.Global != 10 || got.PerAgent != 0 || len(got.Agents) != 0 {
		t.Fatalf("limits after replace %+v", got)
	}
	changed, err = f.s.LimitsSet(f.ctx, spool.Limits{})
	if err != nil || !changed {
		t.Fatalf("back to unlimited: changed %v, %v", changed, err)
	}
}

func testNodes(t *testing.T, f *fixture) {
	n1 := &store.Node{ID: "n1", Host: "host-a", PID: 100, StartedAt: f.now, SeenAt: f.now, Running: 2}
	n2 := &store.Node{ID: "n2", Host: "host-b", PID: 200, StartedAt: f.now, SeenAt: f.now, Running: 0}
	for _, n := range []*store.Node{n1, n2} {
		if err := f.s.NodeHeartbeat(f.ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	later := f.now.Add(3 * time.Second)
	n1b := *n1
	n1b.SeenAt, n1b.Running = later, 5
	if err := f.s.NodeHeartbeat(f.ctx, &n1b); err != nil {
		t.Fatal(err)
	}
	nodes, err := f.s.NodeList(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*store.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	if len(byID) != 2 {
		t.Fatalf("nodes %v", nodes)
	}
	got := byID["n1"]
	if got.Host != "host-a" || got.PID != 100 || got.Running != 5 || !got.SeenAt.Equal(later) || !got.StartedAt.Equal(f.now) {
		t.Fatalf("node n1 %+v", got)
	}
	if byID["n2"].Host != "host-b" || !byID["n2"].SeenAt.Equal(f.now) {
		t.Fatalf("node n2 %+v", byID["n2"])
	}
}

// testEventDropOutput: dropping a run's oldest output keeps its other events, later output
// and other runs' events.
func testEventDropOutput(t *testing.T, f *fixture) {
	r := f.insert()
	c := f.claimOne()
	other := f.insert()
	seq := c.LastSeq
	var evs []*spool.Event
	for i := range 6 {
		seq++
		typ := spool.EventOutput
		if i == 2 {
			typ = spool.EventLog
		}
		evs = append(evs, &spool.Event{RunID: r.ID, Seq: seq, Type: typ, Time: f.now, Text: fmt.Sprint("chunk ", i)})
	}
	evs = append(evs, &spool.Event{RunID: other.ID, Seq: 2, Type: spool.EventOutput, Time: f.now, Text: "keep"})
	if err := f.s.EventAppend(f.ctx, evs); err != nil {
		t.Fatal(err)
	}
	// Drop the output up to chunk 3.
	if err := f.s.EventDropOutput(f.ctx, r.ID, c.LastSeq+4); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range f.events(r.ID) {
		if e.Type == spool.EventOutput || e.Type == spool.EventLog {
			texts = append(texts, e.Text)
		}
	}
	if got := fmt.Sprint(texts); got != "[chunk 2 chunk 4 chunk 5]" {
		t.Fatalf("after the drop: %s, want the log chunk 2 and output chunks 4 and 5", got)
	}
	if n := len(f.events(other.ID)); n != 2 {
		t.Fatalf("other run has %d events after the drop, want 2", n)
	}
}
