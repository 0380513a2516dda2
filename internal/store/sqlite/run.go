package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

const terminalStates = `('succeeded', 'failed', 'cancelled')`

const sqlRunInsert = `INSERT INTO runs (id, recipe, agent, workspace, session_id, state, priority, input,
	config, metadata, max_retries, timeout_sec, retry_of, idempotency_key, idempotency_scope, idem_key,
	webhook_url, webhook_events, schedule_id, scheduled_for, created_at, run_at, available_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING`

const sqlRunByIdemKey = `SELECT ` + runColumns + ` FROM runs WHERE idem_key = ?`

const sqlQueuedCount = `SELECT coalesce(sum(runs), 0) FROM run_stats WHERE state IN ('queued', 'paused')`

// RunInsert stores a new run with its first status event, or returns the run that holds
// its idempotency key.
func (s *Store) RunInsert(ctx context.Context, p *store.RunInsertParams) (*spool.Run, bool, error) {
	var (
		run     *spool.Run
		existed bool
	)
	err := s.write(ctx, func(tx *wtx) (err error) {
		run, existed, err = insertRun(tx, p, true)
		return err
	})
	if err != nil {
		return nil, false, wrap("insert run", err)
	}
	return run, existed, nil
}

// RunInsertMany stores many runs in one transaction, without the queue-size check.
func (s *Store) RunInsertMany(ctx context.Context, ps []*store.RunInsertParams) ([]*spool.Run, error) {
	var runs []*spool.Run
	err := s.write(ctx, func(tx *wtx) error {
		runs = make([]*spool.Run, len(ps))
		for i, p := range ps {
			r, _, err := insertRun(tx, p, false)
			if err != nil {
				return err
			}
			runs[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, wrap("insert runs", err)
	}
	return runs, nil
}

func insertRun(tx *wtx, p *store.RunInsertParams, checkQueue bool) (*spool.Run, bool, error) {
	if p.IdemKey != "" {
		r, err := scanRun(tx.queryRow(sqlRunByIdemKey, p.IdemKey))
		if err == nil {
			return r, true, nil
		}
		if !isNoRows(err) {
			return nil, false, err
		}
	}
	if checkQueue && p.MaxQueued > 0 {
		var n int64
		if err := tx.flushStats(); err != nil {
			return nil, false, err
		}
		if err := tx.queryRow(sqlQueuedCount).Scan(&n); err != nil {
			return nil, false, err
		}
		if n >= int64(p.MaxQueued) {
			return nil, false, &spool.Error{
				Code:    spool.CodeQueueFull,
				Message: fmt.Sprintf("the queue is full: %d runs are waiting (max_queue_size %d); retry later", n, p.MaxQueued),
			}
		}
	}
	id := p.ID
	if id == "" {
		id = "run_" + ulid.Make().String()
	}
	created := p.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	state, available := spool.StateQueued, created
	if p.RunAt != nil && p.RunAt.After(created) {
		state, available = spool.StateScheduled, *p.RunAt
	}
	metadata, err := jsonText(p.Metadata)
	if err != nil {
		return nil, false, fmt.Errorf("encode metadata: %w", err)
	}
	hookEvents, err := jsonText(p.WebhookEvents)
	if err != nil {
		return nil, false, fmt.Errorf("encode webhook events: %w", err)
	}
	var idem any
	if p.IdemKey != "" {
		idem = p.IdemKey
	}
	var seq, inserted int64
	res, err := tx.exec(sqlRunInsert, id, p.Recipe, p.Agent, p.Workspace, p.SessionID, string(state),
		int64(p.Priority), nullText(p.Input), nullText(p.Config), metadata, p.MaxRetries, p.TimeoutSec,
		p.RetryOf, p.IdempotencyKey, p.IdempotencyScope, idem, p.WebhookURL, hookEvents, p.ScheduleID,
		nullMicros(p.ScheduledFor), micros(created), nullMicros(p.RunAt), micros(available))
	if err == nil {
		if inserted, err = res.RowsAffected(); err == nil {
			seq, err = res.LastInsertId()
		}
	}
	if err == nil && inserted == 0 && p.IdemKey != "" {
		// The unique index refused a duplicate key: return the run holding it.
		r, err := scanRun(tx.queryRow(sqlRunByIdemKey, p.IdemKey))
		if err != nil {
			return nil, false, err
		}
		return r, true, nil
	}
	if err != nil {
		if isUnique(err) {
			return nil, false, spool.Errorf(spool.CodeConflict, "run %s already exists", id)
		}
		return nil, false, err
	}
	ev := &spool.Event{RunID: id, Seq: 1, Type: spool.EventStatus, Time: created, Status: state}
	if err := insertEvent(tx, ev); err != nil {
		return nil, false, err
	}
	// The run as stored, built here rather than read back: times at the stored precision.
	r := &spool.Run{
		ID: id, Recipe: p.Recipe, Agent: p.Agent, Workspace: p.Workspace, SessionID: p.SessionID,
		State: state, Priority: p.Priority, Input: rawJSON(p.Input), Config: rawJSON(p.Config),
		Metadata: p.Metadata, MaxRetries: p.MaxRetries, TimeoutSec: p.TimeoutSec, RetryOf: p.RetryOf,
		IdempotencyKey: p.IdempotencyKey, IdempotencyScope: p.IdempotencyScope, WebhookURL: p.WebhookURL,
		WebhookEvents: p.WebhookEvents, ScheduleID: p.ScheduleID, ScheduledFor: storedTime(p.ScheduledFor),
		CreatedAt: fromMicros(micros(created)), RunAt: storedTime(p.RunAt), AvailableAt: fromMicros(micros(available)),
		Seq: seq,
	}
	if len(r.Metadata) == 0 {
		r.Metadata = nil
	}
	if len(r.WebhookEvents) == 0 {
		r.WebhookEvents = nil
	}
	tx.statsAdd(r)
	return r, false, nil
}

// storedTime is t as it reads back from the database: UTC, microseconds.
func storedTime(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	v := fromMicros(micros(*t))
	return &v
}

const sqlRunGet = `SELECT ` + runColumns + ` FROM runs WHERE id = ?`

// RunGet returns one run.
func (s *Store) RunGet(ctx context.Context, id string) (*spool.Run, error) {
	r, err := scanRun(s.queryRowRead(ctx, sqlRunGet, id))
	if isNoRows(err) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, wrap("get run", err)
	}
	return r, nil
}

// RunList returns one page of runs, newest first.
func (s *Store) RunList(ctx context.Context, p *spool.ListParams) ([]*spool.Run, int64, error) {
	size := p.PageSize
	if size <= 0 {
		size = 20
	}
	size = min(size, 1000)
	page := max(p.Page, 1)

	// Filters other than the state; every one is an equality the list indexes serve in seq order.
	var (
		where []string
		args  []any
	)
	for _, f := range []struct{ col, val string }{
		{"recipe", p.Recipe}, {"agent", p.Agent}, {"workspace", p.Workspace}, {"session_id", p.SessionID},
	} {
		if f.val != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.val)
		}
	}
	if p.SessionID != "" {
		where = append(where, "session_id <> ''") // lets the planner use the partial session index
	}

	var total int64
	if p.WithTotal {
		cond, cargs := where, args
		if len(p.States) > 0 {
			cond = append(slices.Clone(where), "state IN ("+placeholders(len(p.States))+")")
			cargs = slices.Clone(args)
			for _, st := range p.States {
				cargs = append(cargs, string(st))
			}
		}
		var err error
		if total, err = s.countRuns(ctx, p.SessionID == "", and(cond), cargs); err != nil {
			return nil, 0, wrap("count runs", err)
		}
	}

	offset := (page - 1) * size
	if p.After != "" {
		where = append(where, "seq < coalesce((SELECT seq FROM runs WHERE id = ?), -1)")
		args = append(args, p.After)
		offset = 0
	}
	var (
		query string
		qargs []any
	)
	switch len(p.States) {
	case 0:
		query = `SELECT ` + runColumns + ` FROM runs WHERE ` + and(where) + ` ORDER BY seq DESC LIMIT ? OFFSET ?`
		qargs = append(args, size, offset)
	case 1:
		query = `SELECT ` + runColumns + ` FROM ` + stateFilter(p.States[0]) + ` AND ` + and(where) + ` ORDER BY seq DESC LIMIT ? OFFSET ?`
		qargs = append(append([]any{string(p.States[0])}, args...), size, offset)
	default:
		// One index range per state, each already newest first, merged: no sort of whole states.
		parts := make([]string, len(p.States))
		for i, st := range p.States {
			parts[i] = `SELECT * FROM (SELECT ` + runColumns + ` FROM ` + stateFilter(st) + ` AND ` + and(where) +
				` ORDER BY seq DESC LIMIT ?)`
			qargs = append(append(append(qargs, string(st)), args...), offset+size)
		}
		query = `SELECT * FROM (` + strings.Join(parts, " UNION ALL ") + `) ORDER BY seq DESC LIMIT ? OFFSET ?`
		qargs = append(qargs, size, offset)
	}
	runs, err := scanRuns(s.queryRead(ctx, query, qargs...))
	if err != nil {
		return nil, 0, wrap("list runs", err)
	}
	return runs, total, nil
}

