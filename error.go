package spool

import (
	"errors"
	"fmt"
)

// Error codes: stable strings that clients branch on. The HTTP API maps each to a status.
const (
	CodeInvalid        = "invalid"        // bad input; Fields says which
	CodeNotFound       = "not_found"      // no such run, recipe or schedule
	CodeConflict       = "conflict"       // the run's state does not allow the action
	CodeQueueFull      = "queue_full"     // max_queue_size reached; retry later
	CodeUnknownRecipe  = "unknown_recipe" // submit named a recipe that does not exist
	CodeUnauthorized   = "unauthorized"   // missing or wrong token
	CodeForbidden      = "forbidden"      // the token may not do this
	CodeTooLarge       = "too_large"      // a body or value over its size limit
	CodeUnavailable    = "unavailable"    // the server is shutting down or not ready
	CodeInternal       = "internal"       // a bug or a storage failure
	CodeTimeout        = "timeout"        // a run exceeded its timeout
	CodeInterrupted    = "interrupted"    // a run's node died while running it
	CodeCancelled      = "cancelled"      // a run was cancelled
	CodeExitStatus     = "exit_status"    // an exec child exited non-zero
	CodePanic          = "panic"          // a Go handler panicked
	CodeHandlerError   = "handler_error"  // a handler returned an error
	CodeUnprocessable  = "unprocessable"  // well-formed but refused (agent_file, schema)
	CodeRateLimited    = "rate_limited"   // a provider or rate limit refused
	CodeMethodNotAllow = "method_not_allowed"
)

// Error is Spool's user-facing error: a stable code and a message.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"detail"`
	// Fields names each bad field of an invalid request.
	Fields []FieldError `json:"errors,omitempty"`
	// RetryAfter, in seconds, tells when a refused request may succeed (queue_full).
	RetryAfter int `json:"retry_after,omitempty"`
	// State is the run's state when a conflict refused an action.
	State State `json:"run_status,omitempty"`
}

// FieldError names one bad field and why.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error returns the message, prefixed by the code.
func (e *Error) Error() string {
	if len(e.Fields) > 0 && e.Message == "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Fields[0].Field, e.Fields[0].Reason)
	}
	return e.Code + ": " + e.Message
}

// Is makes errors.Is match an *Error by code, so errors.Is(err, ErrNotFound) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == ""
}

// Sentinels for errors.Is. They match any *Error with the same code.
var (
	ErrNotFound  = &Error{Code: CodeNotFound}
	ErrConflict  = &Error{Code: CodeConflict}
	ErrQueueFull = &Error{Code: CodeQueueFull}
	ErrInvalid   = &Error{Code: CodeInvalid}
)

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid builds an invalid-input error naming one field.
func Invalid(field, reason string) *Error {
	return &Error{Code: CodeInvalid, Message: field + ": " + reason, Fields: []FieldError{{Field: field, Reason: reason}}}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, else CodeInternal.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
