package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// end is one running run leaving the running state: terminal, or queued again.
type end struct {
	id          string
	state       spool.State
	result      json.RawMessage
	err, code   string
	progress    *spool.Progress
	now         time.Time
	availableAt time.Time
	keepAttempt bool
}

var endRunsSQL = `UPDATE runs r SET
	state = f.state,
	result = nullif(f.result, ''),
	error = f.error,
	error_code = f.code,
	progress_pct = CASE WHEN f.has_progress THEN f.pct ELSE r.progress_pct END,
	progress_step = CASE WHEN f.has_progress THEN f.step ELSE r.progress_step END,
	steps_completed = CASE WHEN f.has_progress THEN f.done ELSE r.steps_completed END,
	steps_total = CASE WHEN f.has_progress THEN f.total ELSE r.steps_total END,
	completed_at = CASE WHEN f.state = 'queued' THEN NULL ELSE f.now END,
	available_at = CASE WHEN f.state = 'queued' THEN f.available_at ELSE r.available_at END,
	attempt = CASE WHEN f.state = 'queued' AND f.keep_attempt THEN r.attempt - 1 ELSE r.attempt END,
	node = CASE WHEN f.state = 'queued' THEN '' ELSE r.node END,
	lease_until = NULL
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::float8[],
	$8::text[], $9::int[], $10::int[], $11::timestamptz[], $12::timestamptz[], $13::bool[])
	AS f(id, state, result, error, code, has_progress, pct, step, done, total, now, available_at, keep_attempt)
WHERE r.id = f.id AND r.state = 'running'
RETURNING ` + runColumnsR + `, r.purge_on_finish`

