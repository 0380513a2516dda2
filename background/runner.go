package background

import (
	"container/list"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Defaults for the zero values of [Config].
const (
	DefaultMaxConcurrentTasks = 5
	DefaultTimeout            = 300 * time.Second
	DefaultCleanupDelay       = time.Hour
)

// Config configures a [Runner]. The zero Config is ready to use: every zero field takes its
// default.
type Config struct {
	// MaxConcurrentTasks bounds the tasks running at once. Zero or less means
	// DefaultMaxConcurrentTasks (5).
	MaxConcurrentTasks int

	// DefaultTimeout bounds a task's run time (counted from its start) unless [Timeout] says
	// otherwise. Zero means DefaultTimeout (300 s); a negative value means no timeout.
	DefaultTimeout time.Duration

	// DisableAutoCleanup keeps finished tasks until [Runner.ClearCompleted]. By default a
	// finished task is forgotten CleanupDelay after it finished.
	DisableAutoCleanup bool

	// CleanupDelay is how long a finished task stays listed. Zero or less means
	// DefaultCleanupDelay (1 h).
	CleanupDelay time.Duration

	// Clock gives the time of task timestamps and drives auto-cleanup; nil means the system
	// clock. Timeouts always use real time (they are context deadlines).
	Clock Clock

	// Logger receives panics of OnComplete callbacks; nil means slog.Default().
	Logger *slog.Logger
}

// Clock tells the time and runs functions later. Tests replace it to move time by hand.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless the timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call made by [Clock.AfterFunc].
type Timer interface {
	// Stop prevents the call and reports whether it did; false means it already ran or
	// was stopped.
	Stop() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time                            { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Runner runs submitted functions in the background, at most MaxConcurrentTasks at once, in
// submit order. Create one with [NewRunner], submit with [Submit], and call [Runner.Stop]
// when done. Its methods are safe for concurrent use.
type Runner struct {
	maxConcurrent  int
	defaultTimeout time.Duration
	autoCleanup    bool
	cleanupDelay   time.Duration
	clock          Clock
	logger         *slog.Logger

	mu      sync.Mutex
	tasks   list.List // every known task, in submit order
	byID    map[string]*task
	queue   list.List     // pending tasks, in submit order
	running int           // tasks in StatusRunning
	active  int           // tasks pending, running, or in their OnComplete callback
	idle    chan struct{} // closed when active reaches 0; replaced when it leaves 0
	live    int           // goroutines of this runner that have not exited
	stopped bool
	drained chan struct{} // made by Stop; closed when live reaches 0
}

// NewRunner returns a runner configured by cfg. It starts no goroutine: a runner costs
// nothing until the first [Submit].
func NewRunner(cfg Config) *Runner {
	r := &Runner{
		maxConcurrent:  cfg.MaxConcurrentTasks,
		defaultTimeout: cfg.DefaultTimeout,
		autoCleanup:    !cfg.DisableAutoCleanup,
		cleanupDelay:   cfg.CleanupDelay,
		clock:          cfg.Clock,
		logger:         cfg.Logger,
		byID:           make(map[string]*task),
	}
	if r.maxConcurrent <= 0 {
		r.maxConcurrent = DefaultMaxConcurrentTasks
	}
	if r.defaultTimeout == 0 {
		r.defaultTimeout = DefaultTimeout
	}
	if r.cleanupDelay <= 0 {
		r.cleanupDelay = DefaultCleanupDelay
	}
	if r.clock == nil {
		r.clock = systemClock{}
	}
	return r
}

// Tasks returns every task the runner knows, in submit order: pending, running, and
// finished ones not yet cleaned up.
func (r *Runner) Tasks() []TaskInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TaskInfo, 0, r.tasks.Len())
	for e := r.tasks.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*task).view)
	}
	return out
}

// Running returns the running tasks, in submit order.
func (r *Runner) Running() []TaskInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TaskInfo, 0, r.running)
	for e := r.tasks.Front(); e != nil && len(out) < r.running; e = e.Next() {
		if t := e.Value.(*task); t.status == StatusRunning {
			out = append(out, t.view)
		}
	}
	return out
}

