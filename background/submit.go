package background

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"time"
)

// Option changes how [Submit] runs one task.
type Option func(*options)

type options struct {
	name       string
	timeout    time.Duration
	onComplete any // func(*Task[T]), checked against T by Submit
}

// Name names the task. By default a task is named after its function ("pkg.fetchPage").
func Name(name string) Option {
	return func(o *options) { o.name = name }
}

// Timeout bounds the task's run time, counted from its start, instead of
// [Config.DefaultTimeout]. A negative d means no timeout; zero keeps the default.
func Timeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// OnComplete calls f once the task has finished, whatever its outcome. T must be the task's
// result type, else [Submit] fails. f runs after the task's waiters have been woken, on the
// goroutine that ended the task: the task's supervisor, or the caller of [Task.Cancel] or
// [Runner.Stop] for a task cancelled before it started. [Runner.Wait] and [Runner.Stop] wait
// for it, so f must not call them; a panic in f is logged to [Config.Logger].
func OnComplete[T any](f func(*Task[T])) Option {
	return func(o *options) { o.onComplete = f }
}

// Submit adds fn to r's queue and returns its task. fn starts when a slot is free, in submit
// order, with a context that carries ctx's values but not its cancellation (a task outlives
// the request that submitted it); the context is cancelled by [Task.Cancel], by
// [Runner.Stop], and at the task's timeout.
//
// Submit fails if ctx is already done, if fn is nil, if an [OnComplete] callback is for
// another result type, or with [ErrStopped] after [Runner.Stop].
func Submit[T any](ctx context.Context, r *Runner, fn func(ctx context.Context) (T, error), opts ...Option) (*Task[T], error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("background: submit: %w", err)
	}
	if fn == nil {
		return nil, errors.New("background: submit: nil function")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	view := &Task[T]{}
	t := &task{
		r:       r,
		name:    o.name,
		timeout: o.timeout,
		view:    view,
		done:    make(chan struct{}),
		ctx:     context.WithoutCancel(ctx),
		status:  StatusPending,
	}
	view.t = t
	t.run = func(ctx context.Context) (func(), error) {
		v, err := fn(ctx)
		return func() { view.result = v }, err
	}
	if o.onComplete != nil {
		f, ok := o.onComplete.(func(*Task[T]))
		if !ok {
			return nil, fmt.Errorf("background: submit: OnComplete callback is a %T, want a func(*background.Task[%s])",
				o.onComplete, reflect.TypeFor[T]())
		}
		t.onComplete = func() { f(view) }
	}
	if t.name == "" {
		t.name = funcName(fn)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return nil, fmt.Errorf("background: submit: %w", ErrStopped)
	}
	if t.timeout == 0 {
		t.timeout = r.defaultTimeout
	}
	t.createdAt = r.clock.Now()
	t.id = newID(t.createdAt)
	r.enqueueLocked(t)
	return view, nil
}

// funcName returns fn's name without its package path: "main.main.func1", "pkg.fetch".
func funcName(fn any) string {
	f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer())
	if f == nil {
		return ""
	}
	name := f.Name()
	return name[strings.LastIndexByte(name, '/')+1:]
}

type taskKey struct{}

// ReportProgress records the progress of the task that ctx belongs to: percent (clamped to
// 0-100) and a message saying what it is doing. Call it from a submitted function with the
// context it was given; anywhere else it does nothing. Progress reported after the task has
// finished is ignored.
func ReportProgress(ctx context.Context, percent float64, message string) {
	t, _ := ctx.Value(taskKey{}).(*task)
	if t == nil {
		return
	}
	switch {
	case math.IsNaN(percent) || percent < 0:
		percent = 0
	case percent > 100:
		percent = 100
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	if t.status == StatusRunning {
		t.progress = Progress{Percent: percent, Message: message}
	}
}
