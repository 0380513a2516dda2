package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spool-run/spool"
)

const (
	eventColumns = `run_id, seq, type, ts, text, status, result, error, error_code, attempt, progress`
	// sqlEventInsert ignores an event whose seq is already stored: a late event of an
	// attempt whose run was rescued must not fail the batch it travels in.
	sqlEventInsert = `INSERT INTO events (` + eventColumns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	// sqlEventInsertNext numbers the event after the run's last one.
	sqlEventInsertNext = `INSERT INTO events (` + eventColumns + `)
VALUES (?1, coalesce((SELECT max(seq) FROM events WHERE run_id = ?1), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
RETURNING seq`
	// sqlStatusEvents writes one status event with each listed run's (by seq) current state.
	sqlStatusEvents = `INSERT INTO events (run_id, seq, type, ts, status, attempt)
SELECT r.id, coalesce((SELECT max(e.seq) FROM events AS e WHERE e.run_id = r.id), 0) + 1, 'status', ?1, r.state, r.attempt
FROM runs AS r WHERE r.seq IN (SELECT value FROM json_each(?2))
RETURNING run_id, seq`
	sqlProgress = `UPDATE runs SET progress_pct = ?, progress_step = ?, steps_completed = ?, steps_total = ?
WHERE id = ? AND +state = 'running'`
)

// eventArgs are e's values in eventColumns order, without run_id and seq.
func eventArgs(e *spool.Event) ([]any, error) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	var progress any
	if e.Progress != nil {
		b, err := json.Marshal(e.Progress)
		if err != nil {
			return nil, fmt.Errorf("encode progress: %w", err)
		}
		progress = string(b)
	}
	var attempt any
	if e.Attempt != 0 {
		attempt = int64(e.Attempt)
	}
	return []any{string(e.Type), micros(e.Time), nullStr(e.Text), nullStr(string(e.Status)), nullText(e.Result),
		nullStr(e.Error), nullStr(e.ErrorCode), attempt, progress}, nil
}

// insertEvent stores e; a zero e.Seq is set to the run's next number.
func insertEvent(tx *wtx, e *spool.Event) error {
	args, err := eventArgs(e)
	if err != nil {
		return err
	}
	if e.Seq == 0 {
		return tx.queryRow(sqlEventInsertNext, append([]any{e.RunID}, args...)...).Scan(&e.Seq)
	}
	_, err = tx.exec(sqlEventInsert, append([]any{e.RunID, e.Seq}, args...)...)
	return err
}

// statusEvents writes a status event (with its current state) for each run whose seq is in
// seqs (a JSON array) and returns the event seq each run's event got.
func statusEvents(tx *wtx, seqs string, now time.Time) (map[string]int64, error) {
	rows, err := tx.query(sqlStatusEvents, micros(now), seqs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			id  string
			seq int64
		)
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		out[id] = seq
	}
	return out, rows.Err()
}

// eventChunk is how many numbered events one INSERT statement stores.
const eventChunk = 32

