package background_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool/background"
)

// testContext returns a context that ends the test's waits long before go test's own timeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newRunner returns a runner that the test stops at its end, failing if Stop fails.
func newRunner(t *testing.T, cfg background.Config) *background.Runner {
	t.Helper()
	r := background.NewRunner(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return r
}

// mustSubmit submits fn or fails the test.
func mustSubmit[T any](t *testing.T, r *background.Runner, fn func(context.Context) (T, error), opts ...background.Option) *background.Task[T] {
	t.Helper()
	task, err := background.Submit(testContext(t), r, fn, opts...)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return task
}

// blocker submits a task that runs until release is closed, ignoring its context, and
// returns once it is running.
func blocker(t *testing.T, r *background.Runner, release <-chan struct{}) *background.Task[string] {
	t.Helper()
	started := make(chan struct{})
	task := mustSubmit(t, r, func(context.Context) (string, error) {
		close(started)
		<-release
		return "released", nil
	}, background.Name("blocker"))
	select {
	case <-started:
	case <-testContext(t).Done():
		t.Fatal("blocker did not start")
	}
	return task
}

// ids returns the ids of tasks.
func ids(tasks []background.TaskInfo) []string {
	out := make([]string, len(tasks))
	for i, task := range tasks {
		out[i] = task.ID()
	}
	return out
}

func TestConcurrencyBoundIsNeverExceeded(t *testing.T) {
	t.Parallel()
	const total, bound = 1000, 3
	r := newRunner(t, background.Config{MaxConcurrentTasks: bound})
	ctx := testContext(t)

	var active, maxActive, overRunning atomic.Int64
	full := make(chan struct{}) // closed once bound functions run together
	var fullOnce sync.Once
	tasks := make([]*background.Task[int], total)
	for i := range total {
		tasks[i] = mustSubmit(t, r, func(context.Context) (int, error) {
			n := active.Add(1)
			defer active.Add(-1)
			for m := maxActive.Load(); n > m && !maxActive.CompareAndSwap(m, n); m = maxActive.Load() {
			}
			if n == bound {
				fullOnce.Do(func() { close(full) })
			}
			if i < bound {
				<-full // the first wave meets, so the test sees the bound reached
			}
			if len(r.Running()) > bound {
				overRunning.Add(1)
			}
			runtime.Gosched()
			return i * 2, nil
		})
	}
	for i, task := range tasks {
		got, err := task.Wait(ctx)
		if err != nil || got != i*2 {
			t.Fatalf("task %d: Wait = %d, %v; want %d, nil", i, got, err, i*2)
		}
		if task.Status() != background.StatusCompleted {
			t.Fatalf("task %d: status %s, want completed", i, task.Status())
		}
	}
	if got := maxActive.Load(); got != bound {
		t.Errorf("max concurrent functions = %d, want %d", got, bound)
	}
	if n := overRunning.Load(); n != 0 {
		t.Errorf("Running() listed more than %d tasks %d times", bound, n)
	}
	if n, m := len(r.Running()), len(r.Pending()); n != 0 || m != 0 {
		t.Errorf("after all finished: %d running, %d pending; want 0, 0", n, m)
	}
}

func TestStartOrderIsFIFO(t *testing.T) {
	t.Parallel()

	t.Run("one slot", func(t *testing.T) {
		t.Parallel()
		r := newRunner(t, background.Config{MaxConcurrentTasks: 1})
		release := make(chan struct{})
		first := blocker(t, r, release)

		var mu sync.Mutex
		var order []int
		tasks := make([]*background.Task[int], 100)
		for i := range tasks {
			tasks[i] = mustSubmit(t, r, func(context.Context) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				order = append(order, i)
				return i, nil
			})
		}
		pending := r.Pending()
		if len(pending) != len(tasks) {
			t.Fatalf("Pending() has %d tasks, want %d", len(pending), len(tasks))
		}
		for i, p := range pending {
			if p.ID() != tasks[i].ID() {
				t.Fatalf("Pending()[%d] = %s, want task %d (%s)", i, p.ID(), i, tasks[i].ID())
			}
		}
		close(release)
		ctx := testContext(t)
		if _, err := first.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if _, err := task.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for i, got := range order {
			if got != i {
				t.Fatalf("start order = %v, want 0..99 in order", order)
			}
		}
	})

	t.Run("three slots", func(t *testing.T) {
		t.Parallel()
		r := newRunner(t, background.Config{MaxConcurrentTasks: 3})
		submitted := make(chan struct{})
		tasks := make([]*background.Task[int], 60)
		var outOfOrder atomic.Int64
		for i := range tasks {
			tasks[i] = mustSubmit(t, r, func(context.Context) (int, error) {
				<-submitted
				for j := range i { // every earlier task has started before this one
					if tasks[j].Status() == background.StatusPending {
						outOfOrder.Add(1)
					}
				}
				return i, nil
			})
		}
		close(submitted)
		ctx := testContext(t)
		for _, task := range tasks {
			if _, err := task.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n := outOfOrder.Load(); n != 0 {
			t.Errorf("%d times a task started while an earlier one was pending", n)
		}
	})
}

func TestTimeoutAbandonsFunctionThatIgnoresContext(t *testing.T) {
	t.Parallel()
	r := newRunner(t, background.Config{MaxConcurrentTasks: 1})
	ctx := testContext(t)
	release, returned := make(chan struct{}), make(chan struct{})
	defer func() { close(release); <-returned }()

	stuck := mustSubmit(t, r, func(context.Context) (int, error) {
		defer close(returned)
		<-release
		return 1, nil
	}, background.Timeout(30*time.Millisecond))
	next := mustSubmit(t, r, func(context.Context) (string, error) { return "next", nil })

	got, err := stuck.Wait(ctx)
	if !errors.Is(err, background.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait error = %v, want ErrTimeout and context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "30ms") {
		t.Errorf("error %q does not say the timeout", err)
	}
	if got != 0 || stuck.Result() != 0 {
		t.Errorf("result of a timed-out task = %d, %d; want 0", got, stuck.Result())
	}
	if s := stuck.Status(); s != background.StatusFailed {
		t.Errorf("status = %s, want failed", s)
	}

	// The slot is free although the function is still blocked.
	if v, err := next.Wait(ctx); err != nil || v != "next" {
		t.Fatalf("next task: %q, %v", v, err)
	}
	select {
	case <-returned:
		t.Fatal("the stuck function returned before it was released")
	default:
	}
}

func TestTimeoutIsAContextDeadline(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	waitDone := func(ctx context.Context) (bool, error) {
		_, ok := ctx.Deadline()
		<-ctx.Done()
		return ok, ctx.Err()
	}
	t.Run("option", func(t *testing.T) {
		t.Parallel()
		r := newRunner(t, background.Config{})
		task := mustSubmit(t, r, waitDone, background.Timeout(20*time.Millisecond))
		_, err := task.Wait(ctx)
		if !errors.Is(err, background.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a timeout", err)
		}
	})
	t.Run("config default", func(t *testing.T) {
		t.Parallel()
		r := newRunner(t, background.Config{DefaultTimeout: 20 * time.Millisecond})
		task := mustSubmit(t, r, waitDone)
		if _, err := task.Wait(ctx); !errors.Is(err, background.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
	})
	t.Run("default is 300s", func(t *testing.T) {
		t.Parallel()
		r := newRunner(t, background.Config{})
		task := mustSubmit(t, r, func(ctx context.Context) (time.Duration, error) {
			d, _ := ctx.Deadline()
			return time.Until(d), nil
		})
		left, err := task.Wait(ctx)
		if err != nil || left <= 290*time.Second || left > 300*time.Second {
			t.Fatalf("time left = %v, %v; want about 300s", left, err)
		}
	})
	t.Run("negative means none", func(t *testing.T) {
		t.Parallel()
		hasDeadline := func(ctx context.Context) (bool, error) { _, ok := ctx.Deadline(); return ok, nil }
		r := newRunner(t, background.Config{DefaultTimeout: -1})
		if ok, err := mustSubmit(t, r, hasDeadline).Wait(ctx); err != nil || ok {
			t.Errorf("DefaultTimeout -1: deadline %v, %v; want none", ok, err)
		}
		r2 := newRunner(t, background.Config{})
		if ok, err := mustSubmit(t, r2, hasDeadline, background.Timeout(-1)).Wait(ctx); err != nil || ok {
			t.Errorf("Timeout(-1): deadline %v, %v; want none", ok, err)
		}
	})
}

func TestCancelBeforeStart(t *testing.T) {
	t.Parallel()
	r := newRunner(t, background.Config{MaxConcurrentTasks: 1})
	ctx := testContext(t)
	release := make(chan struct{})
	first := blocker(t, r, release)

	var ran atomic.Bool
	completed := make(chan background.Status, 1)
	task := mustSubmit(t, r, func(context.Context) (int, error) {
		ran.Store(true)
		return 1, nil
	}, background.OnComplete(func(task *background.Task[int]) { completed <- task.Status() }))
	if s := task.Status(); s != background.StatusPending {
		t.Fatalf("status = %s, want pending", s)
	}

	if !task.Cancel() {
		t.Fatal("Cancel of a pending task returned false")
	}
	if s := task.Status(); s != background.StatusCancelled {
		t.Errorf("status right after Cancel = %s, want cancelled", s)
	}
	if s := <-completed; s != background.StatusCancelled {
		t.Errorf("OnComplete saw status %s, want cancelled", s)
	}
	if _, err := task.Wait(ctx); !errors.Is(err, background.ErrCancelled) {
		t.Errorf("Wait error = %v, want ErrCancelled", err)
	}
	if !task.StartedAt().IsZero() || task.Duration() != 0 || task.CompletedAt().IsZero() {
		t.Errorf("times: started %v, duration %v, completed %v; want zero, 0, set",
			task.StartedAt(), task.Duration(), task.CompletedAt())
	}
	if n := len(r.Pending()); n != 0 {
		t.Errorf("%d pending tasks after Cancel, want 0", n)
	}
	if task.Cancel() {
		t.Error("second Cancel returned true")
	}

	close(release)
	if _, err := first.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// One more task through the single slot: had the cancelled one run, it would have run first.
	if _, err := mustSubmit(t, r, func(context.Context) (int, error) { return 0, nil }).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Error("the function of a task cancelled before it started ran")
	}
}

func TestCancelWhileRunning(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	t.Run("function honours its context", func(t *testing.T) {
		t.Parallel()
		r := newRunner(t, background.Config{})
		started := make(chan struct{})
		cause := make(chan error, 1)
		task := mustSubmit(t, r, func(ctx context.Context) (string, error) {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return "too late", ctx.Err()
		})
		<-started
		if !task.Cancel() {
			t.Fatal("Cancel of a running task returned false")
		}
		got, err := task.Wait(ctx)
		if !errors.Is(err, background.ErrCancelled) || got != "" {
			t.Fatalf("Wait = %q, %v; want \"\", ErrCancelled", got, err)
		}
		if s := task.Status(); s != background.StatusCancelled {
			t.Errorf("status = %s, want cancelled", s)
		}
		if c := <-cause; !errors.Is(c, background.ErrCancelled) {
			t.Errorf("context cause = %v, want ErrCancelled", c)
		}
		if task.Cancel() {
			t.Error("Cancel of a cancelled task returned true")
		}
	})

	t.Run("function ignores its context", func(t *testing.T) {
		t.Parallel()
		r := newRunner(t, background.Config{MaxConcurrentTasks: 1})
		release, returned := make(chan struct{}), make(chan struct{})
		task := mustSubmit(t, r, func(context.Context) (int, error) {
			defer close(returned)
			<-release
			return 42, nil
		})
		next := mustSubmit(t, r, func(context.Context) (int, error) { return 7, nil })
		task.Cancel()
		if _, err := task.Wait(ctx); !errors.Is(err, background.ErrCancelled) {
			t.Fatalf("Wait error = %v, want ErrCancelled", err)
		}
		if v, err := next.Wait(ctx); err != nil || v != 7 {
			t.Fatalf("next task after a cancel: %d, %v", v, err)
		}
		close(release)
		<-returned
		// The function's late success changes nothing.
		if s, v := task.Status(), task.Result(); s != background.StatusCancelled || v != 0 {
			t.Errorf("after the function returned: %s, %d; want cancelled, 0", s, v)
		}
	})

	t.Run("finished task", func(t *testing.T) {
		t.Parallel()
		r := newRunner(t, background.Config{})
		task := mustSubmit(t, r, func(context.Context) (int, error) { return 1, nil })
		if _, err := task.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if task.Cancel() {
			t.Error("Cancel of a completed task returned true")
		}
		if s := task.Status(); s != background.StatusCompleted {
			t.Errorf("status = %s, want completed", s)
		}
	})
}

var errBoom = errors.New("boom")

func TestPanicFailsTheTask(t *testing.T) {
	t.Parallel()
	r := newRunner(t, background.Config{MaxConcurrentTasks: 1})
	ctx := testContext(t)

	task := mustSubmit(t, r, func(context.Context) (int, error) { panic("kaboom") })
	_, err := task.Wait(ctx)
	var pe *background.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v, want a *PanicError", err)
	}
	if pe.Value != "kaboom" {
		t.Errorf("panic value = %v, want kaboom", pe.Value)
	}
	if msg := err.Error(); !strings.Contains(msg, "kaboom") || !strings.Contains(msg, "TestPanicFailsTheTask") {
		t.Errorf("error does not hold the value and the stack:\n%s", msg)
	}
	if s := task.Status(); s != background.StatusFailed {
		t.Errorf("status = %s, want failed", s)
	}

	withErr := mustSubmit(t, r, func(context.Context) (int, error) { panic(errBoom) })
	if _, err := withErr.Wait(ctx); !errors.Is(err, errBoom) {
		t.Errorf("panic(err): error = %v, want it to wrap the panicked error", err)
	}

	goexit := mustSubmit(t, r, func(context.Context) (int, error) { runtime.Goexit(); return 0, nil })
	if _, err := goexit.Wait(ctx); err == nil || !strings.Contains(err.Error(), "Goexit") {
		t.Errorf("runtime.Goexit: error = %v, want one naming Goexit", err)
	}

	// The runner goes on.
	if v, err := mustSubmit(t, r, func(context.Context) (int, error) { return 5, nil }).Wait(ctx); err != nil || v != 5 {
		t.Errorf("task after panics: %d, %v", v, err)
	}
}

