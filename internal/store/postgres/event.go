package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool"
)

// EventAppend stores events in one transaction (one round trip): the events, the progress
// of runs that reported some, and one TopicEvent notification per run. Events keep their
// Seq; an event with Seq 0 gets the run's next number (and Seq is set). An event whose
// (run, seq) is already stored, or whose run does not exist, is skipped.
func (s *Store) EventAppend(ctx context.Context, events []*spool.Event) error {
	if len(events) == 0 {
		return nil
	}
	err := retry(ctx, func() error {
		if err := fillSeqs(ctx, s.pool, events); err != nil {
			return err
		}
		var b pgx.Batch
		var n notes
		if err := queueEvents(&b, events, &n, nil); err != nil {
			return err
		}
		n.queue(&b, s.channel)
		return s.pool.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: append events: %w", err)
	}
	return nil
}

// fillSeqs numbers the events that have no Seq, after the run's last stored event.
func fillSeqs(ctx context.Context, q querier, events []*spool.Event) error {
	var ids []string
	seen := map[string]bool{}
	for _, ev := range events {
		if ev.Seq == 0 && !seen[ev.RunID] {
			seen[ev.RunID] = true
			ids = append(ids, ev.RunID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	last, err := lastSeqs(ctx, q, ids)
	if err != nil {
		return err
	}
	for _, ev := range events {
		if ev.Seq > last[ev.RunID] {
			last[ev.RunID] = ev.Seq
		}
	}
	for _, ev := range events {
		if ev.Seq == 0 {
			last[ev.RunID]++
			ev.Seq = last[ev.RunID]
		}
	}
	return nil
}

// lastSeqs returns the last stored event seq of each run (0 for none).
func lastSeqs(ctx context.Context, q querier, ids []string) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT id, (SELECT coalesce(max(seq), 0) FROM events WHERE run_id = id)
		FROM unnest($1::text[]) AS id`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	last := make(map[string]int64, len(ids))
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		last[id] = seq
	}
	return last, rows.Err()
}

const insertEventsSQL = `INSERT INTO events (run_id, seq, type, ts, body, status, result, error, error_code, attempt, progress)
SELECT e.run_id, e.seq, e.type, e.ts, e.body, e.status, nullif(e.result, ''), e.error, e.error_code, e.attempt,
	nullif(e.progress, '')
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
	$8::text[], $9::text[], $10::int[], $11::text[])
	AS e(run_id, seq, type, ts, body, status, result, error, error_code, attempt, progress)
WHERE EXISTS (SELECT 1 FROM runs WHERE runs.id = e.run_id)
ON CONFLICT (run_id, seq) DO NOTHING`

const updateProgressSQL = `UPDATE runs r
SET progress_pct = p.pct, progress_step = p.step, steps_completed = p.done, steps_total = p.total
FROM unnest($1::text[], $2::float8[], $3::text[], $4::int[], $5::int[]) AS p(id, pct, step, done, total)
WHERE r.id = p.id AND r.state NOT IN ` + terminalStates

// queueEvents adds to b the statements storing events and the progress they report, and
// notes a TopicEvent notification per run. The progress of the runs in ended is not
// updated: their row was updated with it already.
func queueEvents(b *pgx.Batch, events []*spool.Event, n *notes, ended map[string]*spool.Run) error {
	if len(events) == 0 {
		return nil
	}
	k := len(events)
	var (
		runIDs   = make([]string, k)
		seqs     = make([]int64, k)
		types    = make([]string, k)
		times    = make([]time.Time, k)
		bodies   = make([]string, k)
		statuses = make([]string, k)
		results  = make([]string, k)
		errs     = make([]string, k)
		codes    = make([]string, k)
		attempts = make([]int32, k)
		progress = make([]string, k)
	)
	// The latest progress of each run, by seq.
	type prog struct {
		seq int64
		p   *spool.Progress
	}
	latest := map[string]prog{}
	var progIDs []string
	for i, ev := range events {
		runIDs[i], seqs[i], types[i] = ev.RunID, ev.Seq, string(ev.Type)
		times[i] = ev.Time
		if times[i].IsZero() {
			times[i] = time.Now()
		}
		bodies[i], statuses[i], results[i] = ev.Text, string(ev.Status), string(ev.Result)
		errs[i], codes[i], attempts[i] = ev.Error, ev.ErrorCode, int32(ev.Attempt)
		if ev.Progress != nil {
			b, err := json.Marshal(ev.Progress)
			if err != nil {
				return fmt.Errorf("encode progress of run %s: %w", ev.RunID, err)
			}
			progress[i] = string(b)
			if ev.Type == spool.EventProgress && ended[ev.RunID] == nil {
				if cur, ok := latest[ev.RunID]; !ok || ev.Seq >= cur.seq {
					if !ok {
						progIDs = append(progIDs, ev.RunID)
					}
					latest[ev.RunID] = prog{ev.Seq, ev.Progress}
				}
			}
		}
		n.event(ev.RunID)
	}
	b.Queue(insertEventsSQL, runIDs, seqs, types, times, bodies, statuses, results, errs, codes, attempts, progress)
	if len(progIDs) > 0 {
		pcts := make([]float64, len(progIDs))
		steps := make([]string, len(progIDs))
		done := make([]int32, len(progIDs))
		total := make([]int32, len(progIDs))
		for i, id := range progIDs {
			p := latest[id].p
			pcts[i], steps[i], done[i], total[i] = p.Percentage, p.CurrentStep, int32(p.StepsCompleted), int32(p.StepsTotal)
		}
		b.Queue(updateProgressSQL, progIDs, pcts, steps, done, total)
	}
	return nil
}

// EventList returns a run's events with seq > afterSeq in order, at most limit (0 = all).
func (s *Store) EventList(ctx context.Context, runID string, afterSeq int64, limit int) ([]*spool.Event, error) {
	var lim any
	if limit > 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, `SELECT run_id, seq, type, ts, body, status, result, error, error_code, attempt, progress
		FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, runID, afterSeq, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: list events of run %s: %w", runID, err)
	}
	defer rows.Close()
	var events []*spool.Event
	for rows.Next() {
		var (
			ev               spool.Event
			typ, status      string
			result, progress *string
			attempt          int32
		)
		if err := rows.Scan(&ev.RunID, &ev.Seq, &typ, &ev.Time, &ev.Text, &status, &result, &ev.Error,
			&ev.ErrorCode, &attempt, &progress); err != nil {
			return nil, fmt.Errorf("postgres: list events of run %s: %w", runID, err)
		}
		ev.Type, ev.Status, ev.Attempt = spool.EventType(typ), spool.State(status), int(attempt)
		ev.Time = ev.Time.UTC()
		ev.Result = rawJSON(result)
		if progress != nil && *progress != "" {
			ev.Progress = new(spool.Progress)
			if err := json.Unmarshal([]byte(*progress), ev.Progress); err != nil {
				return nil, fmt.Errorf("postgres: run %s event %d: decode progress: %w", runID, ev.Seq, err)
			}
		}
		events = append(events, &ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list events of run %s: %w", runID, err)
	}
	return events, nil
}

// statusEvent is a status event the store writes itself (insert, claim, cancel, pause,
// resume, promote, rescue), numbered seq.
func statusEvent(runID string, seq int64, now time.Time, st spool.State, attempt int) *spool.Event {
	return &spool.Event{RunID: runID, Seq: seq, Type: spool.EventStatus, Time: now, Status: st, Attempt: attempt}
}

// EventDropOutput deletes a run's output events with seq <= throughSeq.
func (s *Store) EventDropOutput(ctx context.Context, runID string, throughSeq int64) error {
	return retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM events WHERE run_id = $1 AND seq <= $2 AND type = 'output'`, runID, throughSeq)
		return err
	})
}
