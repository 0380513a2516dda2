package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spool-run/spool"
)

// runColumns is the column list every query returning runs selects, in scanRun's order.
const runColumns = `seq, id, recipe, agent, workspace, session_id, state, priority, input, config,
metadata, result, error, error_code, progress_pct, progress_step, steps_completed, steps_total,
attempt, max_retries, timeout_sec, retry_of, idempotency_key, idempotency_scope, webhook_url,
webhook_events, schedule_id, scheduled_for, created_at, run_at, available_at, started_at,
completed_at, cancel_requested_at, node`

// runScan holds the destinations of one run row. Its fields implement sql.Scanner directly,
// which keeps database/sql off its reflection path (a third of a row's cost otherwise).
type runScan struct {
	r                                                  spool.Run
	priority, attempt, maxRetries, timeout             intCol
	stepsDone, stepsTotal                              intCol
	state                                              textCol
	input, config, metadata, result, hookEvents        jsonCol
	scheduledFor, runAt, startedAt, completedAt, cnReq timeCol
	createdAt, availableAt                             timeCol
	pct                                                floatCol
}

func scanRun(sc scanner) (*spool.Run, error) { return scanRunExtra(sc) }

// scanRunExtra scans runColumns followed by extra columns into extra.
func scanRunExtra(sc scanner, extra ...any) (*spool.Run, error) {
	var s runScan
	r := &s.r
	dest := [40]any{&r.Seq, &r.ID, &r.Recipe, &r.Agent, &r.Workspace, &r.SessionID, &s.state, &s.priority,
		&s.input, &s.config, &s.metadata, &s.result, &r.Error, &r.ErrorCode,
		&s.pct, &r.Progress.CurrentStep, &s.stepsDone, &s.stepsTotal,
		&s.attempt, &s.maxRetries, &s.timeout, &r.RetryOf, &r.IdempotencyKey, &r.IdempotencyScope,
		&r.WebhookURL, &s.hookEvents, &r.ScheduleID, &s.scheduledFor, &s.createdAt, &s.runAt, &s.availableAt,
		&s.startedAt, &s.completedAt, &s.cnReq, &r.Node}
	n := 35 + copy(dest[35:], extra)
	if err := sc.Scan(dest[:n]...); err != nil {
		return nil, err
	}
	r.State = spool.State(s.state)
	r.Priority = spool.Priority(s.priority)
	r.Input, r.Config, r.Result = json.RawMessage(s.input), json.RawMessage(s.config), json.RawMessage(s.result)
	r.Progress.Percentage = float64(s.pct)
	r.Progress.StepsCompleted, r.Progress.StepsTotal = int(s.stepsDone), int(s.stepsTotal)
	r.Attempt, r.MaxRetries, r.TimeoutSec = int(s.attempt), int(s.maxRetries), int(s.timeout)
	if len(s.metadata) > 0 {
		if err := json.Unmarshal(s.metadata, &r.Metadata); err != nil {
			return nil, fmt.Errorf("run %s: decode metadata: %w", r.ID, err)
		}
	}
	if len(s.hookEvents) > 0 {
		if err := json.Unmarshal(s.hookEvents, &r.WebhookEvents); err != nil {
			return nil, fmt.Errorf("run %s: decode webhook_events: %w", r.ID, err)
		}
	}
	r.CreatedAt, r.AvailableAt = s.createdAt.value(), s.availableAt.value()
	r.ScheduledFor, r.RunAt = s.scheduledFor.ptr(), s.runAt.ptr()
	r.StartedAt, r.CompletedAt, r.CancelRequestedAt = s.startedAt.ptr(), s.completedAt.ptr(), s.cnReq.ptr()
	return r, nil
}

// intCol scans an INTEGER column (NULL reads as 0).
type intCol int64

func (c *intCol) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		*c = intCol(v)
	case nil:
		*c = 0
	default:
		return fmt.Errorf("want an integer, got %T", src)
	}
	return nil
}

// floatCol scans a REAL column.
type floatCol float64

func (c *floatCol) Scan(src any) error {
	switch v := src.(type) {
	case float64:
		*c = floatCol(v)
	case int64:
		*c = floatCol(v)
	case nil:
		*c = 0
	default:
		return fmt.Errorf("want a number, got %T", src)
	}
	return nil
}

// textCol scans a TEXT column (NULL reads as "").
type textCol string

func (c *textCol) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*c = textCol(v)
	case []byte:
		*c = textCol(v)
	case nil:
		*c = ""
	default:
		return fmt.Errorf("want text, got %T", src)
	}
	return nil
}

// jsonCol scans a JSON TEXT column (NULL reads as nil).
type jsonCol []byte

func (c *jsonCol) Scan(src any) error {
	switch v := src.(type) {
	case string:
		if v == "" {
			*c = nil
		} else {
			*c = jsonCol(v)
		}
	case []byte:
		*c = append(jsonCol(nil), v...)
	case nil:
		*c = nil
	default:
		return fmt.Errorf("want JSON text, got %T", src)
	}
	return nil
}

// timeCol scans a unix-microseconds INTEGER column that may be NULL.
type timeCol struct {
	us    int64
	valid bool
}

func (c *timeCol) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		c.us, c.valid = v, true
	case nil:
		c.valid = false
	default:
		return fmt.Errorf("want a time in microseconds, got %T", src)
	}
	return nil
}

func (c timeCol) value() time.Time {
	if !c.valid {
		return time.Time{}
	}
	return fromMicros(c.us)
}

func (c timeCol) ptr() *time.Time {
	if !c.valid {
		return nil
	}
	t := fromMicros(c.us)
	return &t
}

// scanRuns reads every row of rows as a run and closes rows.
func scanRuns(rows *sql.Rows, err error) ([]*spool.Run, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []*spool.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

// micros converts t to unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros is micros for an optional time, nil (NULL) when absent.
func nullMicros(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// nullText stores JSON bytes as TEXT, NULL when empty.
func nullText(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// jsonText encodes v as TEXT, NULL for nil or empty values.
func jsonText(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return nil, nil
		}
	case []string:
		if len(x) == 0 {
			return nil, nil
		}
	case nil:
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// notFound is the error for a missing run.
func notFound(id string) error {
	return &spool.Error{Code: spool.CodeNotFound, Message: fmt.Sprintf("run %s not found", id)}
}

// conflict is the error for an action the run's state does not allow.
func conflict(id string, state spool.State, action string) error {
	return &spool.Error{
		Code:    spool.CodeConflict,
		Message: fmt.Sprintf("cannot %s run %s: it is %s", action, id, state),
		State:   state,
	}
}

// isNoRows reports whether err is sql.ErrNoRows.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// jsonList encodes a list of strings or ints as a JSON array for json_each.
func jsonList[T any](xs []T) string {
	if len(xs) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(xs)
	return string(b)
}
