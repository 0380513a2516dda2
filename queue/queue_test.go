package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store/postgres/pgtest"
	"github.com/spool-run/spool/queue"
)

func TestMain(m *testing.M) {
	if crashChild() || multiNodeChild() || scheduleChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

// testEngine starts an engine on a fresh SQLite file; it is stopped at cleanup.
func testEngine(t *testing.T, cfg queue.Config, handlers map[string]queue.Handler) *queue.Engine {
	t.Helper()
	if cfg.DB == "" {
		cfg.DB = testDB(t)
	}
	if cfg.RetryBackoff == nil {
		cfg.RetryBackoff = func(int) time.Duration { return time.Millisecond }
	}
	if cfg.CancelGrace == 0 {
		cfg.CancelGrace = 200 * time.Millisecond
	}
	e, err := queue.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range handlers {
		e.Register(name, h)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return e
}

// testDBs maps a driver subtest to its database.
var testDBs sync.Map

// forEachDriver runs f as a subtest on SQLite and on PostgreSQL (a fresh schema).
func forEachDriver(t *testing.T, f func(t *testing.T)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testDBs.Store(t, filepath.Join(t.TempDir(), "spool.db"))
		f(t)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		u, _ := pgtest.Schema(t)
		testDBs.Store(t, u)
		f(t)
	})
}

func testDB(t *testing.T) string {
	if db, ok := testDBs.Load(t); ok {
		return db.(string)
	}
	return filepath.Join(t.TempDir(), "spool.db")
}

func submit(t *testing.T, e *queue.Engine, req *spool.SubmitRequest) *spool.Run {
	t.Helper()
	run, _, err := e.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("submit %+v: %v", req, err)
	}
	return run
}

func wait(t *testing.T, e *queue.Engine, id string) *spool.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := e.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	return run
}

// waitState polls until the run is in state s.
func waitState(t *testing.T, e *queue.Engine, id string, s spool.State) *spool.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		run, err := e.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if run.State == s {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s, want %s", id, run.State, s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func prio(p spool.Priority) *spool.Priority { return &p }
func intp(n int) *int                       { return &n }

// blocker is a handler that waits until released or cancelled, recording concurrency.
type blocker struct {
	release chan struct{}
	started chan string
	mu      sync.Mutex
	cur     map[string]int
	max     map[string]int
}

func newBlocker() *blocker {
	return &blocker{release: make(chan struct{}), started: make(chan string, 1000),
		cur: map[string]int{}, max: map[string]int{}}
}

func (b *blocker) Work(ctx context.Context, run *spool.Run) (any, error) {
	keys := []string{"global", "agent:" + run.Agent, "ws:" + run.Workspace}
	if run.SessionID != "" {
		keys = append(keys, "session:"+run.Workspace+"/"+run.SessionID) // a session lives in a workspace
	}
	b.mu.Lock()
	for _, k := range keys {
		b.cur[k]++
		b.max[k] = max(b.max[k], b.cur[k])
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		for _, k := range keys {
			b.cur[k]--
		}
		b.mu.Unlock()
	}()
	b.started <- run.ID
	select {
	case <-b.release:
		return "done", nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *blocker) maxOf(k string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max[k]
}

func TestPriorityThenFIFO(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		var mu sync.Mutex
		var order []string
		gate := make(chan struct{})
		h := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			if r.Recipe == "gate" {
				<-gate
				return nil, nil
			}
			mu.Lock()
			order = append(order, r.ID)
			mu.Unlock()
			return nil, nil
		})
		e := testEngine(t, queue.Config{Limits: spool.Limits{Global: 1}, Workers: 1},
			map[string]queue.Handler{"work": h, "gate": h})
		g := submit(t, e, &spool.SubmitRequest{Recipe: "gate"})
		waitState(t, e, g.ID, spool.StateRunning)

		var want []string
		byPrio := map[spool.Priority][]string{}
		prios := []spool.Priority{spool.PriorityLow, spool.PriorityNormal, spool.PriorityHigh, spool.PriorityUrgent}
		for i := 0; i < 25; i++ {
			for _, p := range prios {
				r := submit(t, e, &spool.SubmitRequest{Recipe: "work", Priority: prio(p)})
				byPrio[p] = append(byPrio[p], r.ID)
			}
		}
		for i := len(prios) - 1; i >= 0; i-- {
			want = append(want, byPrio[prios[i]]...)
		}
		close(gate)
		for _, id := range want {
			wait(t, e, id)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(order) != len(want) {
			t.Fatalf("ran %d runs, want %d", len(order), len(want))
		}
		for i := range want {
			if order[i] != want[i] {
				t.Fatalf("position %d: ran %s, want %s", i, order[i], want[i])
			}
		}
	})
}