func TestFunctionError(t *testing.T) {
	t.Parallel()
	r := newRunner(t, background.Config{})
	task := mustSubmit(t, r, func(context.Context) (string, error) { return "partial", errBoom })
	got, err := task.Wait(testContext(t))
	if !errors.Is(err, errBoom) || got != "" {
		t.Fatalf("Wait = %q, %v; want \"\", boom", got, err)
	}
	if s, e := task.Status(), task.Err(); s != background.StatusFailed || !errors.Is(e, errBoom) {
		t.Errorf("status, Err = %s, %v; want failed, boom", s, e)
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	r := newRunner(t, background.Config{})
	ctx := testContext(t)
	step := make(chan float64)
	reported := make(chan struct{})
	task := mustSubmit(t, r, func(ctx context.Context) (int, error) {
		for p := range step {
			background.ReportProgress(ctx, p, "step")
			reported <- struct{}{}
		}
		return 0, nil
	})
	if p := task.Progress(); p != (background.Progress{}) {
		t.Errorf("progress before any report = %+v, want zero", p)
	}
	for _, tc := range []struct{ in, want float64 }{{40, 40}, {150, 100}, {-5, 0}, {62.5, 62.5}} {
		step <- tc.in
		<-reported
		if p := task.Progress(); p.Percent != tc.want || p.Message != "step" {
			t.Errorf("after ReportProgress(%v): %+v, want %v%% step", tc.in, p, tc.want)
		}
	}
	close(step)
	if _, err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if p := task.Progress(); p.Percent != 100 {
		t.Errorf("progress of a completed task = %+v, want 100%%", p)
	}
	background.ReportProgress(ctx, 10, "outside any task") // does nothing, does not panic
}

func TestAutoCleanup(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	t.Run("after the delay", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		r := newRunner(t, background.Config{CleanupDelay: 10 * time.Minute, Clock: clock})
		release := make(chan struct{})
		running := blocker(t, r, release)
		done := mustSubmit(t, r, func(context.Context) (int, error) { return 1, nil })
		if _, err := done.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		clock.Advance(10*time.Minute - time.Nanosecond)
		if _, ok := r.Get(done.ID()); !ok {
			t.Fatal("task forgotten before CleanupDelay")
		}
		clock.Advance(time.Nanosecond)
		if _, ok := r.Get(done.ID()); ok {
			t.Fatal("task still listed after CleanupDelay")
		}
		if got := ids(r.Tasks()); len(got) != 1 || got[0] != running.ID() {
			t.Errorf("Tasks() = %v, want only the running task %s", got, running.ID())
		}
		if v := done.Result(); v != 1 {
			t.Errorf("a forgotten task's result = %d, want 1 (the handle stays readable)", v)
		}
		close(release)
		if _, err := running.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("default delay is one hour", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		r := newRunner(t, background.Config{Clock: clock})
		task := mustSubmit(t, r, func(context.Context) (int, error) { return 1, nil })
		if _, err := task.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		clock.Advance(59 * time.Minute)
		if _, ok := r.Get(task.ID()); !ok {
			t.Fatal("task forgotten before an hour")
		}
		clock.Advance(time.Minute)
		if _, ok := r.Get(task.ID()); ok {
			t.Fatal("task still listed after an hour")
		}
	})

	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		r := newRunner(t, background.Config{DisableAutoCleanup: true, Clock: clock})
		task := mustSubmit(t, r, func(context.Context) (int, error) { return 1, nil })
		if _, err := task.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if n := clock.Pending(); n != 0 {
			t.Errorf("%d cleanup timers with auto-cleanup disabled", n)
		}
		clock.Advance(1000 * time.Hour)
		if _, ok := r.Get(task.ID()); !ok {
			t.Fatal("task forgotten with auto-cleanup disabled")
		}
	})
}

