package queue

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/spool-run/spool"
)

// Handler executes one attempt of a run. The value it returns is the run's result, encoded
// as JSON (a json.RawMessage is kept as is). Output and progress go through the context:
// see [Output], [Log] and [UpdateProgress].
type Handler interface {
	Work(ctx context.Context, run *spool.Run) (any, error)
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, run *spool.Run) (any, error)

// Work calls f(ctx, run).
func (f HandlerFunc) Work(ctx context.Context, run *spool.Run) (any, error) { return f(ctx, run) }

// Recipe is what the engine knows of a recipe: how to run it and its defaults.
type Recipe struct {
	Name    string
	Handler Handler
	// Defaults apply where a submit leaves a field empty.
	TimeoutSec       int
	MaxRetries       *int
	Priority         *spool.Priority
	WebhookURL       string
	WebhookEvents    []string
	IdempotencyScope string
	// ConcurrencyMax limits running runs of the recipe's agent (0 = only the server's limit).
	ConcurrencyMax int
	// Rate limits how often runs of the recipe start, on every node together.
	Rate *Rate
	// Schedules start runs of the recipe on a cron expression or an interval.
	Schedules []RecipeSchedule
	// ValidateInput, when set, refuses inputs that do not fit (an *spool.Error is kept as is).
	ValidateInput func(input json.RawMessage) error
}

// reporter is what the engine puts in a handler's context.
type reporter interface {
	output(text string)
	log(text string)
	progress(u ProgressUpdate)
}

type reporterKey struct{}

func withReporter(ctx context.Context, r reporter) context.Context {
	return context.WithValue(ctx, reporterKey{}, r)
}

func reporterFrom(ctx context.Context) reporter {
	r, _ := ctx.Value(reporterKey{}).(reporter)
	return r
}

// Output appends a chunk to the run's output stream. It never blocks on slow readers.
// Outside a handler it does nothing.
func Output(ctx context.Context, text string) {
	if r := reporterFrom(ctx); r != nil && text != "" {
		r.output(text)
	}
}

// Log appends a chunk to the run's log stream (kept apart from output).
func Log(ctx context.Context, text string) {
	if r := reporterFrom(ctx); r != nil && text != "" {
		r.log(text)
	}
}

// ProgressUpdate changes the fields of a run's progress that are set.
type ProgressUpdate struct {
	Percentage     *float64
	Message        *string
	StepsCompleted *int
	StepsTotal     *int
}

// UpdateProgress records a progress update for the run.
func UpdateProgress(ctx context.Context, u ProgressUpdate) {
	if r := reporterFrom(ctx); r != nil {
		r.progress(u)
	}
}

// ReportProgress sets the run's percentage (0-100) and current step.
func ReportProgress(ctx context.Context, percent float64, message string) {
	UpdateProgress(ctx, ProgressUpdate{Percentage: &percent, Message: &message})
}

// permanentError marks an error that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not retryable: the run fails at once whatever its retries left.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked with [Permanent].
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// BackoffError asks the engine to re-queue the run without counting the attempt and to hold
// its whole agent until After has passed (a provider answered 429 with Retry-After).
type BackoffError struct {
	After time.Duration
	Err   error
}

func (e *BackoffError) Error() string {
	return "backing off for " + e.After.String() + ": " + e.Err.Error()
}

func (e *BackoffError) Unwrap() error { return e.Err }

// CodedError gives a failure a stable error code (spool.CodeExitStatus, ...).
func CodedError(code string, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func errorCodeOf(err error) string {
	var c *codedError
	if errors.As(err, &c) {
		return c.code
	}
	var se *spool.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return spool.CodeHandlerError
}