func TestLimitsNeverExceeded(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		b := newBlocker()
		e := testEngine(t, queue.Config{Limits: spool.Limits{Global: 6, PerAgent: 2, PerWorkspace: 3}},
			map[string]queue.Handler{"a": b, "b": b, "c": b})
		var ids []string
		for i := 0; i < 30; i++ {
			r := submit(t, e, &spool.SubmitRequest{
				Recipe:    []string{"a", "b", "c"}[i%3],
				Workspace: []string{"w1", "w2"}[i%2],
				SessionID: []string{"", "s1", "s2"}[i%3],
			})
			ids = append(ids, r.ID)
		}
		// Release runs one at a time while the rest keep the limits full.
		go func() {
			for range ids {
				b.release <- struct{}{}
			}
		}()
		for _, id := range ids {
			if r := wait(t, e, id); r.State != spool.StateSucceeded {
				t.Fatalf("run %s ended %s: %s", id, r.State, r.Error)
			}
		}
		if m := b.maxOf("global"); m > 6 || m < 2 {
			t.Errorf("global max concurrency %d, want 2..6", m)
		}
		for _, a := range []string{"a", "b", "c"} {
			if m := b.maxOf("agent:" + a); m > 2 {
				t.Errorf("agent %s reached %d running, limit 2", a, m)
			}
		}
		for _, w := range []string{"w1", "w2"} {
			if m := b.maxOf("ws:" + w); m > 3 {
				t.Errorf("workspace %s reached %d running, limit 3", w, m)
			}
		}
		for _, s := range []string{"w1/s1", "w1/s2", "w2/s1", "w2/s2"} {
			if m := b.maxOf("session:" + s); m != 1 {
				t.Errorf("session %s reached %d running, want exactly 1", s, m)
			}
		}
	})
}

func TestSessionRunsInSubmitOrder(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		var mu sync.Mutex
		var order []string
		h := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			mu.Lock()
			order = append(order, r.ID)
			mu.Unlock()
			return nil, nil
		})
		e := testEngine(t, queue.Config{Limits: spool.Limits{Global: 4}}, map[string]queue.Handler{"chat": h})
		var want []string
		for i := 0; i < 20; i++ {
			p := []spool.Priority{spool.PriorityLow, spool.PriorityUrgent}[i%2]
			r := submit(t, e, &spool.SubmitRequest{Recipe: "chat", SessionID: "conv", Priority: &p})
			want = append(want, r.ID)
		}
		for _, id := range want {
			wait(t, e, id)
		}
		mu.Lock()
		defer mu.Unlock()
		for i := range want {
			if order[i] != want[i] {
				t.Fatalf("session order broken at %d: %v", i, order)
			}
		}
	})
}

