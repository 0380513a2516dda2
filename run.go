package spool

import (
	"encoding/json"
	"time"
)

// Run is one execution of a recipe with one input. Its JSON form is the HTTP API's.
type Run struct {
	ID        string   `json:"job_id"`
	Recipe    string   `json:"recipe_name"`
	Agent     string   `json:"agent"`
	Workspace string   `json:"workspace"`
	SessionID string   `json:"session_id"`
	State     State    `json:"status"`
	Priority  Priority `json:"priority"`

	Input    json.RawMessage `json:"input,omitempty"`
	Config   json.RawMessage `json:"config,omitempty"`
	Metadata map[string]any  `json:"metadata,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`

	// Error is the failure's message, empty unless the run failed or was cancelled.
	Error     string   `json:"error,omitempty"`
	ErrorCode string   `json:"error_code,omitempty"`
	Progress  Progress `json:"progress"`

	// Attempt counts executions: 0 before the first start, then 1, 2, ...
	Attempt    int `json:"attempt"`
	MaxRetries int `json:"max_retries"`
	// TimeoutSec bounds one attempt; 0 means the server default.
	TimeoutSec int    `json:"timeout_sec"`
	RetryOf    string `json:"retry_of,omitempty"`

	IdempotencyKey   string   `json:"idempotency_key,omitempty"`
	IdempotencyScope string   `json:"idempotency_scope,omitempty"`
	WebhookURL       string   `json:"webhook_url,omitempty"`
	WebhookEvents    []string `json:"webhook_events,omitempty"`

	ScheduleID   string     `json:"schedule_id,omitempty"`
	ScheduledFor *time.Time `json:"scheduled_for,omitempty"`

	CreatedAt         time.Time  `json:"created_at"`
	RunAt             *time.Time `json:"run_at,omitempty"`
	StartedAt         *time.Time `json:"started_at"`
	CompletedAt       *time.Time `json:"completed_at"`
	CancelRequestedAt *time.Time `json:"cancel_requested_at,omitempty"`
	// AvailableAt is when a queued run may next start (later than now while it backs off
	// before a retry).
	AvailableAt time.Time `json:"available_at"`
	// Node is the node holding the run while it runs.
	Node string `json:"node,omitempty"`
	// Seq orders runs of equal priority: the submit order.
	Seq int64 `json:"-"`
}

// WaitSeconds is the time from creation to the latest start, or 0 before the start.
func (r *Run) WaitSeconds() float64 {
	if r.StartedAt == nil {
		return 0
	}
	return r.StartedAt.Sub(r.CreatedAt).Seconds()
}

// DurationSeconds is the time from start to completion, or to now while running.
func (r *Run) DurationSeconds(now time.Time) *float64 {
	if r.StartedAt == nil {
		return nil
	}
	end := now
	if r.CompletedAt != nil {
		end = *r.CompletedAt
	}
	d := end.Sub(*r.StartedAt).Seconds()
	return &d
}

// Progress is how far a run has come, as reported by its handler.
type Progress struct {
	Percentage     float64 `json:"percentage"`
	CurrentStep    string  `json:"current_step,omitempty"`
	StepsCompleted int     `json:"steps_completed"`
	StepsTotal     int     `json:"steps_total"`
}

// Idempotency scopes for SubmitRequest.IdempotencyScope.
const (
	ScopeGlobal  = "global"  // unique within the workspace (the default when a key is given)
	ScopeSession = "session" // unique within the session
	ScopeNone    = "none"    // no deduplication
)

// SubmitRequest asks for a new run. Zero values take the recipe's defaults, then the server's.
type SubmitRequest struct {
	Recipe    string          `json:"recipe_name"`
	Input     json.RawMessage `json:"input,omitempty"`
	Config    json.RawMessage `json:"config,omitempty"`
	Metadata  map[string]any  `json:"metadata,omitempty"`
	Priority  *Priority       `json:"priority,omitempty"`
	Agent     string          `json:"agent,omitempty"`
	Workspace string          `json:"workspace,omitempty"`
	SessionID string          `json:"session_id,omitempty"`
	// TimeoutSec bounds one attempt in seconds; 0 takes the default.
	TimeoutSec       int      `json:"timeout,omitempty"`
	MaxRetries       *int     `json:"max_retries,omitempty"`
	IdempotencyKey   string   `json:"idempotency_key,omitempty"`
	IdempotencyScope string   `json:"idempotency_scope,omitempty"`
	WebhookURL       string   `json:"webhook_url,omitempty"`
	WebhookEvents    []string `json:"webhook_events,omitempty"`
	// RunAt delays the start until the given time; Delay until now plus the duration.
	RunAt *time.Time `json:"run_at,omitempty"`
	Delay Duration   `json:"delay,omitempty"`

	// RetryOf links a manual retry to the run it repeats.
	RetryOf string `json:"-"`
	// ScheduleID and ScheduledFor are set for runs started by a schedule.
	ScheduleID   string     `json:"-"`
	ScheduledFor *time.Time `json:"-"`
}

// Stats summarises runs, computed by the database.
type Stats struct {
	Queued    int64 `json:"queued_count"`
	Scheduled int64 `json:"scheduled_count"`
	Running   int64 `json:"running_count"`
	Paused    int64 `json:"paused_count"`
	Succeeded int64 `json:"succeeded_count"`
	Failed    int64 `json:"failed_count"`
	Cancelled int64 `json:"cancelled_count"`
	Total     int64 `json:"total_runs"`
	// AvgWaitSeconds and AvgDurationSeconds average over runs that started / completed.
	AvgWaitSeconds     float64 `json:"avg_wait_seconds"`
	AvgDurationSeconds float64 `json:"avg_duration_seconds"`
	// QueuedByPriority counts queued runs by priority name.
	QueuedByPriority map[string]int64 `json:"queued_by_priority"`
	// RunningByAgent and RunningByWorkspace count running runs per group.
	RunningByAgent     map[string]int64 `json:"running_by_agent,omitempty"`
	RunningByWorkspace map[string]int64 `json:"running_by_workspace,omitempty"`
	// Limits are the concurrency limits in force (0 = unlimited).
	Limits Limits `json:"limits"`
}

// Limits are the concurrency limits; 0 means unlimited.
type Limits struct {
	Global       int            `json:"max_concurrent"`
	PerAgent     int            `json:"max_per_agent"`
	PerWorkspace int            `json:"max_per_workspace"`
	Agents       map[string]int `json:"agents,omitempty"`
}

// ListParams filters and pages a run listing. Empty filters match everything.
type ListParams struct {
	States    []State
	Recipe    string
	Agent     string
	Workspace string
	SessionID string
	// Page counts from 1; PageSize defaults to 20 and is at most 1000.
	Page     int
	PageSize int
	// After, when set, pages by keyset: runs created before the run with this id.
	After string
	// WithTotal asks for the total count of matching runs.
	WithTotal bool
}

// RunList is one page of runs.
type RunList struct {
	Runs     []*Run `json:"jobs"`
	Total    int64  `json:"total"`
	Page     int    `json:"page"`
	PageSize int    `json:"page_size"`
}

// ClearParams selects runs to delete.
type ClearParams struct {
	// All includes active runs, which are cancelled first.
	All bool
	// OlderThan keeps runs younger than this (by completion, else creation); 0 deletes regardless of age.
	OlderThan time.Duration
	Workspace string
}

// Duration is a time.Duration that reads and writes Go duration strings ("90s") in JSON,
// and also accepts a number of seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "90s" or 90 (seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*d = Duration(f * float64(time.Second))
	return nil
}