// sqlEventInsertRows returns the INSERT of n numbered events.
func sqlEventInsertRows(n int) string {
	if n == 1 {
		return sqlEventInsert
	}
	return `INSERT INTO events (` + eventColumns + `) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", n), ", ") + ` ON CONFLICT DO NOTHING`
}

// runProgress is the last progress a batch of events reported for a run.
type runProgress struct {
	id       string
	progress *spool.Progress
}

// appendEvents stores events (numbered ones eventChunk to a statement) and returns the last
// progress event of each run, for the caller to apply (applyProgress, or a finish).
func appendEvents(tx *wtx, events []*spool.Event) ([]runProgress, error) {
	var (
		progress []runProgress
		index    map[string]int // run id -> its place in progress
		rows     int
		args     []any
	)
	flush := func() error {
		if rows == 0 {
			return nil
		}
		_, err := tx.exec(sqlEventInsertRows(rows), args...)
		rows, args = 0, args[:0]
		return err
	}
	for _, e := range events {
		if e.Seq == 0 {
			// Numbered from the stored events: store the ones before it first.
			if err := flush(); err != nil {
				return nil, err
			}
			if err := insertEvent(tx, e); err != nil {
				return nil, fmt.Errorf("event of run %s: %w", e.RunID, err)
			}
		} else {
			ea, err := eventArgs(e)
			if err != nil {
				return nil, fmt.Errorf("event %s/%d: %w", e.RunID, e.Seq, err)
			}
			args = append(append(args, e.RunID, e.Seq), ea...)
			if rows++; rows == eventChunk {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
		if e.Type == spool.EventProgress && e.Progress != nil {
			if index == nil {
				index = map[string]int{}
			}
			i, ok := index[e.RunID]
			if !ok {
				i = len(progress)
				index[e.RunID] = i
				progress = append(progress, runProgress{id: e.RunID})
			}
			progress[i].progress = e.Progress
		}
	}
	return progress, flush()
}

// applyProgress sets the progress of the runs that are running.
func applyProgress(tx *wtx, progress []runProgress) error {
	for _, p := range progress {
		pr := p.progress
		if pr == nil {
			continue // applied by a finish
		}
		if _, err := tx.exec(sqlProgress, pr.Percentage, pr.CurrentStep, pr.StepsCompleted, pr.StepsTotal, p.id); err != nil {
			return err
		}
	}
	return nil
}

// EventAppend stores events in one transaction. An event with Seq 0 is numbered after its
// run's last event (and the number is written back into it).
func (s *Store) EventAppend(ctx context.Context, events []*spool.Event) error {
	if len(events) == 0 {
		return nil
	}
	return wrap("append events", s.write(ctx, func(tx *wtx) error {
		progress, err := appendEvents(tx, events)
		if err != nil {
			return err
		}
		return applyProgress(tx, progress)
	}))
}

const (
	sqlEventList = `SELECT ` + eventColumns + ` FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`
)

// EventList returns a run's events after afterSeq, in order, at most limit (0 = all).
func (s *Store) EventList(ctx context.Context, runID string, afterSeq int64, limit int) ([]*spool.Event, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.queryRead(ctx, sqlEventList, runID, afterSeq, limit)
	if err != nil {
		return nil, wrap("list events", err)
	}
	defer rows.Close()
	var out []*spool.Event
	for rows.Next() {
		var (
			e                          spool.Event
			typ                        string
			ts                         int64
			text, status, errMsg, code sql.NullString
			result, progress           []byte
			attempt                    sql.NullInt64
		)
		if err := rows.Scan(&e.RunID, &e.Seq, &typ, &ts, &text, &status, &result, &errMsg, &code, &attempt, &progress); err != nil {
			return nil, wrap("list events", err)
		}
		e.Type = spool.EventType(typ)
		e.Time = fromMicros(ts)
		e.Text = text.String
		e.Status = spool.State(status.String)
		e.Result = rawJSON(result)
		e.Error = errMsg.String
		e.ErrorCode = code.String
		e.Attempt = int(attempt.Int64)
		if len(progress) > 0 {
			e.Progress = new(spool.Progress)
			if err := json.Unmarshal(progress, e.Progress); err != nil {
				return nil, wrap("list events", fmt.Errorf("event %s/%d: decode progress: %w", e.RunID, e.Seq, err))
			}
		}
		out = append(out, &e)
	}
	return out, wrap("list events", rows.Err())
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// EventDropOutput deletes a run's output events with seq <= throughSeq.
func (s *Store) EventDropOutput(ctx context.Context, runID string, throughSeq int64) error {
	return wrap("drop output events", s.write(ctx, func(tx *wtx) error {
		_, err := tx.exec(`DELETE FROM events WHERE run_id = ? AND seq <= ? AND type = 'output'`, runID, throughSeq)
		return err
	}))
}