func TestNoHeadOfLineBlocking(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		b := newBlocker()
		quick := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) { return "ok", nil })
		e := testEngine(t, queue.Config{Limits: spool.Limits{Global: 10, Agents: map[string]int{"slow": 1}},
			AgentRates: map[string]queue.Rate{"limited": {Limit: 1, Per: time.Hour}}},
			map[string]queue.Handler{"slow": b, "quick": quick})
		first := submit(t, e, &spool.SubmitRequest{Recipe: "slow", Priority: prio(spool.PriorityUrgent)})
		<-b.started
		// Urgent runs that cannot start: their agent is full, their agent's rate limit is
		// spent (one an hour), or they are scheduled later.
		limited := submit(t, e, &spool.SubmitRequest{Recipe: "quick", Agent: "limited", Priority: prio(spool.PriorityUrgent)})
		wait(t, e, limited.ID)
		var blocked []*spool.Run
		for i := 0; i < 20; i++ {
			submit(t, e, &spool.SubmitRequest{Recipe: "slow", Priority: prio(spool.PriorityUrgent)})
			blocked = append(blocked,
				submit(t, e, &spool.SubmitRequest{Recipe: "quick", Agent: "limited", Priority: prio(spool.PriorityUrgent)}),
				submit(t, e, &spool.SubmitRequest{Recipe: "quick", Priority: prio(spool.PriorityUrgent), Delay: spool.Duration(time.Hour)}))
		}
		r := submit(t, e, &spool.SubmitRequest{Recipe: "quick", Priority: prio(spool.PriorityLow)})
		if got := wait(t, e, r.ID); got.State != spool.StateSucceeded {
			t.Fatalf("low-priority run of another agent ended %s", got.State)
		}
		for _, br := range blocked {
			if got, _ := e.Get(context.Background(), br.ID); got.State != br.State {
				t.Fatalf("a rate-limited or delayed run started: %s is %s", got.ID, got.State)
			}
		}
		if _, err := e.Cancel(context.Background(), first.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Clear(context.Background(), spool.ClearParams{All: true}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCancelInEveryState(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		b := newBlocker()
		stubborn := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			b.started <- r.ID
			<-b.release // ignores its context
			return "finished anyway", nil
		})
		e := testEngine(t, queue.Config{Limits: spool.Limits{Global: 10, Agents: map[string]int{"block": 1}}},
			map[string]queue.Handler{"block": b, "stubborn": stubborn})
		ctx := context.Background()

		running := submit(t, e, &spool.SubmitRequest{Recipe: "block"})
		<-b.started
		queued := submit(t, e, &spool.SubmitRequest{Recipe: "block"})
		paused := submit(t, e, &spool.SubmitRequest{Recipe: "block"})
		if _, err := e.Pause(ctx, paused.ID); err != nil {
			t.Fatal(err)
		}
		scheduled := submit(t, e, &spool.SubmitRequest{Recipe: "block", Delay: spool.Duration(time.Hour)})
		if scheduled.State != spool.StateScheduled {
			t.Fatalf("delayed run is %s, want scheduled", scheduled.State)
		}
		for _, r := range []*spool.Run{queued, paused, scheduled} {
			got, err := e.Cancel(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != spool.StateCancelled {
				t.Errorf("cancel of a %s run answered %s, want cancelled at once", r.State, got.State)
			}
		}
		got, err := e.Cancel(ctx, running.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.CancelRequestedAt == nil {
			t.Error("cancel of a running run did not set cancel_requested_at")
		}
		if r := wait(t, e, running.ID); r.State != spool.StateCancelled || r.ErrorCode != spool.CodeCancelled {
			t.Errorf("running run ended %s (%s), want cancelled", r.State, r.ErrorCode)
		}
		// A handler that ignores its context is abandoned after the grace period.
		st := submit(t, e, &spool.SubmitRequest{Recipe: "stubborn", MaxRetries: intp(3)})
		<-b.started
		if _, err := e.Cancel(ctx, st.ID); err != nil {
			t.Fatal(err)
		}
		if r := wait(t, e, st.ID); r.State != spool.StateCancelled || r.Attempt != 1 {
			t.Errorf("stubborn run ended %s after %d attempts, want cancelled after 1", r.State, r.Attempt)
		}
		b.release <- struct{}{} // let the abandoned goroutine end
		// Cancel of a terminal run is a conflict carrying the state.
		_, err = e.Cancel(ctx, running.ID)
		var se *spool.Error
		if !errors.As(err, &se) || se.Code != spool.CodeConflict || se.State != spool.StateCancelled {
			t.Errorf("cancel of a terminal run: %v, want conflict with state cancelled", err)
		}
	})
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		h := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		e := testEngine(t, queue.Config{}, map[string]queue.Handler{"hang": h})
		r := submit(t, e, &spool.SubmitRequest{Recipe: "hang", TimeoutSec: 1, MaxRetries: intp(2)})
		got := wait(t, e, r.ID)
		if got.State != spool.StateFailed || got.ErrorCode != spool.CodeTimeout || got.Attempt != 1 {
			t.Fatalf("got %s/%s after %d attempts, want failed/timeout after 1", got.State, got.ErrorCode, got.Attempt)
		}
	})
}

