package background

import (
	"container/list"
	"context"
	"time"
)

// Status is where a task is in its life.
type Status string

// The task statuses. Terminal ones are StatusCompleted, StatusFailed and StatusCancelled.
const (
	StatusPending   Status = "pending"   // waiting for a free slot
	StatusRunning   Status = "running"   // its function is running
	StatusCompleted Status = "completed" // its function returned a nil error
	StatusFailed    Status = "failed"    // its function returned an error, panicked or timed out
	StatusCancelled Status = "cancelled" // cancelled by Task.Cancel or Runner.Stop
)

// IsTerminal reports whether a task in status s will never change again.
func (s Status) IsTerminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Progress is how far a task has come, as its function reports it with [ReportProgress].
// A completed task ends at 100 percent.
type Progress struct {
	Percent float64 // 0 to 100
	Message string  // the current step, in words
}

// TaskInfo is the part of a task that does not depend on its result type: what
// [Runner.Tasks], [Runner.Get] and the other runner methods return. Every TaskInfo is a
// *[Task][T]; type-assert it to read the result.
type TaskInfo interface {
	ID() string
	Name() string
	Status() Status
	Progress() Progress
	Err() error
	CreatedAt() time.Time
	StartedAt() time.Time
	CompletedAt() time.Time
	Duration() time.Duration
	Done() <-chan struct{}
	Cancel() bool

	core() *task
}

// Task is one submitted function and, once it has finished, its outcome. Its methods are
// safe for concurrent use.
type Task[T any] struct {
	t      *task
	result T // guarded by t.r.mu; set when the task completes
}

var _ TaskInfo = (*Task[int])(nil)

// ID returns the task's id, "task_" followed by a time-sortable random suffix.
func (t *Task[T]) ID() string { return t.t.id }

// Name returns the name given with [Name], or else the function's name.
func (t *Task[T]) Name() string { return t.t.name }

// Status returns the task's current status.
func (t *Task[T]) Status() Status {
	t.t.r.mu.Lock()
	defer t.t.r.mu.Unlock()
	return t.t.status
}

// Progress returns the last progress the function reported.
func (t *Task[T]) Progress() Progress {
	t.t.r.mu.Lock()
	defer t.t.r.mu.Unlock()
	return t.t.progress
}

// Result returns the value the function returned, or the zero value until the task has
// completed (and forever if it failed or was cancelled).
func (t *Task[T]) Result() T {
	t.t.r.mu.Lock()
	defer t.t.r.mu.Unlock()
	return t.result
}

// Err returns why the task failed or was cancelled, or nil while it is pending or running
// and once it has completed.
func (t *Task[T]) Err() error {
	t.t.r.mu.Lock()
	defer t.t.r.mu.Unlock()
	return t.t.err
}

// Wait blocks until the task has finished and returns its result and error, or returns
// ctx.Err() if ctx is done first (the task goes on).
func (t *Task[T]) Wait(ctx context.Context) (T, error) {
	select {
	case <-t.t.done:
	default:
		select {
		case <-t.t.done:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
	t.t.r.mu.Lock()
	defer t.t.r.mu.Unlock()
	return t.result, t.t.err
}

// Done returns a channel that is closed when the task has finished.
func (t *Task[T]) Done() <-chan struct{} { return t.t.done }

// Cancel cancels the task and reports whether it had any effect. A pending task ends
// cancelled at once and its function never runs. A running task ends cancelled at once too:
// its context is cancelled, its slot goes to the next task, and its function, which should
// return soon, is left to finish on its own ([Runner.Stop] waits for it). Cancelling a
// finished task changes nothing and returns false.
func (t *Task[T]) Cancel() bool { return t.t.r.cancel(t.t, ErrCancelled) }

// CreatedAt returns when the task was submitted.
func (t *Task[T]) CreatedAt() time.Time { return t.t.createdAt }

// StartedAt returns when the task's function started, or the zero time if it has not.
func (t *Task[T]) StartedAt() time.Time {
	t.t.r.mu.Lock()
	defer t.t.r.mu.Unlock()
	return t.t.startedAt
}

// CompletedAt returns when the task finished, whatever its outcome, or the zero time if it
// has not.
func (t *Task[T]) CompletedAt() time.Time {
	t.t.r.mu.Lock()
	defer t.t.r.mu.Unlock()
	return t.t.completedAt
}

// Duration returns how long the task ran: from start to finish, or to now while it runs.
// It is zero for a task that never started.
func (t *Task[T]) Duration() time.Duration {
	t.t.r.mu.Lock()
	defer t.t.r.mu.Unlock()
	switch {
	case t.t.startedAt.IsZero():
		return 0
	case t.t.completedAt.IsZero():
		return t.t.r.clock.Now().Sub(t.t.startedAt)
	}
	return t.t.completedAt.Sub(t.t.startedAt)
}

func (t *Task[T]) core() *task { return t.t }

// task is the part of a Task the runner works with, whatever the result type.
type task struct {
	r         *Runner
	id        string
	name      string
	createdAt time.Time
	timeout   time.Duration // <= 0: none
	view      TaskInfo      // the *Task[T] that wraps this task
	done      chan struct{} // closed when the task has finished

	// run calls the function; commit stores its result in the view (called under r.mu).
	run func(ctx context.Context) (commit func(), err error)
	// onComplete calls the OnComplete callback, if any.
	onComplete func()

	// Guarded by r.mu.
	ctx         context.Context // the submitter's values, without its cancellation
	status      Status
	progress    Progress
	err         error
	startedAt   time.Time
	completedAt time.Time
	cancel      context.CancelCauseFunc // set while running
	cancelErr   error                   // why Cancel or Stop ended the task, once asked
	elem        *list.Element           // in r.tasks; nil once forgotten
	queued      *list.Element           // in r.queue while pending
	cleanup     Timer                   // forgets the task after CleanupDelay
}

// outcome is what a call of a task's function gave.
type outcome struct {
	commit   func()
	err      error
	panicked bool
}
