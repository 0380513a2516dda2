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

// end is one running run leaving the running state: terminal, or queued again. With a
// node set, it applies only while the run is running on that node with that attempt.
type end struct {
	id          string
	state       spool.State
	result      json.RawMessage
	err, code   string
	progress    *spool.Progress
	now         time.Time
	availableAt time.Time
	keepAttempt bool
	node        string
	attempt     int
}

// endRunsSQL applies ends to running runs. An end whose guard fails (the run is not running
// on f.node with f.attempt) changes nothing. A run with a cancel requested ends cancelled
// whatever the end says (c below), and the last column tells which runs that happened to.
var endRunsSQL = `UPDATE runs r SET
	state = CASE WHEN ` + cancelWins + ` THEN 'cancelled' ELSE f.state END,
	result = CASE WHEN ` + cancelWins + ` THEN NULL ELSE nullif(f.result, '') END,
	error = CASE WHEN ` + cancelWins + ` THEN 'cancelled' ELSE f.error END,
	error_code = CASE WHEN ` + cancelWins + ` THEN 'cancelled' ELSE f.code END,
	progress_pct = CASE WHEN f.has_progress THEN f.pct ELSE r.progress_pct END,
	progress_step = CASE WHEN f.has_progress THEN f.step ELSE r.progress_step END,
	steps_completed = CASE WHEN f.has_progress THEN f.done ELSE r.steps_completed END,
	steps_total = CASE WHEN f.has_progress THEN f.total ELSE r.steps_total END,
	completed_at = CASE WHEN ` + requeued + ` THEN NULL ELSE f.now END,
	available_at = CASE WHEN ` + requeued + ` THEN f.available_at ELSE r.available_at END,
	attempt = CASE WHEN ` + requeued + ` AND f.keep_attempt THEN r.attempt - 1 ELSE r.attempt END,
	node = CASE WHEN ` + requeued + ` THEN '' ELSE r.node END,
	lease_until = NULL
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::float8[],
	$8::text[], $9::int[], $10::int[], $11::timestamptz[], $12::timestamptz[], $13::bool[], $14::text[], $15::int[])
	AS f(id, state, result, error, code, has_progress, pct, step, done, total, now, available_at, keep_attempt, node, attempt)
WHERE r.id = f.id AND r.state = 'running' AND (f.node = '' OR (r.node = f.node AND r.attempt = f.attempt))
RETURNING ` + runColumnsR + `, r.purge_on_finish, r.state = 'cancelled' AND f.state <> 'cancelled'`

const (
	cancelWins = `(r.cancel_requested_at IS NOT NULL AND f.state <> 'cancelled')`
	requeued   = `(f.state = 'queued' AND r.cancel_requested_at IS NULL)`
)