func TestRetriesCountAttempts(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		var calls atomic.Int64
		h := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			n := calls.Add(1)
			if r.Attempt != int(n) {
				return nil, queue.Permanent(fmt.Errorf("attempt %d on call %d", r.Attempt, n))
			}
			if n < 3 {
				return nil, errors.New("flaky")
			}
			return map[string]int{"attempt": r.Attempt}, nil
		})
		e := testEngine(t, queue.Config{}, map[string]queue.Handler{"flaky": h})
		r := submit(t, e, &spool.SubmitRequest{Recipe: "flaky", MaxRetries: intp(2)})
		got := wait(t, e, r.ID)
		if got.State != spool.StateSucceeded || got.Attempt != 3 {
			t.Fatalf("got %s after %d attempts (%s), want succeeded after 3", got.State, got.Attempt, got.Error)
		}
		if string(got.Result) != `{"attempt":3}` {
			t.Errorf("result %s", got.Result)
		}

		// Out of retries: max_retries 1 executes at most twice.
		calls.Store(0)
		always := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			calls.Add(1)
			return nil, errors.New("always fails")
		})
		e.Register("always", always)
		r = submit(t, e, &spool.SubmitRequest{Recipe: "always", MaxRetries: intp(1)})
		got = wait(t, e, r.ID)
		if got.State != spool.StateFailed || got.Attempt != 2 || calls.Load() != 2 {
			t.Fatalf("got %s after %d attempts and %d calls, want failed after 2", got.State, got.Attempt, calls.Load())
		}

		// Manual retry makes a new linked run.
		again, err := e.Retry(context.Background(), got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if again.RetryOf != got.ID || again.ID == got.ID {
			t.Errorf("retry run %s retry_of %q", again.ID, again.RetryOf)
		}
		wait(t, e, again.ID)
	})
}

func TestPanicFailsRunAndEngineGoesOn(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		h := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			if r.Recipe == "boom" {
				panic("kaboom")
			}
			return "fine", nil
		})
		e := testEngine(t, queue.Config{}, map[string]queue.Handler{"boom": h, "fine": h})
		r := submit(t, e, &spool.SubmitRequest{Recipe: "boom", MaxRetries: intp(3)})
		got := wait(t, e, r.ID)
		if got.State != spool.StateFailed || got.ErrorCode != spool.CodePanic || got.Attempt != 1 {
			t.Fatalf("got %s/%s attempt %d", got.State, got.ErrorCode, got.Attempt)
		}
		if !containsAll(got.Error, "kaboom", "goroutine") {
			t.Errorf("error lacks the panic and its stack: %q", got.Error)
		}
		if f := wait(t, e, submit(t, e, &spool.SubmitRequest{Recipe: "fine"}).ID); f.State != spool.StateSucceeded {
			t.Errorf("engine did not go on after a panic: %s", f.State)
		}
	})
}

func TestIdempotencyUnderConcurrentSubmits(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		b := newBlocker()
		e := testEngine(t, queue.Config{}, map[string]queue.Handler{"x": b})
		var wg sync.WaitGroup
		ids := make([]string, 50)
		existed := make([]bool, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, ex, err := e.Submit(context.Background(), &spool.SubmitRequest{Recipe: "x", IdempotencyKey: "order-123"})
				if err != nil {
					t.Error(err)
					return
				}
				ids[i], existed[i] = r.ID, ex
			}()
		}
		wg.Wait()
		created := 0
		for i := range ids {
			if ids[i] != ids[0] {
				t.Fatalf("submit %d got %s, submit 0 got %s", i, ids[i], ids[0])
			}
			if !existed[i] {
				created++
			}
		}
		if created != 1 {
			t.Errorf("%d submits created a run, want 1", created)
		}
		// Scope none deduplicates nothing; another workspace never matches.
		r1 := submit(t, e, &spool.SubmitRequest{Recipe: "x", IdempotencyKey: "order-123", IdempotencyScope: "none"})
		r2 := submit(t, e, &spool.SubmitRequest{Recipe: "x", IdempotencyKey: "order-123", Workspace: "other"})
		if r1.ID == ids[0] || r2.ID == ids[0] || r1.ID == r2.ID {
			t.Error("scope none or another workspace matched an existing run")
		}
		close(b.release)
	})
}

