package httpapi

import (
	"encoding/json"
	"math"
	"time"

	"github.com/spool-run/spool"
)

// runPrefix is the path of the runs collection; a run's poll_url is runPrefix + "/" + id.
const runPrefix = "/api/v1/runs"

// runView is a run as the API shows it: spool.Run plus the fields the server derives. The
// outer fields shadow the embedded ones of the same JSON name.
type runView struct {
	*spool.Run
	RunID string `json:"run_id"`
	// Result, Error and ErrorCode are always present (null when unset), as PraisonAI's
	// clients expect.
	Result          json.RawMessage `json:"result"`
	Error           *string         `json:"error"`
	ErrorCode       *string         `json:"error_code"`
	DurationSeconds *float64        `json:"duration_seconds"`
	WaitSeconds     float64         `json:"wait_seconds"`
	// RetryAfter is how many seconds a backing-off queued run waits before it may start.
	RetryAfter *float64 `json:"retry_after"`
	PollURL    string   `json:"poll_url"`
	StreamURL  string   `json:"stream_url"`
}

func newRunView(r *spool.Run, now time.Time) *runView {
	v := &runView{
		Run:             r,
		RunID:           r.ID,
		Result:          r.Result,
		DurationSeconds: r.DurationSeconds(now),
		WaitSeconds:     r.WaitSeconds(),
		PollURL:         runPrefix + "/" + r.ID,
		StreamURL:       runPrefix + "/" + r.ID + "/stream",
	}
	if len(v.Result) == 0 {
		v.Result = json.RawMessage("null")
	}
	if r.State == spool.StateFailed || r.State == spool.StateCancelled {
		if r.Error != "" {
			v.Error = &r.Error
		}
		if r.ErrorCode != "" {
			v.ErrorCode = &r.ErrorCode
		}
	}
	if r.State == spool.StateQueued && r.AvailableAt.After(now) {
		secs := math.Ceil(r.AvailableAt.Sub(now).Seconds()*1000) / 1000
		v.RetryAfter = &secs
	}
	return v
}

func runViews(runs []*spool.Run, now time.Time) []*runView {
	out := make([]*runView, len(runs))
	for i, r := range runs {
		out[i] = newRunView(r, now)
	}
	return out
}

// resultView is the answer of GET /api/v1/runs/{id}/result.
type resultView struct {
	JobID           string          `json:"job_id"`
	Status          spool.State     `json:"status"`
	Result          json.RawMessage `json:"result"`
	Error           *string         `json:"error"`
	ErrorCode       *string         `json:"error_code"`
	Metrics         resultMetrics   `json:"metrics"`
	CreatedAt       time.Time       `json:"created_at"`
	StartedAt       *time.Time      `json:"started_at"`
	CompletedAt     *time.Time      `json:"completed_at"`
	DurationSeconds *float64        `json:"duration_seconds"`
}

type resultMetrics struct {
	Attempt         int      `json:"attempt"`
	WaitSeconds     float64  `json:"wait_seconds"`
	DurationSeconds *float64 `json:"duration_seconds"`
}

func newResultView(r *spool.Run, now time.Time) *resultView {
	rv := newRunView(r, now)
	return &resultView{
		JobID: r.ID, Status: r.State, Result: rv.Result, Error: rv.Error, ErrorCode: rv.ErrorCode,
		Metrics:   resultMetrics{Attempt: r.Attempt, WaitSeconds: rv.WaitSeconds, DurationSeconds: rv.DurationSeconds},
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
		DurationSeconds: rv.DurationSeconds,
	}
}

// eventView is an event as the API and the SSE stream show it: spool.Event with the
// progress fields also at the top level (percentage, current_step, steps_completed,
// steps_total), where PraisonAI's stream put them.
type eventView struct {
	*spool.Event
	Percentage     *float64 `json:"percentage,omitempty"`
	CurrentStep    *string  `json:"current_step,omitempty"`
	StepsCompleted *int     `json:"steps_completed,omitempty"`
	StepsTotal     *int     `json:"steps_total,omitempty"`
}

func newEventView(ev *spool.Event) *eventView {
	v := &eventView{Event: ev}
	if p := ev.Progress; p != nil {
		v.Percentage, v.CurrentStep = &p.Percentage, &p.CurrentStep
		v.StepsCompleted, v.StepsTotal = &p.StepsCompleted, &p.StepsTotal
	}
	return v
}