// endRuns stores evs, then applies ends to runs the transaction has locked, then what follows
// each end: webhook deliveries and run_totals for terminal runs, deletion of runs a clear
// asked to purge, and notifications (TopicFinish for terminal runs, TopicSubmit for
// re-queued ones, TopicEvent for runs with new events). It returns the ended runs by id.
func (s *Store) endRuns(ctx context.Context, tx pgx.Tx, evs []*spool.Event, ends []end) (map[string]*spool.Run, error) {
	var (
		n     notes
		b     pgx.Batch
		out   = make(map[string]*spool.Run, len(ends))
		purge []string
	)
	if err := queueEvents(&b, evs, &n); err != nil {
		return nil, err
	}
	if len(ends) > 0 {
		k := len(ends)
		var (
			ids, states, results, errs, codes, steps = make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
			hasProgress, keep                        = make([]bool, k), make([]bool, k)
			pcts                                     = make([]float64, k)
			done, total                              = make([]int32, k), make([]int32, k)
			nows, available                          = make([]time.Time, k), make([]time.Time, k)
		)
		for i, e := range ends {
			ids[i], states[i], results[i], errs[i], codes[i] = e.id, string(e.state), string(e.result), e.err, e.code
			if p := e.progress; p != nil {
				hasProgress[i], pcts[i], steps[i], done[i], total[i] = true, p.Percentage, p.CurrentStep, int32(p.StepsCompleted), int32(p.StepsTotal)
			}
			nows[i], available[i], keep[i] = e.now, e.availableAt, e.keepAttempt
			if nows[i].IsZero() {
				nows[i] = time.Now()
			}
			if available[i].IsZero() {
				available[i] = nows[i]
			}
		}
		b.Queue(endRunsSQL, ids, states, results, errs, codes, hasProgress, pcts, steps, done, total, nows, available, keep).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var purged bool
					r, err := scanRun(rows, &purged)
					if err != nil {
						return err
					}
					out[r.ID] = r
					if purged && r.State.IsTerminal() {
						purge = append(purge, r.ID)
					}
				}
				return rows.Err()
			})
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return nil, err
	}

	var terminal []*spool.Run
	for _, r := range out {
		if r.State.IsTerminal() {
			terminal = append(terminal, r)
		} else {
			n.runnable()
		}
	}
	slices.SortFunc(terminal, func(a, b *spool.Run) int { return strings.Compare(a.ID, b.ID) })
	var b2 pgx.Batch
	if err := queueEnded(&b2, terminal, time.Now(), &n); err != nil {
		return nil, err
	}
	if len(purge) > 0 {
		b2.Queue(deleteRunsSQL(`id = ANY($1)`), purge)
	}
	n.queue(&b2, s.channel)
	if b2.Len() > 0 {
		if err := tx.SendBatch(ctx, &b2).Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lockedRun is the part of a run a finish checks its guard against.
type lockedRun struct {
	state           spool.State
	node            string
	attempt         int
	cancelRequested bool
}

// RunFinishMany appends events, then applies each finish whose run is still running on
// p.Node with p.Attempt, all in one transaction. Finishes whose guard fails change nothing,
// and the events of their runs in this call are dropped: that attempt was already given up
// (rescued, or finished by someone else). A run with a cancel requested always ends
// cancelled, whatever the finish says (its result, error or status events in this call are
// rewritten to match), so a cancel that raced the end of a run still wins.
func (s *Store) RunFinishMany(ctx context.Context, events []*spool.Event, ps []*store.RunFinishParams) ([]*spool.Run, error) {
	for _, p := range ps {
		if !p.State.IsTerminal() && p.State != spool.StateQueued {
			return nil, fmt.Errorf("postgres: finish run %s: state %q is not terminal or queued", p.ID, p.State)
		}
	}
	out := make([]*spool.Run, len(ps))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		clear(out)
		locked := map[string]lockedRun{}
		if len(ps) > 0 {
			ids := make([]string, len(ps))
			for i, p := range ps {
				ids[i] = p.ID
			}
			rows, err := tx.Query(ctx, `SELECT id, state, node, attempt, cancel_requested_at IS NOT NULL
				FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id, st string
				var l lockedRun
				var attempt int32
				if err := rows.Scan(&id, &st, &l.node, &attempt, &l.cancelRequested); err != nil {
					rows.Close()
					return err
				}
				l.state, l.attempt = spool.State(st), int(attempt)
				locked[id] = l
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		var (
			ends      []end
			index     = map[string]int{} // run id -> index in ps of its applied finish
			void      = map[string]bool{}
			cancelled = map[string]bool{}
		)
		for i, p := range ps {
			l, ok := locked[p.ID]
			if _, dup := index[p.ID]; dup || !ok || l.state != spool.StateRunning || l.node != p.Node || l.attempt != p.Attempt {
				void[p.ID] = true
				continue
			}
			index[p.ID] = i
			e := end{id: p.ID, state: p.State, result: p.Result, err: p.Error, code: p.ErrorCode, progress: p.Progress,
				now: p.Now, availableAt: p.AvailableAt, keepAttempt: p.KeepAttempt}
			if l.cancelRequested && p.State != spool.StateCancelled {
				e.state, e.result, e.err, e.code, e.keepAttempt = spool.StateCancelled, nil, "cancelled", spool.CodeCancelled, false
				cancelled[p.ID] = true
			}
			ends = append(ends, e)
		}
		evs := make([]*spool.Event, 0, len(events))
		for _, ev := range events {
			if _, applied := index[ev.RunID]; void[ev.RunID] && !applied {
				continue
			}
			if cancelled[ev.RunID] {
				ev = asCancelled(ev)
			}
			evs = append(evs, ev)
		}
		if err := fillSeqs(ctx, tx, evs); err != nil {
			return err
		}
		runs, err := s.endRuns(ctx, tx, evs, ends)
		if err != nil {
			return err
		}
		for id, i := range index {
			out[i] = runs[id]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: finish %d runs: %w", len(ps), err)
	}
	return out, nil
}

// asCancelled rewrites an event of a run whose finish was turned into a cancel: its
// terminal event becomes a cancelled event and its status a cancelled status.
func asCancelled(ev *spool.Event) *spool.Event {
	switch {
	case ev.Type.IsTerminal() && ev.Type != spool.EventCancelled:
		c := *ev
		c.Type, c.Result, c.Error, c.ErrorCode = spool.EventCancelled, nil, "cancelled", spool.CodeCancelled
		return &c
	case ev.Type == spool.EventStatus && ev.Status != spool.StateCancelled && ev.Status != spool.StateRunning:
		c := *ev
		c.Status = spool.StateCancelled
		return &c
	}
	return ev
}

// interrupted is the error of a run whose node stopped while running it.
func interrupted(node string) string { return "node " + node + " stopped while running the run" }

// RunRescue ends runs left running by dead nodes: those whose lease expired before Now (or,
// with AllRunning, every running run). A run with a cancel requested ends cancelled; else it
// is re-queued in its original place when attempt <= max_retries, else it fails with
// spool.CodeInterrupted. Runs other nodes are rescuing at the same time are skipped.
func (s *Store) RunRescue(ctx context.Context, p *store.RunRescueParams) ([]*spool.Run, error) {
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	var rescued []*spool.Run
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rescued = nil
		rows, err := tx.Query(ctx, `SELECT id, node, attempt, max_retries, cancel_requested_at IS NOT NULL,
				(SELECT coalesce(max(seq), 0) FROM events e WHERE e.run_id = runs.id)
			FROM runs WHERE state = 'running' AND ($1 OR lease_until < $2 OR lease_until IS NULL)
			ORDER BY id FOR UPDATE SKIP LOCKED`, p.AllRunning, now)
		if err != nil {
			return err
		}
		var (
			ends []end
			evs  []*spool.Event
		)
		for rows.Next() {
			var (
				id, node            string
				attempt, maxRetries int32
				cancelReq           bool
				last                int64
			)
			if err := rows.Scan(&id, &node, &attempt, &maxRetries, &cancelReq, &last); err != nil {
				rows.Close()
				return err
			}
			e := end{id: id, now: now, availableAt: now}
			switch {
			case cancelReq:
				e.state, e.err, e.code = spool.StateCancelled, "cancelled", spool.CodeCancelled
				evs = append(evs, statusEvent(id, last+1, now, e.state, int(attempt)),
					&spool.Event{RunID: id, Seq: last + 2, Type: spool.EventCancelled, Time: now, Error: e.err, ErrorCode: e.code, Attempt: int(attempt)})
			case attempt <= maxRetries:
				e.state, e.err, e.code = spool.StateQueued, interrupted(node), spool.CodeInterrupted
				evs = append(evs, statusEvent(id, last+1, now, e.state, int(attempt)))
			default:
				e.state, e.err, e.code = spool.StateFailed, interrupted(node), spool.CodeInterrupted
				evs = append(evs, statusEvent(id, last+1, now, e.state, int(attempt)),
					&spool.Event{RunID: id, Seq: last + 2, Type: spool.EventError, Time: now, Error: e.err, ErrorCode: e.code, Attempt: int(attempt)})
			}
			ends = append(ends, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ends) == 0 {
			return nil
		}
		runs, err := s.endRuns(ctx, tx, evs, ends)
		if err != nil {
			return err
		}
		for _, e := range ends {
			if r := runs[e.id]; r != nil {
				rescued = append(rescued, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: rescue runs: %w", err)
	}
	return rescued, nil
}