func TestPauseResumeKeepsPlace(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		var mu sync.Mutex
		var order []string
		gate := make(chan struct{})
		h := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			if r.Recipe == "gate" {
				<-gate
				return nil, nil
			}
			mu.Lock()
			order = append(order, r.ID)
			mu.Unlock()
			return nil, nil
		})
		e := testEngine(t, queue.Config{Limits: spool.Limits{Global: 1}}, map[string]queue.Handler{"w": h, "gate": h})
		ctx := context.Background()
		g := submit(t, e, &spool.SubmitRequest{Recipe: "gate"})
		waitState(t, e, g.ID, spool.StateRunning)
		a := submit(t, e, &spool.SubmitRequest{Recipe: "w"})
		b := submit(t, e, &spool.SubmitRequest{Recipe: "w"})
		if p, err := e.Pause(ctx, a.ID); err != nil || p.State != spool.StatePaused {
			t.Fatalf("pause: %v %v", p, err)
		}
		if r, err := e.Resume(ctx, a.ID); err != nil || r.State != spool.StateQueued {
			t.Fatalf("resume: %v %v", r, err)
		}
		close(gate)
		wait(t, e, a.ID)
		wait(t, e, b.ID)
		mu.Lock()
		defer mu.Unlock()
		if len(order) != 2 || order[0] != a.ID {
			t.Errorf("resumed run lost its place: %v, want %s first", order, a.ID)
		}
		if _, err := e.Pause(ctx, a.ID); !errors.Is(err, spool.ErrConflict) {
			t.Errorf("pause of a finished run: %v, want conflict", err)
		}
	})
}

func TestEventsReplayAndLive(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		step := make(chan struct{})
		h := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			for i := 0; i < 5; i++ {
				queue.Output(ctx, fmt.Sprintf("line %d\n", i))
			}
			queue.ReportProgress(ctx, 50, "half way")
			<-step
			for i := 5; i < 10; i++ {
				queue.Output(ctx, fmt.Sprintf("line %d\n", i))
			}
			return json.RawMessage(`{"lines":10}`), nil
		})
		e := testEngine(t, queue.Config{}, map[string]queue.Handler{"talk": h})
		ctx := context.Background()
		r := submit(t, e, &spool.SubmitRequest{Recipe: "talk"})

		early, err := e.Subscribe(ctx, r.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer early.Close()
		// Read until the progress event, then let the handler finish, then join late.
		var earlyEvents []*spool.Event
		for ev := range early.C {
			earlyEvents = append(earlyEvents, ev)
			if ev.Type == spool.EventProgress {
				break
			}
		}
		close(step)
		for ev := range early.C {
			earlyEvents = append(earlyEvents, ev)
		}
		wait(t, e, r.ID)
		late, err := e.Subscribe(ctx, r.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer late.Close()
		var lateEvents []*spool.Event
		for ev := range late.C {
			lateEvents = append(lateEvents, ev)
		}
		for name, evs := range map[string][]*spool.Event{"early": earlyEvents, "late": lateEvents} {
			var text string
			for i, ev := range evs {
				if ev.Seq != int64(i+1) {
					t.Fatalf("%s subscriber: event %d has seq %d (%s)", name, i, ev.Seq, ev.Type)
				}
				if ev.Type == spool.EventOutput {
					text += ev.Text
				}
			}
			if want := "line 0\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\n"; text != want {
				t.Errorf("%s subscriber output %q", name, text)
			}
			if last := evs[len(evs)-1]; last.Type != spool.EventResult || string(last.Result) != `{"lines":10}` {
				t.Errorf("%s subscriber's last event %s %s", name, last.Type, last.Result)
			}
		}
		if len(earlyEvents) != len(lateEvents) {
			t.Errorf("early saw %d events, late %d", len(earlyEvents), len(lateEvents))
		}
		// Resuming after a seq gives exactly the rest.
		resumed, err := e.Subscribe(ctx, r.ID, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer resumed.Close()
		first := <-resumed.C
		if first.Seq != 4 {
			t.Errorf("resume after 3 started at %d", first.Seq)
		}
	})
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		b := newBlocker()
		e := testEngine(t, queue.Config{MaxQueueSize: 3, Limits: spool.Limits{Global: 1}}, map[string]queue.Handler{"x": b})
		first := submit(t, e, &spool.SubmitRequest{Recipe: "x"})
		<-b.started
		for i := 0; i < 3; i++ {
			submit(t, e, &spool.SubmitRequest{Recipe: "x"})
		}
		_, _, err := e.Submit(context.Background(), &spool.SubmitRequest{Recipe: "x"})
		if !errors.Is(err, spool.ErrQueueFull) {
			t.Fatalf("submit beyond max_queue_size: %v, want queue_full", err)
		}
		st, err := e.Stats(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if st.Queued != 3 || st.Running != 1 || st.Total != 4 {
			t.Errorf("stats %+v, want 3 queued 1 running 4 total", st)
		}
		_ = first
		close(b.release)
	})
}

