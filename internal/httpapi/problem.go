package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/spool-run/spool"
)

// problemBase prefixes every problem type URI.
const problemBase = "https://spool.run/problems/"

// Problem is an RFC 9457 problem document with Spool's extensions.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Code is the stable error code clients branch on (spool.Code*).
	Code string `json:"code"`
	// Errors names each bad field of an invalid request.
	Errors []spool.FieldError `json:"errors,omitempty"`
	// RetryAfter, in seconds, tells when a refused request may succeed (queue_full).
	RetryAfter int `json:"retry_after,omitempty"`
	// RunStatus is the run's state when a conflict refused an action on it.
	RunStatus spool.State `json:"run_status,omitempty"`
}

// codeStatus maps each error code to its HTTP status. Codes not listed are 500.
var codeStatus = map[string]int{
	spool.CodeInvalid:        http.StatusBadRequest,
	spool.CodeUnprocessable:  http.StatusUnprocessableEntity,
	spool.CodeUnknownRecipe:  http.StatusUnprocessableEntity,
	spool.CodeNotFound:       http.StatusNotFound,
	spool.CodeConflict:       http.StatusConflict,
	spool.CodeQueueFull:      http.StatusServiceUnavailable,
	spool.CodeUnauthorized:   http.StatusUnauthorized,
	spool.CodeForbidden:      http.StatusForbidden,
	spool.CodeTooLarge:       http.StatusRequestEntityTooLarge,
	spool.CodeUnavailable:    http.StatusServiceUnavailable,
	spool.CodeMethodNotAllow: http.StatusMethodNotAllowed,
	spool.CodeRateLimited:    http.StatusTooManyRequests,
	spool.CodeInternal:       http.StatusInternalServerError,
}

var codeTitle = map[string]string{
	spool.CodeInvalid:        "Invalid request",
	spool.CodeUnprocessable:  "Unprocessable request",
	spool.CodeUnknownRecipe:  "Unknown recipe",
	spool.CodeNotFound:       "Not found",
	spool.CodeConflict:       "Conflict",
	spool.CodeQueueFull:      "Queue full",
	spool.CodeUnauthorized:   "Unauthorized",
	spool.CodeForbidden:      "Forbidden",
	spool.CodeTooLarge:       "Request too large",
	spool.CodeUnavailable:    "Service unavailable",
	spool.CodeMethodNotAllow: "Method not allowed",
	spool.CodeRateLimited:    "Too many requests",
	spool.CodeInternal:       "Internal server error",
}

// StatusOf returns the HTTP status for an error code.
func StatusOf(code string) int {
	if s, ok := codeStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ProblemFor turns err into a problem document. An error that is not an *spool.Error is an
// internal error whose detail does not leak the cause.
func ProblemFor(err error) *Problem {
	var se *spool.Error
	if !errors.As(err, &se) {
		se = &spool.Error{Code: spool.CodeInternal, Message: "internal error; see the server log"}
	}
	code := se.Code
	if _, ok := codeStatus[code]; !ok {
		code = spool.CodeInternal
	}
	p := &Problem{
		Type:       problemBase + code,
		Title:      codeTitle[code],
		Status:     StatusOf(code),
		Detail:     se.Message,
		Code:       code,
		Errors:     se.Fields,
		RetryAfter: se.RetryAfter,
		RunStatus:  se.State,
	}
	if p.Detail == "" {
		if len(se.Fields) > 0 {
			p.Detail = se.Fields[0].Field + ": " + se.Fields[0].Reason
		} else {
			p.Detail = p.Title
		}
	}
	if code == spool.CodeQueueFull && p.RetryAfter <= 0 {
		p.RetryAfter = 5
	}
	return p
}

// writeProblem answers with err as a problem document. Errors that are not an *spool.Error
// are logged, since the client only sees "internal error".
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	var se *spool.Error
	if !errors.As(err, &se) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	WriteProblem(w, ProblemFor(err))
}

// WriteProblem writes p with its status and the application/problem+json type.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="spool"`)
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
