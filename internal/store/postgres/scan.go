package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/spool-run/spool"
)

// runColumns is the column list every query returning runs selects, in scanRun's order.
const runColumns = `seq, id, recipe, agent, workspace, session_id, state, priority, input, config,
metadata, result, error, error_code, progress_pct, progress_step, steps_completed, steps_total,
attempt, max_retries, timeout_sec, retry_of, idempotency_key, idempotency_scope, webhook_url,
webhook_events, schedule_id, scheduled_for, created_at, run_at, available_at, started_at,
completed_at, cancel_requested_at, node`

// runColumnsR is runColumns qualified by the alias r.
var runColumnsR = qualify("r", runColumns)

func qualify(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// scanRun reads one row of runColumns, followed by the extra destinations.
func scanRun(row pgx.Row, extra ...any) (*spool.Run, error) {
	var (
		r                                           spool.Run
		input, config, metadata, result             *string
		scheduledFor, runAt, startedAt, completedAt *time.Time
		cancelRequestedAt                           *time.Time
		state                                       string
		priority                                    int16
		stepsCompleted, stepsTotal                  int32
		attempt, maxRetries, timeoutSec             int32
	)
	dest := []any{&r.Seq, &r.ID, &r.Recipe, &r.Agent, &r.Workspace, &r.SessionID, &state, &priority,
		&input, &config, &metadata, &result, &r.Error, &r.ErrorCode,
		&r.Progress.Percentage, &r.Progress.CurrentStep, &stepsCompleted, &stepsTotal,
		&attempt, &maxRetries, &timeoutSec, &r.RetryOf, &r.IdempotencyKey, &r.IdempotencyScope,
		&r.WebhookURL, &r.WebhookEvents, &r.ScheduleID, &scheduledFor, &r.CreatedAt, &runAt, &r.AvailableAt,
		&startedAt, &completedAt, &cancelRequestedAt, &r.Node}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	r.State = spool.State(state)
	r.Priority = spool.Priority(priority)
	r.Progress.StepsCompleted = int(stepsCompleted)
	r.Progress.StepsTotal = int(stepsTotal)
	r.Attempt, r.MaxRetries, r.TimeoutSec = int(attempt), int(maxRetries), int(timeoutSec)
	r.Input = rawJSON(input)
	r.Config = rawJSON(config)
	r.Result = rawJSON(result)
	if metadata != nil && *metadata != "" {
		if err := json.Unmarshal([]byte(*metadata), &r.Metadata); err != nil {
			return nil, fmt.Errorf("run %s: decode metadata: %w", r.ID, err)
		}
	}
	if len(r.WebhookEvents) == 0 {
		r.WebhookEvents = nil
	}
	r.CreatedAt = r.CreatedAt.UTC()
	r.AvailableAt = r.AvailableAt.UTC()
	r.ScheduledFor = utcPtr(scheduledFor)
	r.RunAt = utcPtr(runAt)
	r.StartedAt = utcPtr(startedAt)
	r.CompletedAt = utcPtr(completedAt)
	r.CancelRequestedAt = utcPtr(cancelRequestedAt)
	return &r, nil
}

// scanRuns reads every row of rows as a run and closes rows.
func scanRuns(rows pgx.Rows, err error) ([]*spool.Run, error) {
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

func rawJSON(s *string) json.RawMessage {
	if s == nil || *s == "" {
		return nil
	}
	return json.RawMessage(*s)
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// nullTime is an optional time as a query argument: NULL when absent or zero.
func nullTime(t *time.Time) pgtype.Timestamptz {
	if t == nil || t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: *t, Valid: true}
}

// jsonText encodes a metadata map as text, "" (stored as NULL) when empty.
func jsonText(m map[string]any) (string, error) {
	if len(m) == 0 {
		return "", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// stateStrings converts states for a text[] argument.
func stateStrings(states []spool.State) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// terminalStates is the SQL list of terminal states.
const terminalStates = `('succeeded', 'failed', 'cancelled')`