// Pending returns the tasks waiting for a slot, in the order they will start.
func (r *Runner) Pending() []TaskInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TaskInfo, 0, r.queue.Len())
	for e := r.queue.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*task).view)
	}
	return out
}

// Get returns the task with the given id, and false if the runner does not know it (it never
// did, or the task was cleaned up).
func (r *Runner) Get(id string) (TaskInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.byID[id]
	if !ok {
		return nil, false
	}
	return t.view, true
}

// ClearCompleted forgets every finished task (completed, failed or cancelled) and returns
// how many it forgot. Pending and running tasks stay.
func (r *Runner) ClearCompleted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for e := r.tasks.Front(); e != nil; {
		next := e.Next()
		if t := e.Value.(*task); t.status.IsTerminal() {
			r.forgetLocked(t)
			n++
		}
		e = next
	}
	return n
}

// Wait blocks until no task is pending, running, or in its OnComplete callback, or until ctx
// is done, and then returns ctx.Err(). It does not stop new submits: a graceful shutdown is
// Wait, then [Runner.Stop].
func (r *Runner) Wait(ctx context.Context) error {
	r.mu.Lock()
	idle := r.idle
	if r.active == 0 {
		idle = nil
	}
	r.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	default:
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("background: wait: %w", ctx.Err())
	}
}

// Stop shuts the runner down. From then on [Submit] fails with [ErrStopped]; pending tasks
// end cancelled without running; running tasks end cancelled at once and their contexts are
// cancelled. Their errors match both ErrCancelled and ErrStopped. Stop then waits until every
// function has returned and every OnComplete callback has run, or until ctx is done, and
// then returns an error wrapping ctx.Err(): some function ignores its context.
//
// To let tasks finish instead, call [Runner.Wait] before Stop. Stop may be called more than
// once; finished tasks stay readable.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	var cancelled []*task
	if !r.stopped {
		r.stopped = true
		r.drained = make(chan struct{})
		for e := r.queue.Front(); e != nil; e = e.Next() {
			t := e.Value.(*task)
			t.queued = nil
			t.cancelErr = errStoppedTask
			r.endLocked(t, StatusCancelled, errStoppedTask)
			cancelled = append(cancelled, t)
		}
		r.queue.Init()
		for e := r.tasks.Front(); e != nil; e = e.Next() {
			t := e.Value.(*task)
			if t.status == StatusRunning && t.cancelErr == nil {
				t.cancelErr = errStoppedTask
				t.cancel(errStoppedTask)
			}
			if t.cleanup != nil {
				t.cleanup.Stop()
				t.cleanup = nil
			}
		}
		if r.live == 0 {
			close(r.drained)
		}
	}
	drained := r.drained
	r.mu.Unlock()

	for _, t := range cancelled {
		r.settle(t)
	}
	select {
	case <-drained:
		return nil
	default:
	}
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("background: stop: task functions still running: %w", ctx.Err())
	}
}

// enqueueLocked adds a new task and starts it if a slot is free.
func (r *Runner) enqueueLocked(t *task) {
	t.elem = r.tasks.PushBack(t)
	r.byID[t.id] = t
	t.queued = r.queue.PushBack(t)
	if r.active == 0 {
		r.idle = make(chan struct{})
	}
	r.active++
	r.dispatchLocked()
}

// dispatchLocked starts pending tasks, oldest first, while slots are free.
func (r *Runner) dispatchLocked() {
	for !r.stopped && r.running < r.maxConcurrent && r.queue.Len() > 0 {
		t := r.queue.Remove(r.queue.Front()).(*task)
		t.queued = nil
		r.startLocked(t)
	}
}

// startLocked starts t's function and its supervisor.
func (r *Runner) startLocked(t *task) {
	ctx := context.WithValue(t.ctx, taskKey{}, t)
	ctx, cancel := context.WithCancelCause(ctx)
	stopTimer := context.CancelFunc(func() {})
	if t.timeout > 0 {
		ctx, stopTimer = context.WithTimeoutCause(ctx, t.timeout, timeoutError(t.timeout))
	}
	t.ctx = nil
	t.cancel = cancel
	t.status = StatusRunning
	t.startedAt = r.clock.Now()
	r.running++
	r.live += 2
	go r.supervise(ctx, t, func() { stopTimer(); cancel(nil) })
}