func TestClearCompleted(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	r := newRunner(t, background.Config{MaxConcurrentTasks: 1, Clock: clock})
	ctx := testContext(t)

	ok := mustSubmit(t, r, func(context.Context) (int, error) { return 1, nil })
	failed := mustSubmit(t, r, func(context.Context) (int, error) { return 0, errBoom })
	for _, task := range []*background.Task[int]{ok, failed} {
		<-task.Done()
	}
	release := make(chan struct{})
	running := blocker(t, r, release)
	pending := mustSubmit(t, r, func(context.Context) (int, error) { return 3, nil })
	cancelled := mustSubmit(t, r, func(context.Context) (int, error) { return 4, nil })
	cancelled.Cancel()

	if n := r.ClearCompleted(); n != 3 {
		t.Errorf("ClearCompleted() = %d, want 3 (completed, failed, cancelled)", n)
	}
	if got, want := ids(r.Tasks()), []string{running.ID(), pending.ID()}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Tasks() = %v, want %v", got, want)
	}
	if n := clock.Pending(); n != 0 {
		t.Errorf("%d cleanup timers left after ClearCompleted, want 0", n)
	}
	if _, found := r.Get(ok.ID()); found {
		t.Error("Get finds a cleared task")
	}
	if n := r.ClearCompleted(); n != 0 {
		t.Errorf("second ClearCompleted() = %d, want 0", n)
	}
	close(release)
	if v, err := pending.Wait(ctx); err != nil || v != 3 {
		t.Fatalf("pending task: %d, %v", v, err)
	}
}