// stateFilter is the FROM and WHERE clauses (one ? parameter, the state) of a listing of
// runs in state st, newest first. Running and scheduled runs are read from their partial
// indexes and sorted (there are few, and running ones are the oldest active runs, which a
// newest-first walk of the table would reach last); terminal ones from runs_done; queued
// and paused ones by walking the table newest first, since they are mostly the newest.
func stateFilter(st spool.State) string {
	switch {
	case st == spool.StateRunning:
		return "runs INDEXED BY runs_running WHERE state = 'running' AND state = ?"
	case st == spool.StateScheduled:
		return "runs INDEXED BY runs_scheduled WHERE state = 'scheduled' AND state = ?"
	case st.IsTerminal():
		return "runs WHERE state = ? AND completed_at IS NOT NULL"
	}
	return "runs WHERE state = ?"
}

func and(conds []string) string {
	if len(conds) == 0 {
		return "1"
	}
	return strings.Join(conds, " AND ")
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// countRuns counts matching runs from run_stats when the filters are columns of it, else
// from the runs indexes.
func (s *Store) countRuns(ctx context.Context, fromStats bool, filter string, args []any) (int64, error) {
	table, col := "runs", "count(*)"
	if fromStats {
		table, col = "run_stats", "coalesce(sum(runs), 0)"
	}
	var n int64
	err := s.queryRowRead(ctx, `SELECT `+col+` FROM `+table+` WHERE `+filter, args...).Scan(&n)
	return n, err
}

// The state-changing statements take the state the run was read in (?2) as their guard, so
// the store knows each run's old state for run_stats.
const (
	sqlRunState      = `SELECT state FROM runs WHERE id = ?`
	sqlCancelWaiting = `UPDATE runs SET state = 'cancelled', completed_at = ?3, error = 'cancelled',
	error_code = 'cancelled', lease_until = NULL
WHERE id = ?1 AND +state = ?2
RETURNING ` + runColumns
	sqlCancelRunning = `UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, ?3)
WHERE id = ?1 AND +state = ?2
RETURNING ` + runColumns
	sqlPause = `UPDATE runs SET state = 'paused' WHERE id = ?1 AND +state = ?2
RETURNING ` + runColumns
	sqlResume = `UPDATE runs SET state = CASE WHEN run_at IS NOT NULL AND run_at > ?3 THEN 'scheduled' ELSE 'queued' END
WHERE id = ?1 AND +state = ?2
RETURNING ` + runColumns
	sqlDeleteRun        = `DELETE FROM runs WHERE id = ?1 AND +state = ?2 RETURNING ` + runColumns
	sqlDeleteEvents     = `DELETE FROM events WHERE run_id = ?`
	sqlDeleteDeliveries = `DELETE FROM webhook_deliveries WHERE run_id = ?`
)

// runState reads a run's state, or returns spool.ErrNotFound.
func runState(tx *wtx, id string) (spool.State, error) {
	var st string
	err := tx.queryRow(sqlRunState, id).Scan(&st)
	if isNoRows(err) {
		return "", notFound(id)
	}
	return spool.State(st), err
}

// transition moves run id, read in state from, with query (args: id, from, extra...).
func transition(tx *wtx, query, id string, from spool.State, extra ...any) (*spool.Run, error) {
	r, err := scanRun(tx.queryRow(query, append([]any{id, string(from)}, extra...)...))
	if err != nil {
		return nil, err
	}
	if r.State != from {
		tx.statsMove(r, from)
	}
	return r, nil
}

// RunCancel cancels a waiting run at once or asks a running one to stop.
func (s *Store) RunCancel(ctx context.Context, id string, now time.Time) (*spool.Run, error) {
	var run *spool.Run
	err := s.write(ctx, func(tx *wtx) error {
		st, err := runState(tx, id)
		if err != nil {
			return err
		}
		switch st {
		case spool.StateQueued, spool.StateScheduled, spool.StatePaused:
			if run, err = transition(tx, sqlCancelWaiting, id, st, micros(now)); err != nil {
				return err
			}
			return cancelledEvents(tx, run, now)
		case spool.StateRunning:
			run, err = transition(tx, sqlCancelRunning, id, st, micros(now))
			return err
		}
		return conflict(id, st, "cancel")
	})
	if err != nil {
		return nil, wrap("cancel run", err)
	}
	return run, nil
}

// cancelledEvents writes the status and cancelled events of a run that was just cancelled
// and enqueues its webhook.
func cancelledEvents(tx *wtx, r *spool.Run, now time.Time) error {
	evs := []*spool.Event{
		{RunID: r.ID, Type: spool.EventStatus, Time: now, Status: spool.StateCancelled, Attempt: r.Attempt},
		{RunID: r.ID, Type: spool.EventCancelled, Time: now, Error: r.Error, ErrorCode: r.ErrorCode, Attempt: r.Attempt},
	}
	for _, e := range evs {
		if err := insertEvent(tx, e); err != nil {
			return err
		}
	}
	return enqueueWebhook(tx, r, now)
}

// RunPause holds a queued or scheduled run.
func (s *Store) RunPause(ctx context.Context, id string, now time.Time) (*spool.Run, error) {
	run, err := s.setState(ctx, "pause", id, now, sqlPause, spool.StateQueued, spool.StateScheduled)
	return run, wrap("pause run", err)
}

// RunResume releases a paused run to its original place (scheduled again if its run_at is
// still ahead).
func (s *Store) RunResume(ctx context.Context, id string, now time.Time) (*spool.Run, error) {
	run, err := s.setState(ctx, "resume", id, now, sqlResume, spool.StatePaused)
	return run, wrap("resume run", err)
}

// setState moves a run that is in one of the states from with query and writes its status
// event.
func (s *Store) setState(ctx context.Context, action, id string, now time.Time, query string, from ...spool.State) (*spool.Run, error) {
	var run *spool.Run
	err := s.write(ctx, func(tx *wtx) error {
		st, err := runState(tx, id)
		if err != nil {
			return err
		}
		if !slices.Contains(from, st) {
			return conflict(id, st, action)
		}
		if run, err = transition(tx, query, id, st, micros(now)); err != nil {
			return err
		}
		return insertEvent(tx, &spool.Event{RunID: run.ID, Type: spool.EventStatus, Time: now, Status: run.State, Attempt: run.Attempt})
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// RunDelete deletes a terminal run with its events and webhook deliveries.
func (s *Store) RunDelete(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *wtx) error {
		st, err := runState(tx, id)
		if err != nil {
			return err
		}
		if !st.IsTerminal() {
			return conflict(id, st, "delete")
		}
		r, err := scanRun(tx.queryRow(sqlDeleteRun, id, string(st)))
		if err != nil {
			return err
		}
		tx.statsRemove(r)
		return deleteRunData(tx, id)
	})
	return wrap("delete run", err)
}

func deleteRunData(tx *wtx, id string) error {
	if _, err := tx.exec(sqlDeleteEvents, id); err != nil {
		return err
	}
	_, err := tx.exec(sqlDeleteDeliveries, id)
	return err
}

// The clear statements take (workspace) for waiting runs, and (workspace[, before]) for
// terminal ones.
const (
	clearWaiting       = `state IN ('queued', 'scheduled', 'paused') AND (?1 = '' OR workspace = ?1)`
	clearTerminal      = `completed_at IS NOT NULL AND (?1 = '' OR workspace = ?1)`
	clearTerminalAged  = `completed_at < ?2 AND (?1 = '' OR workspace = ?1)`
	sqlClearMarkActive = `UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, ?2), purge_on_finish = 1
WHERE state = 'running' AND (?1 = '' OR workspace = ?1)`
)

// RunClear deletes terminal runs (and, with All, waiting runs; running ones are asked to
// stop and deleted when they end).
func (s *Store) RunClear(ctx context.Context, p *store.RunClearParams) (int64, error) {
	var deleted int64
	err := s.write(ctx, func(tx *wtx) error {
		deleted = 0
		if p.All {
			n, err := deleteWhere(tx, "runs", clearWaiting, p.Workspace)
			if err != nil {
				return err
			}
			deleted += n
			now := p.Now
			if now.IsZero() {
				now = time.Now()
			}
			if _, err := tx.exec(sqlClearMarkActive, p.Workspace, micros(now)); err != nil {
				return err
			}
		}
		var (
			n   int64
			err error
		)
		if p.Before.IsZero() {
			n, err = deleteWhere(tx, "runs", clearTerminal, p.Workspace)
		} else {
			n, err = deleteWhere(tx, "runs INDEXED BY runs_finished", clearTerminalAged, p.Workspace, micros(p.Before))
		}
		deleted += n
		return err
	})
	if err != nil {
		return 0, wrap("clear runs", err)
	}
	return deleted, nil
}

// deleteWhere deletes the runs of from (a table clause) matching cond, with their events
// and deliveries.
func deleteWhere(tx *wtx, from, cond string, args ...any) (int64, error) {
	if err := tx.statsRemoveWhere(from, cond, args...); err != nil {
		return 0, err
	}
	if _, err := tx.exec(`DELETE FROM events WHERE run_id IN (SELECT id FROM `+from+` WHERE `+cond+`)`, args...); err != nil {
		return 0, err
	}
	if _, err := tx.exec(`DELETE FROM webhook_deliveries WHERE run_id IN (SELECT id FROM `+from+` WHERE `+cond+`)`, args...); err != nil {
		return 0, err
	}
	res, err := tx.exec(`DELETE FROM `+from+` WHERE `+cond, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// The rescue statements take (all, now): all = 1 selects every running run, else those whose
// lease expired before now.
const (
	rescueWhere     = `state = 'running' AND (?1 OR lease_until < ?2)`
	sqlRescueCancel = `UPDATE runs SET state = 'cancelled', completed_at = ?2, error = 'cancelled', error_code = 'cancelled', lease_until = NULL
WHERE ` + rescueWhere + ` AND cancel_requested_at IS NOT NULL
RETURNING ` + runColumns + `, purge_on_finish`
	sqlRescueRequeue = `UPDATE runs SET state = 'queued', available_at = ?2, node = '', lease_until = NULL,
	error = 'node ' || node || ' stopped while running the run', error_code = 'interrupted'
WHERE ` + rescueWhere + ` AND attempt <= max_retries
RETURNING ` + runColumns + `, purge_on_finish`
	sqlRescueFail = `UPDATE runs SET state = 'failed', completed_at = ?2, lease_until = NULL,
	error = 'node ' || node || ' stopped while running the run', error_code = 'interrupted'
WHERE ` + rescueWhere + `
RETURNING ` + runColumns + `, purge_on_finish`
)

// RunRescue re-queues or fails the runs of dead nodes.
func (s *Store) RunRescue(ctx context.Context, p *store.RunRescueParams) ([]*spool.Run, error) {
	var out []*spool.Run
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	err := s.write(ctx, func(tx *wtx) error {
		out = nil
		for _, q := range []string{sqlRescueCancel, sqlRescueRequeue, sqlRescueFail} {
			rows, err := tx.query(q, p.AllRunning, micros(now))
			if err != nil {
				return err
			}
			var purge, runs []*spool.Run
			for rows.Next() {
				var pf bool
				r, err := scanRunExtra(rows, &pf)
				if err != nil {
					rows.Close()
					return err
				}
				runs = append(runs, r)
				if pf && r.State.IsTerminal() {
					purge = append(purge, r)
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
			for _, r := range runs {
				tx.statsMove(r, spool.StateRunning)
				if err := endedEvents(tx, r, now); err != nil {
					return err
				}
			}
			for _, r := range purge {
				if err := purgeRun(tx, r); err != nil {
					return err
				}
			}
			out = append(out, runs...)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("rescue runs", err)
	}
	return out, nil
}

// endedEvents writes the events of a run the store moved out of running on its own: its
// status and, when terminal, its terminal event and webhook.
func endedEvents(tx *wtx, r *spool.Run, now time.Time) error {
	if r.State == spool.StateCancelled {
		return cancelledEvents(tx, r, now)
	}
	if err := insertEvent(tx, &spool.Event{RunID: r.ID, Type: spool.EventStatus, Time: now, Status: r.State, Attempt: r.Attempt}); err != nil {
		return err
	}
	if r.State != spool.StateFailed {
		return nil
	}
	if err := insertEvent(tx, &spool.Event{RunID: r.ID, Type: spool.EventError, Time: now, Error: r.Error, ErrorCode: r.ErrorCode, Attempt: r.Attempt}); err != nil {
		return err
	}
	return enqueueWebhook(tx, r, now)
}

// purgeRun deletes a run that ended after a clear --all asked for it.
func purgeRun(tx *wtx, r *spool.Run) error {
	if _, err := tx.exec(`DELETE FROM runs WHERE id = ?`, r.ID); err != nil {
		return err
	}
	tx.statsRemove(r)
	return deleteRunData(tx, r.ID)
}

const sqlHeartbeat = `UPDATE runs SET lease_until = ?1
WHERE id IN (SELECT value FROM json_each(?3)) AND +state = 'running' AND +node = ?2
RETURNING id, cancel_requested_at IS NOT NULL`

// RunHeartbeat extends the leases of a node's runs and reports which have a cancel requested.
func (s *Store) RunHeartbeat(ctx context.Context, node string, ids []string, leaseUntil time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var cancel []string
	err := s.write(ctx, func(tx *wtx) error {
		cancel = nil
		rows, err := tx.query(sqlHeartbeat, micros(leaseUntil), node, jsonList(ids))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id        string
				requested bool
			)
			if err := rows.Scan(&id, &requested); err != nil {
				return err
			}
			if requested {
				cancel = append(cancel, id)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap("heartbeat runs", err)
	}
	return cancel, nil
}

const sqlPromote = `UPDATE runs INDEXED BY runs_scheduled SET state = 'queued', available_at = run_at
WHERE state = 'scheduled' AND run_at <= ?
RETURNING seq, id, workspace, agent, recipe, priority`

// RunPromote queues the scheduled runs that are due.
func (s *Store) RunPromote(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.write(ctx, func(tx *wtx) error {
		rows, err := tx.query(sqlPromote, micros(now))
		if err != nil {
			return err
		}
		var seqs []int64
		for rows.Next() {
			var (
				r        = spool.Run{State: spool.StateQueued}
				priority int64
			)
			if err := rows.Scan(&r.Seq, &r.ID, &r.Workspace, &r.Agent, &r.Recipe, &priority); err != nil {
				rows.Close()
				return err
			}
			r.Priority = spool.Priority(priority)
			seqs = append(seqs, r.Seq)
			tx.statsMove(&r, spool.StateScheduled)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		n = len(seqs)
		if n == 0 {
			return nil
		}
		_, err = statusEvents(tx, jsonList(seqs), now)
		return err
	})
	if err != nil {
		return 0, wrap("promote runs", err)
	}
	return n, nil
}

const sqlNextWake = `SELECT min(t) FROM (
	SELECT min(run_at) AS t FROM runs INDEXED BY runs_scheduled WHERE state = 'scheduled'
	UNION ALL
	SELECT min(available_at) FROM runs INDEXED BY runs_backoff
	WHERE state = 'queued' AND available_at > created_at AND available_at > ?)`

// RunNextWake returns when the next scheduled run falls due or the next backing-off run
// becomes available. A scheduled run that is already due gives its (past) run_at.
func (s *Store) RunNextWake(ctx context.Context, now time.Time) (time.Time, bool, error) {
	var t *int64
	if err := s.queryRowRead(ctx, sqlNextWake, micros(now)).Scan(&t); err != nil {
		return time.Time{}, false, wrap("next wake", err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return fromMicros(*t), true, nil
}

const sqlCancelRequested = `SELECT id FROM runs INDEXED BY runs_running
WHERE state = 'running' AND node = ? AND cancel_requested_at IS NOT NULL ORDER BY seq`

// RunCancelRequested lists the node's running runs that have a cancel requested.
func (s *Store) RunCancelRequested(ctx context.Context, node string) ([]string, error) {
	rows, err := s.queryRead(ctx, sqlCancelRequested, node)
	if err != nil {
		return nil, wrap("list cancel requests", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap("list cancel requests", err)
		}
		ids = append(ids, id)
	}
	return ids, wrap("list cancel requests", rows.Err())
}

// wrap adds context to err, keeping *spool.Error values as they are so callers see their
// codes and messages unchanged. It returns nil for nil.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var se *spool.Error
	if errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("sqlite: %s: %w", what, err)
}

// isUnique reports whether err is a unique-constraint violation.
func isUnique(err error) bool {
	var e *msqlite.Error
	if errors.As(err, &e) {
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}