func TestUnknownRecipeAndBadInput(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		e := testEngine(t, queue.Config{}, map[string]queue.Handler{"x": newBlocker()})
		_, _, err := e.Submit(context.Background(), &spool.SubmitRequest{Recipe: "nope"})
		var se *spool.Error
		if !errors.As(err, &se) || se.Code != spool.CodeUnknownRecipe || !containsAll(se.Message, "nope", "x") {
			t.Errorf("unknown recipe: %v", err)
		}
		_, _, err = e.Submit(context.Background(), &spool.SubmitRequest{Recipe: "x", IdempotencyScope: "bogus"})
		if !errors.As(err, &se) || se.Code != spool.CodeInvalid || se.Fields[0].Field != "idempotency_scope" {
			t.Errorf("bad scope: %v", err)
		}
	})
}

func TestStopCancelsAndRequeues(t *testing.T) {
	t.Parallel()
	b := newBlocker()
	db := filepath.Join(t.TempDir(), "spool.db")
	e, err := queue.New(queue.Config{DB: db, ShutdownGrace: 50 * time.Millisecond, CancelGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.Register("x", b)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	keep := submit(t, e, &spool.SubmitRequest{Recipe: "x", MaxRetries: intp(1)})
	lose := submit(t, e, &spool.SubmitRequest{Recipe: "x", MaxRetries: intp(0)})
	<-b.started
	<-b.started
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	e2, err := queue.New(queue.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(context.Background())
	ctx := context.Background()
	if r, _ := e2.Get(ctx, keep.ID); r.State != spool.StateQueued || r.Attempt != 1 {
		t.Errorf("run with retries left is %s attempt %d after stop, want queued attempt 1", r.State, r.Attempt)
	}
	if r, _ := e2.Get(ctx, lose.ID); r.State != spool.StateFailed || r.ErrorCode != spool.CodeInterrupted {
		t.Errorf("run without retries is %s/%s after stop, want failed/interrupted", r.State, r.ErrorCode)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// Past MaxOutputBytes the oldest output is dropped from the store with one marker, while
// live subscribers see every chunk.
func TestOutputCapDropsOldest(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		subscribed := make(chan struct{})
		h := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			<-subscribed // the subscriber is attached before the first chunk
			for i := range 50 {
				queue.Output(ctx, fmt.Sprintf("chunk-%03d\n", i)) // 10 bytes each
			}
			return nil, nil
		})
		e := testEngine(t, queue.Config{MaxOutputBytes: 100}, map[string]queue.Handler{"talk": h})
		ctx := context.Background()
		r := submit(t, e, &spool.SubmitRequest{Recipe: "talk"})
		sub, err := e.Subscribe(ctx, r.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		close(subscribed)
		live := 0
		for ev := range sub.C {
			if ev.Type == spool.EventOutput {
				live++
			}
		}
		if live != 50 {
			t.Errorf("live subscriber saw %d output chunks, want 50", live)
		}
		wait(t, e, r.ID)
		evs, err := e.Events(ctx, r.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var stored string
		markers := 0
		for _, ev := range evs {
			switch {
			case ev.Type == spool.EventOutput:
				stored += ev.Text
			case ev.Type == spool.EventLog && strings.Contains(ev.Text, "oldest output is dropped"):
				markers++
			}
		}
		if len(stored) > 100 || !strings.HasSuffix(stored, "chunk-049\n") || strings.Contains(stored, "chunk-000") {
			t.Errorf("stored output %q: want at most the last 100 bytes", stored)
		}
		if markers != 1 {
			t.Errorf("%d marker events, want 1", markers)
		}
	})
}