func TestTimestampsAndDuration(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	t0 := clock.Now()
	r := newRunner(t, background.Config{Clock: clock})
	ctx := testContext(t)

	release := make(chan struct{})
	task := blocker(t, r, release)
	clock.Advance(2 * time.Second)
	if d := task.Duration(); d != 2*time.Second {
		t.Errorf("Duration while running = %v, want 2s", d)
	}
	clock.Advance(time.Second)
	close(release)
	if _, err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour - time.Second) // later reads do not move a finished task's times
	if got := task.CreatedAt(); !got.Equal(t0) {
		t.Errorf("CreatedAt = %v, want %v", got, t0)
	}
	if got := task.StartedAt(); !got.Equal(t0) {
		t.Errorf("StartedAt = %v, want %v", got, t0)
	}
	if got, want := task.CompletedAt(), t0.Add(3*time.Second); !got.Equal(want) {
		t.Errorf("CompletedAt = %v, want %v", got, want)
	}
	if d := task.Duration(); d != 3*time.Second {
		t.Errorf("Duration = %v, want 3s", d)
	}
}

func TestRunnerViews(t *testing.T) {
	t.Parallel()
	r := newRunner(t, background.Config{MaxConcurrentTasks: 2})
	ctx := testContext(t)
	release := make(chan struct{})
	a := blocker(t, r, release)
	b := blocker(t, r, release)
	c := mustSubmit(t, r, func(context.Context) (int, error) { return 3, nil }, background.Name("c"))

	if got := ids(r.Tasks()); strings.Join(got, ",") != strings.Join([]string{a.ID(), b.ID(), c.ID()}, ",") {
		t.Errorf("Tasks() = %v, want submit order", got)
	}
	if got := ids(r.Running()); strings.Join(got, ",") != a.ID()+","+b.ID() {
		t.Errorf("Running() = %v, want %s, %s", got, a.ID(), b.ID())
	}
	if got := ids(r.Pending()); len(got) != 1 || got[0] != c.ID() {
		t.Errorf("Pending() = %v, want %s", got, c.ID())
	}
	info, ok := r.Get(c.ID())
	if !ok || info.Name() != "c" || info.Status() != background.StatusPending {
		t.Fatalf("Get(%s) = %v, %v", c.ID(), info, ok)
	}
	typed, isInt := info.(*background.Task[int])
	if !isInt || typed != c {
		t.Errorf("Get returns %T, want the *Task[int] Submit returned", info)
	}
	if _, ok := r.Get("task_nope"); ok {
		t.Error("Get of an unknown id found a task")
	}
	close(release)
	if v, err := c.Wait(ctx); err != nil || v != 3 {
		t.Fatalf("c: %d, %v", v, err)
	}
	if v := typed.Result(); v != 3 {
		t.Errorf("Result through Get = %d, want 3", v)
	}
}