// supervise runs t's function in a goroutine of its own and ends t when the function
// returns or t's context is done, whichever comes first.
func (r *Runner) supervise(ctx context.Context, t *task, release func()) {
	defer r.exited()
	out := make(chan outcome, 1)
	go func() {
		defer r.exited()
		o := outcome{err: errGoexit}
		defer func() { out <- o }()
		defer func() {
			if v := recover(); v != nil {
				o = outcome{err: &PanicError{Value: v, Stack: debug.Stack()}, panicked: true}
			}
		}()
		commit, err := t.run(ctx)
		o = outcome{commit: commit, err: err}
	}()

	var o outcome
	returned := true
	select {
	case o = <-out:
	case <-ctx.Done():
		select {
		case o = <-out: // it returned at the same moment: keep what it gave
		default:
			returned = false // abandon it
		}
	}
	cause := context.Cause(ctx)
	release()
	r.finish(t, o, returned, cause)
	r.settle(t)
}

// finish ends a running task with what its function gave, frees its slot and starts the
// next pending task.
func (r *Runner) finish(t *task, o outcome, returned bool, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t.cancel = nil
	r.running--
	switch {
	case t.cancelErr != nil: // a cancel wins over whatever the function did
		r.endLocked(t, StatusCancelled, t.cancelErr)
	case !returned: // its timeout passed and the function ignores its context
		r.endLocked(t, StatusFailed, cause)
	case o.panicked:
		r.endLocked(t, StatusFailed, o.err)
	case o.err == nil:
		o.commit()
		t.progress.Percent = 100
		r.endLocked(t, StatusCompleted, nil)
	case cause != nil: // it returned an error after its timeout: report the timeout
		r.endLocked(t, StatusFailed, cause)
	default:
		r.endLocked(t, StatusFailed, o.err)
	}
	r.dispatchLocked()
}

// cancel cancels t with err (see Task.Cancel).
func (r *Runner) cancel(t *task, err error) bool {
	r.mu.Lock()
	switch {
	case t.status == StatusPending:
		r.queue.Remove(t.queued)
		t.queued = nil
		t.cancelErr = err
		r.endLocked(t, StatusCancelled, err)
		r.mu.Unlock()
		r.settle(t)
		return true
	case t.status == StatusRunning && t.cancelErr == nil:
		t.cancelErr = err
		t.cancel(err) // the supervisor ends the task
		r.mu.Unlock()
		return true
	}
	r.mu.Unlock()
	return false
}

// endLocked records how t ended, schedules its cleanup and wakes its waiters.
func (r *Runner) endLocked(t *task, status Status, err error) {
	t.status = status
	t.err = err
	t.ctx = nil
	t.completedAt = r.clock.Now()
	if r.autoCleanup && !r.stopped && t.elem != nil {
		t.cleanup = r.clock.AfterFunc(r.cleanupDelay, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.forgetLocked(t)
		})
	}
	close(t.done)
}

// forgetLocked removes t from the runner's lists.
func (r *Runner) forgetLocked(t *task) {
	if t.cleanup != nil {
		t.cleanup.Stop()
		t.cleanup = nil
	}
	if t.elem == nil {
		return
	}
	r.tasks.Remove(t.elem)
	t.elem = nil
	delete(r.byID, t.id)
}

// settle runs the OnComplete callback of a task that has just ended, then counts the task
// out of the active ones.
func (r *Runner) settle(t *task) {
	if t.onComplete != nil {
		r.callback(t)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active--
	if r.active == 0 {
		close(r.idle)
	}
}

// callback runs t's OnComplete callback and logs a panic in it.
func (r *Runner) callback(t *task) {
	defer func() {
		if v := recover(); v != nil {
			logger := r.logger
			if logger == nil {
				logger = slog.Default()
			}
			logger.Error("background: OnComplete callback panicked",
				"task_id", t.id, "task_name", t.name, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	t.onComplete()
}

// exited records the end of one of the runner's goroutines.
func (r *Runner) exited() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live--
	if r.live == 0 && r.stopped {
		close(r.drained)
	}
}
