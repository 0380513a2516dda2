package background

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrCancelled is the error of a task ended by [Task.Cancel] or [Runner.Stop].
	ErrCancelled = errors.New("task cancelled")

	// ErrTimeout is the error of a task that did not finish within its timeout. The task's
	// error also matches context.DeadlineExceeded.
	ErrTimeout = errors.New("task timed out")

	// ErrStopped is returned by [Submit] after [Runner.Stop]. The error of a task cancelled
	// by Stop matches both ErrCancelled and ErrStopped.
	ErrStopped = errors.New("runner stopped")
)

// timeoutError is the error of a task that ran longer than d.
func timeoutError(d time.Duration) error {
	return fmt.Errorf("%w after %s: %w", ErrTimeout, d, context.DeadlineExceeded)
}

// errStoppedTask is the error of a task cancelled by Stop.
var errStoppedTask = fmt.Errorf("%w: %w", ErrCancelled, ErrStopped)

// errGoexit is the error of a task whose function called runtime.Goexit (t.FailNow, for one).
var errGoexit = errors.New("task function called runtime.Goexit")

// PanicError is the error of a task whose function panicked.
type PanicError struct {
	// Value is what the function passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine, as runtime/debug.Stack formats it.
	Stack []byte
}

// Error returns the panic value followed by the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("task panicked: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value if it is an error, so errors.Is sees through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