func double(context.Context) (int, error) { return 2, nil }

func TestNamesAndIDs(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	r := newRunner(t, background.Config{Clock: clock})

	if got := mustSubmit(t, r, double).Name(); got != "background_test.double" {
		t.Errorf("default name = %q, want background_test.double", got)
	}
	if got := mustSubmit(t, r, double, background.Name("twice")).Name(); got != "twice" {
		t.Errorf("Name option: %q, want twice", got)
	}

	seen := make(map[string]bool)
	prev := ""
	for range 50 {
		id := mustSubmit(t, r, double).ID()
		if !strings.HasPrefix(id, "task_") || len(id) != len("task_")+26 {
			t.Fatalf("id %q, want task_ and 26 characters", id)
		}
		if seen[id] {
			t.Fatalf("id %s given twice", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("id %s does not sort after %s, submitted a millisecond earlier", id, prev)
		}
		prev = id
		clock.Advance(time.Millisecond)
	}
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	t.Run("context values without cancellation", func(t *testing.T) {
		t.Parallel()
		type key struct{}
		r := newRunner(t, background.Config{MaxConcurrentTasks: 1})
		release := make(chan struct{})
		first := blocker(t, r, release)
		subCtx, cancel := context.WithCancel(context.WithValue(ctx, key{}, "v"))
		task, err := background.Submit(subCtx, r, func(ctx context.Context) (any, error) {
			return ctx.Value(key{}), ctx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		cancel() // the submitter is gone before the task starts
		close(release)
		if _, err := first.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if v, err := task.Wait(ctx); err != nil || v != "v" {
			t.Errorf("task saw %v, %v; want the value and no cancellation", v, err)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		r := newRunner(t, background.Config{})
		done, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := background.Submit(done, r, double); !errors.Is(err, context.Canceled) {
			t.Errorf("Submit with a done context: %v, want context.Canceled", err)
		}
		if _, err := background.Submit[int](ctx, r, nil); err == nil {
			t.Error("Submit of a nil function succeeded")
		}
		wrongType := background.OnComplete(func(*background.Task[string]) {})
		if _, err := background.Submit(ctx, r, double, wrongType); err == nil || !strings.Contains(err.Error(), "Task[int]") {
			t.Errorf("OnComplete for another type: %v, want an error naming Task[int]", err)
		}
		if n := len(r.Tasks()); n != 0 {
			t.Errorf("refused submits left %d tasks", n)
		}
	})
}

func TestOnComplete(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	r := newRunner(t, background.Config{Logger: logger})

	type seen struct {
		status background.Status
		result string
		calls  int
	}
	got := make(chan seen, 2)
	var calls atomic.Int64
	task := mustSubmit(t, r, func(context.Context) (string, error) { return "hi", nil },
		background.OnComplete(func(task *background.Task[string]) {
			got <- seen{task.Status(), task.Result(), int(calls.Add(1))}
		}))
	if s := <-got; s != (seen{background.StatusCompleted, "hi", 1}) {
		t.Errorf("OnComplete saw %+v, want completed, hi, first call", s)
	}
	if _, err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	panicked := mustSubmit(t, r, double, background.OnComplete(func(*background.Task[int]) { panic("callback bug") }))
	if _, err := panicked.Wait(ctx); err != nil {
		t.Fatalf("a panicking callback changed the task: %v", err)
	}
	// Stop waits for callbacks, so the log line is there after it.
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "callback bug") {
		t.Errorf("callback panic not logged; log:\n%s", logs.String())
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("OnComplete called %d times, want 1", n)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestNoGoroutinesUntilSubmit is not parallel: it counts every goroutine of the process.
func TestNoGoroutinesUntilSubmit(t *testing.T) {
	before := goleak.IgnoreCurrent()
	r := background.NewRunner(background.Config{})
	_ = r.Tasks()
	_ = r.Running()
	_ = r.Pending()
	_, _ = r.Get("task_x")
	_ = r.ClearCompleted()
	goleak.VerifyNone(t, before)
	if err := r.Stop(testContext(t)); err != nil {
		t.Fatalf("Stop of an unused runner: %v", err)
	}
}

// TestStopLeavesNoGoroutines is not parallel: it counts every goroutine of the process.
func TestStopLeavesNoGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	ctx := testContext(t)
	r := background.NewRunner(background.Config{MaxConcurrentTasks: 2})

	started := make(chan struct{}, 2)
	polite := mustSubmit(t, r, func(ctx context.Context) (int, error) {
		started <- struct{}{}
		<-ctx.Done()
		return 0, ctx.Err()
	})
	release := make(chan struct{})
	rude := mustSubmit(t, r, func(context.Context) (int, error) {
		started <- struct{}{}
		<-release // ignores its context
		return 2, nil
	})
	var ran atomic.Bool
	cancelledCallback := make(chan struct{})
	pending := mustSubmit(t, r, func(context.Context) (int, error) { ran.Store(true); return 3, nil },
		background.OnComplete(func(*background.Task[int]) { close(cancelledCallback) }))
	<-started
	<-started

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := r.Stop(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with a function ignoring its context: %v, want context.DeadlineExceeded", err)
	}
	<-cancelledCallback
	for name, task := range map[string]*background.Task[int]{"polite": polite, "rude": rude, "pending": pending} {
		if s, err := task.Status(), task.Err(); s != background.StatusCancelled ||
			!errors.Is(err, background.ErrCancelled) || !errors.Is(err, background.ErrStopped) {
			t.Errorf("%s task after Stop: %s, %v; want cancelled, ErrCancelled and ErrStopped", name, s, err)
		}
	}
	if _, err := background.Submit(ctx, r, double); !errors.Is(err, background.ErrStopped) {
		t.Errorf("Submit after Stop: %v, want ErrStopped", err)
	}

	close(release)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop once every function returned: %v", err)
	}
	if ran.Load() {
		t.Error("a task pending at Stop ran")
	}
	if n := len(r.Tasks()); n != 3 {
		t.Errorf("Tasks() after Stop has %d tasks, want 3 (Stop forgets nothing)", n)
	}
	goleak.VerifyNone(t, before)
}

func TestRunnerWait(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	r := newRunner(t, background.Config{MaxConcurrentTasks: 2})

	if err := r.Wait(ctx); err != nil {
		t.Fatalf("Wait on an idle runner: %v", err)
	}

	release := make(chan struct{})
	blocker(t, r, release)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := r.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a task blocked: %v, want context.DeadlineExceeded", err)
	}

	var callbacks atomic.Int64
	for range 10 {
		mustSubmit(t, r, double, background.OnComplete(func(*background.Task[int]) {
			runtime.Gosched()
			callbacks.Add(1)
		}))
	}
	close(release)
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := callbacks.Load(); n != 10 {
		t.Errorf("%d callbacks had run when Wait returned, want 10", n)
	}
	for _, task := range r.Tasks() {
		if !task.Status().IsTerminal() {
			t.Errorf("task %s is %s after Wait", task.Name(), task.Status())
		}
	}

	// Idle again, then busy again: Wait waits for the new task.
	late := mustSubmit(t, r, double)
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if s := late.Status(); s != background.StatusCompleted {
		t.Errorf("task submitted after an idle period: %s after Wait, want completed", s)
	}
}