// endRuns applies ends (which must name distinct runs) and returns the ended runs by id and
// the ids of those a cancel request turned into cancels. Then it stores the events that
// eventsFor returns for that outcome, and what follows each end: webhook deliveries and
// run_totals for terminal runs, deletion of runs a clear asked to purge, and notifications
// (TopicFinish for terminal runs, TopicSubmit for re-queued ones, TopicEvent for runs with
// new events). Two round trips: the update, then everything else.
func (s *Store) endRuns(ctx context.Context, tx pgx.Tx, ends []end,
	eventsFor func(ended map[string]*spool.Run, cancelled map[string]bool) []*spool.Event) (map[string]*spool.Run, error) {
	var (
		n         notes
		out       = make(map[string]*spool.Run, len(ends))
		cancelled = map[string]bool{}
		purge     []string
	)
	if len(ends) > 0 {
		k := len(ends)
		var (
			ids, states, results, errs, codes, steps, nodes = make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
			hasProgress, keep                               = make([]bool, k), make([]bool, k)
			pcts                                            = make([]float64, k)
			done, total, attempts                           = make([]int32, k), make([]int32, k), make([]int32, k)
			nows, available                                 = make([]time.Time, k), make([]time.Time, k)
		)
		for i, e := range ends {
			ids[i], states[i], results[i], errs[i], codes[i] = e.id, string(e.state), string(e.result), e.err, e.code
			if p := e.progress; p != nil {
				hasProgress[i], pcts[i], steps[i], done[i], total[i] = true, p.Percentage, p.CurrentStep, int32(p.StepsCompleted), int32(p.StepsTotal)
			}
			nows[i], available[i], keep[i] = e.now, e.availableAt, e.keepAttempt
			nodes[i], attempts[i] = e.node, int32(e.attempt)
			if nows[i].IsZero() {
				nows[i] = time.Now()
			}
			if available[i].IsZero() {
				available[i] = nows[i]
			}
		}
		rows, err := tx.Query(ctx, endRunsSQL, ids, states, results, errs, codes, hasProgress, pcts, steps, done, total, nows, available, keep, nodes, attempts)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var purged, wasCancelled bool
			r, err := scanRun(rows, &purged, &wasCancelled)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[r.ID] = r
			if wasCancelled {
				cancelled[r.ID] = true
			}
			if purged && r.State.IsTerminal() {
				purge = append(purge, r.ID)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}

	var b pgx.Batch
	if err := queueEvents(&b, eventsFor(out, cancelled), &n, out); err != nil {
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
	if err := queueEnded(&b, terminal, time.Now(), &n); err != nil {
		return nil, err
	}
	if len(purge) > 0 {
		b.Queue(deleteRunsSQL(`id = ANY($1)`), purge)
	}
	n.queue(&b, s.channel)
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lockedRun is the attempt of a running run: its node and attempt number.
type lockedRun struct {
	node    string
	attempt int
}

// dupHolders locks the runs that ps finishes more than once and returns the attempt each
// is running (the zero lockedRun for one not running), so that only the finish whose guard
// holds is applied. Without duplicates it returns nil and costs nothing.
func dupHolders(ctx context.Context, tx pgx.Tx, ps []*store.RunFinishParams) (map[string]lockedRun, error) {
	seen := make(map[string]bool, len(ps))
	var dups []string
	for _, p := range ps {
		if seen[p.ID] {
			dups = append(dups, p.ID)
		}
		seen[p.ID] = true
	}
	if len(dups) == 0 {
		return nil, nil
	}
	holders := make(map[string]lockedRun, len(dups))
	for _, id := range dups {
		holders[id] = lockedRun{}
	}
	rows, err := tx.Query(ctx, `SELECT id, node, attempt FROM runs WHERE id = ANY($1) AND state = 'running'
		ORDER BY id FOR UPDATE`, dups)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, node string
			attempt  int32
		)
		if err := rows.Scan(&id, &node, &attempt); err != nil {
			return nil, err
		}
		holders[id] = lockedRun{node: node, attempt: int(attempt)}
	}
	return holders, rows.Err()
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
	// The latest progress event of each run: an end without progress of its own stores it,
	// since the run's row is updated once.
	latest := map[string]*spool.Event{}
	for _, ev := range events {
		if ev.Type == spool.EventProgress && ev.Progress != nil {
			if cur := latest[ev.RunID]; cur == nil || ev.Seq >= cur.Seq {
				latest[ev.RunID] = ev
			}
		}
	}
	out := make([]*spool.Run, len(ps))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		clear(out)
		holders, err := dupHolders(ctx, tx, ps)
		if err != nil {
			return err
		}
		var (
			ends  = make([]end, 0, len(ps))
			index = make(map[string]int, len(ps)) // run id -> index in ps of its finish
		)
		for i, p := range ps {
			if _, dup := index[p.ID]; dup {
				continue
			}
			if h, ok := holders[p.ID]; ok && h != (lockedRun{node: p.Node, attempt: p.Attempt}) {
				continue // another finish of this run in the call holds its guard, or none does
			}
			index[p.ID] = i
			e := end{id: p.ID, state: p.State, result: p.Result, err: p.Error, code: p.ErrorCode, progress: p.Progress,
				now: p.Now, availableAt: p.AvailableAt, keepAttempt: p.KeepAttempt, node: p.Node, attempt: p.Attempt}
			if e.progress == nil && latest[p.ID] != nil {
				e.progress = latest[p.ID].Progress
			}
			ends = append(ends, e)
		}
		evs := slices.Clone(events)
		if err := fillSeqs(ctx, tx, evs); err != nil {
			return err
		}
		runs, err := s.endRuns(ctx, tx, ends, func(ended map[string]*spool.Run, cancelled map[string]bool) []*spool.Event {
			keep := evs[:0:0]
			for _, ev := range evs {
				if _, finishing := index[ev.RunID]; finishing && ended[ev.RunID] == nil {
					continue // that attempt was given up
				}
				if cancelled[ev.RunID] {
					ev = asCancelled(ev)
				}
				keep = append(keep, ev)
			}
			return keep
		})
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
		runs, err := s.endRuns(ctx, tx, ends, func(map[string]*spool.Run, map[string]bool) []*spool.Event { return evs })
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
