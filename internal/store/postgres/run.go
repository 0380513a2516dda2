package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// insertCols are the columns a submit writes, in the order of insertArgs' arguments, each
// with its SQL type and the expression that stores the argument @.
var insertCols = []struct{ name, typ, expr string }{
	{"id", "text", "@"},
	{"recipe", "text", "@"},
	{"agent", "text", "@"},
	{"workspace", "text", "@"},
	{"session_id", "text", "@"},
	{"state", "text", "@"},
	{"priority", "smallint", "@"},
	{"input", "text", "nullif(@, '')"},
	{"config", "text", "nullif(@, '')"},
	{"metadata", "text", "nullif(@, '')"},
	{"max_retries", "int", "@"},
	{"timeout_sec", "int", "@"},
	{"retry_of", "text", "@"},
	{"idempotency_scope", "text", "@"},
	{"idem_key", "text", "nullif(@, '')"},
	{"idempotency_key", "text", "@"},
	{"webhook_url", "text", "@"},
	{"webhook_events", "text", `string_to_array(nullif(@, ''), E'\x1f')`},
	{"schedule_id", "text", "@"},
	{"scheduled_for", "timestamptz", "@"},
	{"created_at", "timestamptz", "@"},
	{"run_at", "timestamptz", "@"},
	{"available_at", "timestamptz", "@"},
}

// ON CONFLICT clauses of insertSQL.
const (
	conflictIdemKey = "ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING"
	conflictAny     = "ON CONFLICT DO NOTHING"
)

// insertSQLs caches insertSQL's statements by shape.
var insertSQLs sync.Map

// insertShape is what insertSQL's statement depends on.
type insertShape struct {
	arrays   uint32
	conflict string
}

// insertSQL is the statement that inserts runs with their first status events (seq 1) and
// returns each new run's id and seq, in insert order. Argument i is column i of insertCols:
// an array with one element per run when bit i of arrays is set, else one value for every
// run (without arrays it inserts one run). Unnesting costs per array, and most columns of a
// batch hold one value. conflict is empty or the ON CONFLICT clause skipping runs.
func insertSQL(arrays uint32, conflict string) string {
	key := insertShape{arrays, conflict}
	if q, ok := insertSQLs.Load(key); ok {
		return q.(string)
	}
	var names, exprs, unnest, aliases []string
	for i, c := range insertCols {
		names = append(names, c.name)
		x := fmt.Sprintf("$%d::%s", i+1, c.typ)
		if arrays&(1<<i) != 0 {
			unnest = append(unnest, x+"[]")
			aliases = append(aliases, c.name)
			x = "v." + c.name
		}
		exprs = append(exprs, strings.ReplaceAll(c.expr, "@", x))
	}
	from := ""
	if len(unnest) > 0 {
		from = "\n\tFROM unnest(" + strings.Join(unnest, ", ") + ")\n\t\tWITH ORDINALITY AS v(" +
			strings.Join(aliases, ", ") + ", ord)\n\tORDER BY ord"
	}
	if conflict != "" {
		conflict = "\n\t" + conflict
	}
	q := `WITH ins AS (
	INSERT INTO runs (` + strings.Join(names, ", ") + `)
	SELECT ` + strings.Join(exprs, ", ") + from + conflict + `
	RETURNING id, seq, created_at, state
), ev AS (
	INSERT INTO events (run_id, seq, type, ts, status) SELECT id, 1, 'status', created_at, state FROM ins
)
SELECT id, seq FROM ins`
	insertSQLs.Store(key, q)
	return q
}

// RunInsert stores a new run with its first status event, or returns the run that already
// has its idempotency key (the unique index decides races). Without MaxQueued it costs one
// round trip: the insert (with its notification, when it carries it) is one implicit
// transaction. With MaxQueued, the queue-size check and the insert happen in a transaction
// holding an advisory lock, so concurrent submits on any node never overshoot the limit.
func (s *Store) RunInsert(ctx context.Context, p *store.RunInsertParams) (*spool.Run, bool, error) {
	var (
		run     *spool.Run
		existed bool
		trail   bool
		err     error
	)
	if p.MaxQueued > 0 {
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			run, existed, trail = nil, false, false
			if p.IdemKey != "" {
				r, err := scanRun(tx.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE idem_key = $1`, p.IdemKey))
				if err == nil {
					run, existed = r, true
					return nil
				}
				if !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
			}
			// Lock first, then count in a new statement (a new snapshot): the count then
			// includes every run inserted by the previous holder of the lock.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.queueKey); err != nil {
				return err
			}
			var queued int64
			if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM runs WHERE state = 'queued')
				+ (SELECT count(*) FROM runs WHERE state = 'paused')`).Scan(&queued); err != nil {
				return err
			}
			if queued >= int64(p.MaxQueued) {
				return &spool.Error{
					Code:       spool.CodeQueueFull,
					Message:    fmt.Sprintf("the queue is full: %d runs are waiting (max_queue_size %d); retry later", queued, p.MaxQueued),
					RetryAfter: 5,
				}
			}
			runs, found, t, err := s.insertRuns(ctx, tx, []*store.RunInsertParams{p})
			if err != nil {
				return err
			}
			run, existed, trail = runs[0], found[0], t
			return nil
		})
	} else {
		var runs []*spool.Run
		var found []bool
		runs, found, trail, err = s.insertRuns(ctx, s.pool, []*store.RunInsertParams{p})
		if err == nil {
			run, existed = runs[0], found[0]
		}
	}
	if err != nil {
		return nil, false, wrapRunErr(err, "insert", p.ID)
	}
	if trail {
		s.submitSkipped()
	}
	return run, existed, nil
}

// RunInsertMany inserts many runs in one transaction (one statement for the runs and their
// first events, one round trip). Runs whose IdemKey exists are returned as the existing run.
func (s *Store) RunInsertMany(ctx context.Context, ps []*store.RunInsertParams) ([]*spool.Run, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	runs, _, trail, err := s.insertRuns(ctx, s.pool, ps)
	if err != nil {
		return nil, fmt.Errorf("postgres: insert %d runs: %w", len(ps), err)
	}
	if trail {
		s.submitSkipped()
	}
	return runs, nil
}

// insertRuns inserts ps and returns, aligned with ps, each run and whether it existed. On
// the pool the insert is its own implicit transaction, in the same batch as the TopicSubmit
// notification when this submit carries it (see submitNotifier); in a transaction it is
// part of it. trail reports that claimable runs were inserted without the notification:
// the caller calls s.submitSkipped once they are committed. Runs skipped for an existing
// idempotency key are then read by key; when such a run was deleted in between, the insert
// is tried again.
func (s *Store) insertRuns(ctx context.Context, q querier, ps []*store.RunInsertParams) (runs []*spool.Run, existed []bool, trail bool, err error) {
	in, err := insertArgs(ps)
	if err != nil {
		return nil, nil, false, err
	}
	s.groups.submitted(ps)
	notify := in.runnable && s.claimSubmitNote()
	trail = in.runnable && !notify
	_, inTx := q.(pgx.Tx)
	conflict := ""
	if in.conflict {
		conflict = conflictIdemKey
	}
	for try := 1; ; try++ {
		var b pgx.Batch
		seqs := in.queue(&b, ps, conflict)
		if notify {
			var n notes
			n.runnable() // harmless when every run turns out to exist already
			n.queue(&b, s.channel)
		}
		send := func() error { return q.SendBatch(ctx, &b).Close() }
		if !inTx {
			// Alone, the batch is its own transaction and can be retried; in a
			// transaction, only the whole transaction can.
			send = func() error { return retry(ctx, func() error { return q.SendBatch(ctx, &b).Close() }) }
		}
		if err := send(); err != nil {
			return nil, nil, false, err
		}
		runs = make([]*spool.Run, len(ps))
		existed = make([]bool, len(ps))
		var missing []string
		for i, p := range ps {
			if seqs[i] != 0 {
				if runs[i], err = in.run(i, p, seqs[i]); err != nil {
					return nil, nil, false, err
				}
				continue
			}
			if p.IdemKey == "" {
				return nil, nil, false, fmt.Errorf("run %s was not inserted", p.ID)
			}
			missing = append(missing, p.IdemKey)
		}
		if len(missing) == 0 {
			return runs, existed, trail, nil
		}
		found, err := scanRunsWithKey(q.Query(ctx, `SELECT `+runColumns+`, idem_key FROM runs WHERE idem_key = ANY($1)`, missing))
		if err != nil {
			return nil, nil, false, err
		}
		complete := true
		for i, p := range ps {
			if runs[i] == nil {
				runs[i], existed[i] = found[p.IdemKey], true
				complete = complete && runs[i] != nil
			}
		}
		if complete {
			return runs, existed, trail, nil
		}
		if inTx || try == 3 {
			return nil, nil, false, errors.New("a run with the same idempotency key was deleted while this one was inserted; submit again")
		}
	}
}

// insertSkipping inserts ps with their first events in q, skipping runs that conflict on
// any unique index, and returns the runs inserted, in order, and whether any of ps is queued
// (not scheduled).
func insertSkipping(ctx context.Context, q querier, ps []*store.RunInsertParams) ([]*spool.Run, bool, error) {
	in, err := insertArgs(ps)
	if err != nil {
		return nil, false, err
	}
	var b pgx.Batch
	seqs := in.queue(&b, ps, conflictAny)
	if err := q.SendBatch(ctx, &b).Close(); err != nil {
		return nil, false, err
	}
	var runs []*spool.Run
	for i, p := range ps {
		if seqs[i] != 0 {
			r, err := in.run(i, p, seqs[i])
			if err != nil {
				return nil, false, err
			}
			runs = append(runs, r)
		}
	}
	return runs, in.runnable, nil
}

// queue queues in's insert of ps on b, skipping runs as conflict says (see insertSQL). Once
// b has run, element i of the slice returned is the seq of ps[i], 0 when it was skipped.
func (in *insertBatch) queue(b *pgx.Batch, ps []*store.RunInsertParams, conflict string) []int64 {
	seqs := make([]int64, len(ps))
	b.Queue(insertSQL(in.arrays, conflict), in.args...).Query(func(rows pgx.Rows) error {
		clear(seqs) // the batch may be sent again after a transient error
		next := 0
		for rows.Next() {
			var id string
			var seq int64
			if err := rows.Scan(&id, &seq); err != nil {
				return err
			}
			k := indexOfRun(ps, id, next)
			if k < 0 {
				return fmt.Errorf("inserted a run %s that was not submitted", id)
			}
			seqs[k], next = seq, k+1
		}
		return rows.Err()
	})
	return seqs
}

// indexOfRun returns the index in ps of the run with id, or -1. It looks at index from and
// after first: insertSQL returns runs in insert order.
func indexOfRun(ps []*store.RunInsertParams, id string, from int) int {
	for k := from; k < len(ps); k++ {
		if ps[k].ID == id {
			return k
		}
	}
	for k := range min(from, len(ps)) {
		if ps[k].ID == id {
			return k
		}
	}
	return -1
}

// insertBatch is a submit's arguments for insertSQL, with what each run gets stored.
type insertBatch struct {
	args     []any
	arrays   uint32 // the columns sent as arrays (see insertSQL)
	conflict bool   // some run has an idempotency key
	runnable bool   // some run is queued (not scheduled)

	states             []string
	created, available []time.Time
	metas, hookEvents  []string
}

// insertArgs converts ps to insertSQL's arguments.
func insertArgs(ps []*store.RunInsertParams) (*insertBatch, error) {
	k := len(ps)
	var (
		ids, recipes, agents, workspaces, sessions, states = make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
		priorities                                         = make([]int16, k)
		inputs, configs, metas                             = make([]string, k), make([]string, k), make([]string, k)
		maxRetries, timeouts                               = make([]int32, k), make([]int32, k)
		retryOf, scopes, idemKeys, keys                    = make([]string, k), make([]string, k), make([]string, k), make([]string, k)
		hookURLs, hookEvents, scheduleIDs                  = make([]string, k), make([]string, k), make([]string, k)
		scheduledFor, runAt                                = make([]pgtype.Timestamptz, k), make([]pgtype.Timestamptz, k)
		createdAt, availableAt                             = make([]time.Time, k), make([]time.Time, k)
		in                                                 = &insertBatch{args: make([]any, len(insertCols))}
	)
	for i, p := range ps {
		created := p.CreatedAt
		if created.IsZero() {
			created = time.Now()
		}
		state, available := spool.StateQueued, created
		if p.RunAt != nil && p.RunAt.After(created) {
			state, available = spool.StateScheduled, *p.RunAt
		}
		in.runnable = in.runnable || state == spool.StateQueued
		in.conflict = in.conflict || p.IdemKey != ""
		meta, err := jsonText(p.Metadata)
		if err != nil {
			return nil, fmt.Errorf("run %s: encode metadata: %w", p.ID, err)
		}
		ids[i], recipes[i], agents[i], workspaces[i], sessions[i] = p.ID, p.Recipe, p.Agent, p.Workspace, p.SessionID
		states[i], priorities[i] = string(state), int16(p.Priority)
		inputs[i], configs[i], metas[i] = string(p.Input), string(p.Config), meta
		maxRetries[i], timeouts[i] = int32(p.MaxRetries), int32(p.TimeoutSec)
		retryOf[i], scopes[i], idemKeys[i], keys[i] = p.RetryOf, p.IdempotencyScope, p.IdemKey, p.IdempotencyKey
		hookURLs[i], hookEvents[i], scheduleIDs[i] = p.WebhookURL, strings.Join(p.WebhookEvents, "\x1f"), p.ScheduleID
		scheduledFor[i], runAt[i] = nullTime(p.ScheduledFor), nullTime(p.RunAt)
		createdAt[i], availableAt[i] = created, available
	}
	// Each run has its own id: a batch repeating one is refused by the primary key.
	in.args[0] = ids
	if k > 1 {
		in.arrays = 1
	} else {
		in.args[0] = ids[0]
	}
	column(in, 1, recipes)
	column(in, 2, agents)
	column(in, 3, workspaces)
	column(in, 4, sessions)
	column(in, 5, states)
	column(in, 6, priorities)
	column(in, 7, inputs)
	column(in, 8, configs)
	column(in, 9, metas)
	column(in, 10, maxRetries)
	column(in, 11, timeouts)
	column(in, 12, retryOf)
	column(in, 13, scopes)
	column(in, 14, idemKeys)
	column(in, 15, keys)
	column(in, 16, hookURLs)
	column(in, 17, hookEvents)
	column(in, 18, scheduleIDs)
	column(in, 19, scheduledFor)
	column(in, 20, createdAt)
	column(in, 21, runAt)
	column(in, 22, availableAt)
	in.states, in.created, in.available, in.metas, in.hookEvents = states, createdAt, availableAt, metas, hookEvents
	return in, nil
}

// column sets argument i of in to vals, or to their one value when they are all the same.
func column[T comparable](in *insertBatch, i int, vals []T) {
	for _, v := range vals[1:] {
		if v != vals[0] {
			in.args[i] = vals
			in.arrays |= 1 << i
			return
		}
	}
	in.args[i] = vals[0]
}

// run is the run inserted for ps[i] with seq, as scanRun reads it back: times in UTC to
// the microsecond, empty documents as nil.
func (in *insertBatch) run(i int, p *store.RunInsertParams, seq int64) (*spool.Run, error) {
	r := &spool.Run{
		Seq: seq, ID: p.ID, Recipe: p.Recipe, Agent: p.Agent, Workspace: p.Workspace, SessionID: p.SessionID,
		State: spool.State(in.states[i]), Priority: spool.Priority(int16(p.Priority)),
		Input: storedJSON(p.Input), Config: storedJSON(p.Config),
		MaxRetries: int(int32(p.MaxRetries)), TimeoutSec: int(int32(p.TimeoutSec)), RetryOf: p.RetryOf,
		IdempotencyKey: p.IdempotencyKey, IdempotencyScope: p.IdempotencyScope, WebhookURL: p.WebhookURL,
		ScheduleID: p.ScheduleID, ScheduledFor: storedTimePtr(p.ScheduledFor),
		CreatedAt: storedTime(in.created[i]), RunAt: storedTimePtr(p.RunAt), AvailableAt: storedTime(in.available[i]),
	}
	if ev := in.hookEvents[i]; ev != "" {
		r.WebhookEvents = strings.Split(ev, "\x1f")
	}
	if m := in.metas[i]; m != "" {
		if err := json.Unmarshal([]byte(m), &r.Metadata); err != nil {
			return nil, fmt.Errorf("run %s: decode metadata: %w", r.ID, err)
		}
	}
	return r, nil
}

// storedJSON is a document as read back: nil when empty, else a copy.
func storedJSON(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(string(b))
}

// storedTime is t as timestamptz keeps it: to the microsecond (rounded down, as pgx sends
// it), read back in UTC.
func storedTime(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

// storedTimePtr is storedTime of an optional time, nil when absent or zero (as nullTime).
func storedTimePtr(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := storedTime(*t)
	return &u
}

// scanRunsWithKey reads runs followed by their idem_key, by key.
func scanRunsWithKey(rows pgx.Rows, err error) (map[string]*spool.Run, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*spool.Run{}
	for rows.Next() {
		var key string
		r, err := scanRun(rows, &key)
		if err != nil {
			return nil, err
		}
		out[key] = r
	}
	return out, rows.Err()
}

// RunGet returns one run, or spool.ErrNotFound.
func (s *Store) RunGet(ctx context.Context, id string) (*spool.Run, error) {
	r, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get run %s: %w", id, err)
	}
	return r, nil
}

// RunList returns runs newest first (by creation, then submit order), and the total count of
// matching runs when asked. With After it pages by keyset and ignores Page.
func (s *Store) RunList(ctx context.Context, p *spool.ListParams) ([]*spool.Run, int64, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if p.Recipe != "" {
		add("recipe = $%d", p.Recipe)
	}
	if p.Agent != "" {
		add("agent = $%d", p.Agent)
	}
	if p.Workspace != "" {
		add("workspace = $%d", p.Workspace)
	}
	if p.SessionID != "" {
		add("session_id = $%d", p.SessionID)
	}
	// The states are written into the statement (they are a fixed set), so that every plan
	// can tell which partial indexes hold them.
	queued, others := splitStates(p.States)
	var total int64
	if p.WithTotal {
		// Queued runs are counted on runs_claim(_group), the others on runs_state.
		count := func(state string) string {
			return "(SELECT count(*) FROM runs WHERE " + strings.Join(append([]string{state}, where...), " AND ") + ")"
		}
		var parts []string
		if queued {
			parts = append(parts, count("state = 'queued'"))
		}
		if others != "" {
			parts = append(parts, count(others))
		}
		if len(parts) > 0 {
			if err := s.pool.QueryRow(ctx, `SELECT `+strings.Join(parts, " + "), args...).Scan(&total); err != nil {
				return nil, 0, fmt.Errorf("postgres: count runs: %w", err)
			}
		}
	}
	if len(p.States) > 0 {
		where = append(where, stateIn(p.States))
	}
	filter := ""
	if len(where) > 0 {
		filter = " WHERE " + strings.Join(where, " AND ")
	}
	size := p.PageSize
	if size <= 0 {
		size = 20
	}
	size = min(size, 1000)
	offset := 0
	if p.After != "" {
		add("(created_at, seq) < (SELECT created_at, seq FROM runs WHERE id = $%d)", p.After)
		filter = " WHERE " + strings.Join(where, " AND ")
	} else if p.Page > 1 {
		offset = (p.Page - 1) * size
	}
	args = append(args, size, offset)
	q := fmt.Sprintf(`SELECT %s FROM runs%s ORDER BY created_at DESC, seq DESC LIMIT $%d OFFSET $%d`,
		runColumns, filter, len(args)-1, len(args))
	runs, err := scanRuns(s.pool.Query(ctx, q, args...))
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: list runs: %w", err)
	}
	return runs, total, nil
}

// splitStates tells whether a run list of states (all states when empty) includes queued
// runs, and returns the condition selecting its other states ("" for none).
func splitStates(states []spool.State) (queued bool, others string) {
	if len(states) == 0 {
		return true, "state <> 'queued'"
	}
	var rest []spool.State
	for _, st := range states {
		if st == spool.StateQueued {
			queued = true
		} else {
			rest = append(rest, st)
		}
	}
	if len(rest) == 0 {
		return queued, ""
	}
	return queued, stateIn(rest)
}

// stateIn is the SQL condition selecting runs in states, with each state written as a
// literal; states that are not run states match nothing. Queued runs are selected apart
// (state = 'queued' OR ...), so that a plan can read them on runs_claim and the others on
// runs_state.
func stateIn(states []spool.State) string {
	var (
		queued bool
		lits   []string
	)
	for _, st := range states {
		if st == spool.StateQueued {
			queued = true
		} else if slices.Contains(spool.States, st) && !slices.Contains(lits, "'"+string(st)+"'") {
			lits = append(lits, "'"+string(st)+"'")
		}
	}
	var conds []string
	if queued {
		conds = append(conds, "state = 'queued'")
	}
	if len(lits) > 0 {
		conds = append(conds, "state IN ("+strings.Join(lits, ", ")+")")
	}
	switch len(conds) {
	case 0:
		return "false"
	case 1:
		return conds[0]
	}
	return "(" + strings.Join(conds, " OR ") + ")"
}

// lockRun locks one run for the rest of the transaction and returns its state.
func lockRun(ctx context.Context, tx pgx.Tx, id string) (spool.State, error) {
	var st string
	err := tx.QueryRow(ctx, `SELECT state FROM runs WHERE id = $1 FOR UPDATE`, id).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", notFound(id)
	}
	return spool.State(st), err
}

// wrapRunErr adds context to storage errors and keeps *spool.Error values as they are.
func wrapRunErr(err error, action, id string) error {
	var se *spool.Error
	if err == nil || errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("postgres: %s run %s: %w", action, id, err)
}

// RunCancel cancels a queued, scheduled or paused run at once (writing its status and
// cancelled events, and queueing its webhook), or marks a running run cancel-requested and
// notifies the node running it (TopicCancel). A terminal run gives a conflict.
func (s *Store) RunCancel(ctx context.Context, id string, now time.Time) (*spool.Run, error) {
	var run *spool.Run
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockRun(ctx, tx, id)
		if err != nil {
			return err
		}
		var n notes
		switch st {
		case spool.StateQueued, spool.StateScheduled, spool.StatePaused:
			var last int64
			run, err = scanRun(tx.QueryRow(ctx, `UPDATE runs SET state = 'cancelled', completed_at = $2,
				error = 'cancelled', error_code = 'cancelled', result = NULL, lease_until = NULL
				WHERE id = $1 RETURNING `+runColumns+`, (SELECT coalesce(max(seq), 0) FROM events WHERE run_id = $1)`,
				id, now), &last)
			if err != nil {
				return err
			}
			var b pgx.Batch
			evs := []*spool.Event{
				statusEvent(id, last+1, now, spool.StateCancelled, run.Attempt),
				{RunID: id, Seq: last + 2, Type: spool.EventCancelled, Time: now, Error: "cancelled", ErrorCode: spool.CodeCancelled, Attempt: run.Attempt},
			}
			if err := queueEvents(&b, evs, &n, nil); err != nil {
				return err
			}
			if err := queueEnded(&b, []*spool.Run{run}, now, &n); err != nil {
				return err
			}
			n.queue(&b, s.channel)
			return tx.SendBatch(ctx, &b).Close()
		case spool.StateRunning:
			run, err = scanRun(tx.QueryRow(ctx, `UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, $2)
				WHERE id = $1 RETURNING `+runColumns, id, now))
			if err != nil {
				return err
			}
			n.cancel(id)
			return n.send(ctx, tx, s.channel)
		default:
			return conflict(id, st, "cancel")
		}
	})
	if err != nil {
		return nil, wrapRunErr(err, "cancel", id)
	}
	return run, nil
}

// RunPause holds a queued or scheduled run.
func (s *Store) RunPause(ctx context.Context, id string, now time.Time) (*spool.Run, error) {
	return s.move(ctx, id, now, "pause", func(st spool.State, runAt *time.Time) (spool.State, bool) {
		return spool.StatePaused, st == spool.StateQueued || st == spool.StateScheduled
	})
}

// RunResume releases a paused run to its original place: queued, or scheduled again when its
// run_at is still ahead.
func (s *Store) RunResume(ctx context.Context, id string, now time.Time) (*spool.Run, error) {
	return s.move(ctx, id, now, "resume", func(st spool.State, runAt *time.Time) (spool.State, bool) {
		if runAt != nil && runAt.After(now) {
			return spool.StateScheduled, st == spool.StatePaused
		}
		return spool.StateQueued, st == spool.StatePaused
	})
}

// move changes one run's state as to decides, writing a status event.
func (s *Store) move(ctx context.Context, id string, now time.Time, action string,
	to func(st spool.State, runAt *time.Time) (spool.State, bool)) (*spool.Run, error) {
	var run *spool.Run
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			st    string
			runAt *time.Time
		)
		err := tx.QueryRow(ctx, `SELECT state, run_at FROM runs WHERE id = $1 FOR UPDATE`, id).Scan(&st, &runAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return err
		}
		next, ok := to(spool.State(st), runAt)
		if !ok {
			return conflict(id, spool.State(st), action)
		}
		var last int64
		run, err = scanRun(tx.QueryRow(ctx, `UPDATE runs SET state = $2 WHERE id = $1
			RETURNING `+runColumns+`, (SELECT coalesce(max(seq), 0) FROM events WHERE run_id = $1)`, id, string(next)), &last)
		if err != nil {
			return err
		}
		var n notes
		var b pgx.Batch
		if err := queueEvents(&b, []*spool.Event{statusEvent(id, last+1, now, next, run.Attempt)}, &n, nil); err != nil {
			return err
		}
		if next == spool.StateQueued {
			n.runnable()
		}
		n.queue(&b, s.channel)
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return nil, wrapRunErr(err, action, id)
	}
	return run, nil
}

// RunDelete deletes a terminal run with its events and deliveries; active runs conflict.
func (s *Store) RunDelete(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockRun(ctx, tx, id)
		if err != nil {
			return err
		}
		if !st.IsTerminal() {
			return conflict(id, st, "delete")
		}
		_, err = tx.Exec(ctx, deleteRunsSQL(`id = $1`), id)
		return err
	})
	return wrapRunErr(err, "delete", id)
}

// deleteRunsSQL deletes the runs matching cond with their events and deliveries, takes them
// out of run_totals, and returns how many it deleted.
func deleteRunsSQL(cond string) string {
	return `WITH d AS (
	DELETE FROM runs WHERE ` + cond + `
	RETURNING id, workspace, state, created_at, started_at, completed_at
), e AS (
	DELETE FROM events WHERE run_id IN (SELECT id FROM d)
), w AS (
	DELETE FROM webhook_deliveries WHERE run_id IN (SELECT id FROM d)
), t AS (
	UPDATE run_totals SET waited = run_totals.waited - x.waited, wait_us = run_totals.wait_us - x.wait_us,
		timed = run_totals.timed - x.timed, duration_us = run_totals.duration_us - x.duration_us
	FROM (
		SELECT workspace, count(*) AS waited,
			sum(` + micros("started_at - created_at") + `) AS wait_us,
			count(completed_at) AS timed,
			coalesce(sum(` + micros("completed_at - started_at") + `), 0) AS duration_us
		FROM d WHERE state IN ` + terminalStates + ` AND started_at IS NOT NULL
		GROUP BY workspace
	) x
	WHERE run_totals.workspace = x.workspace
)
SELECT count(*) FROM d`
}

// micros is the SQL for an interval expression in whole microseconds.
func micros(interval string) string {
	return `(extract(epoch FROM ` + interval + `) * 1000000)::bigint`
}

// RunClear deletes terminal runs completed before Before (all of them when zero). With All it
// first takes active runs created before Before: queued, scheduled and paused ones are
// deleted at once; running ones are marked cancel-requested and purge_on_finish, and are
// deleted when they end.
func (s *Store) RunClear(ctx context.Context, p *store.RunClearParams) (int64, error) {
	var deleted int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		deleted = 0
		if p.Sweep {
			var got bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, lockKey("sweep", s.schema)).Scan(&got); err != nil {
				return err
			}
			if !got {
				return nil // another node is sweeping
			}
		}
		var n notes
		now := p.Now
		if now.IsZero() {
			now = time.Now()
		}
		scope := func(timeCol string, args *[]any) string {
			var conds []string
			if !p.Before.IsZero() {
				*args = append(*args, p.Before)
				conds = append(conds, fmt.Sprintf("%s < $%d", timeCol, len(*args)))
			}
			if p.Workspace != "" {
				*args = append(*args, p.Workspace)
				conds = append(conds, fmt.Sprintf("workspace = $%d", len(*args)))
			}
			if len(conds) == 0 {
				return ""
			}
			return " AND " + strings.Join(conds, " AND ")
		}
		if p.All {
			// Queued runs first, running ones second: a run that a claim starts between the
			// two statements is no longer queued for the first and is running for the second
			// (each statement reads the runs committed when it starts).
			var args []any
			cond := scope("created_at", &args)
			ids, err := collectStrings(tx.Query(ctx, `WITH d AS (
				DELETE FROM runs WHERE (state = 'queued' OR state IN ('scheduled', 'paused'))`+cond+` RETURNING id
			), e AS (
				DELETE FROM events WHERE run_id IN (SELECT id FROM d)
			)
			SELECT id FROM d`, args...))
			if err != nil {
				return err
			}
			for _, id := range ids {
				n.finish(id)
			}
			deleted += int64(len(ids))
			args = []any{now}
			cond = scope("created_at", &args)
			ids, err = collectStrings(tx.Query(ctx, `UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, $1),
				purge_on_finish = true WHERE state = 'running'`+cond+` RETURNING id`, args...))
			if err != nil {
				return err
			}
			for _, id := range ids {
				n.cancel(id)
			}
		}
		var args []any
		cond := scope("completed_at", &args)
		var k int64
		if err := tx.QueryRow(ctx, deleteRunsSQL(`state IN `+terminalStates+cond), args...).Scan(&k); err != nil {
			return err
		}
		deleted += k
		return n.send(ctx, tx, s.channel)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: clear runs: %w", err)
	}
	return deleted, nil
}

func collectStrings(rows pgx.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// RunStats counts runs by state (queued runs by priority on runs_claim, the others on
// runs_state) and reports average wait and duration from run_totals, in one round trip.
func (s *Store) RunStats(ctx context.Context, workspace string) (*spool.Stats, error) {
	st := &spool.Stats{
		QueuedByPriority:   map[string]int64{},
		RunningByAgent:     map[string]int64{},
		RunningByWorkspace: map[string]int64{},
	}
	for p := spool.PriorityLow; p <= spool.PriorityUrgent; p++ {
		st.QueuedByPriority[p.String()] = 0
	}
	filter := `($1 = '' OR workspace = $1)`
	var b pgx.Batch
	b.Queue(`SELECT state, count(*) FROM runs WHERE state <> 'queued' AND `+filter+` GROUP BY state`, workspace).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var state string
			var k int64
			if err := rows.Scan(&state, &k); err != nil {
				return err
			}
			switch spool.State(state) {
			case spool.StateScheduled:
				st.Scheduled = k
			case spool.StateRunning:
				st.Running = k
			case spool.StatePaused:
				st.Paused = k
			case spool.StateSucceeded:
				st.Succeeded = k
			case spool.StateFailed:
				st.Failed = k
			case spool.StateCancelled:
				st.Cancelled = k
			}
			st.Total += k
		}
		return rows.Err()
	})
	b.Queue(`SELECT priority, count(*) FROM runs WHERE state = 'queued' AND `+filter+` GROUP BY priority`, workspace).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var p int16
			var k int64
			if err := rows.Scan(&p, &k); err != nil {
				return err
			}
			st.QueuedByPriority[spool.Priority(p).String()] += k
			st.Queued += k
			st.Total += k
		}
		return rows.Err()
	})
	b.Queue(`SELECT agent, workspace, count(*) FROM runs WHERE state = 'running' AND `+filter+` GROUP BY agent, workspace`, workspace).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var agent, ws string
			var k int64
			if err := rows.Scan(&agent, &ws, &k); err != nil {
				return err
			}
			st.RunningByAgent[agent] += k
			st.RunningByWorkspace[ws] += k
		}
		return rows.Err()
	})
	b.Queue(`SELECT coalesce(sum(waited), 0)::bigint, coalesce(sum(wait_us), 0)::bigint, coalesce(sum(timed), 0)::bigint,
		coalesce(sum(duration_us), 0)::bigint FROM run_totals WHERE `+filter, workspace).QueryRow(func(row pgx.Row) error {
		var waited, waitUS, timed, durUS int64
		if err := row.Scan(&waited, &waitUS, &timed, &durUS); err != nil {
			return err
		}
		if waited > 0 {
			st.AvgWaitSeconds = float64(waitUS) / float64(waited) / 1e6
		}
		if timed > 0 {
			st.AvgDurationSeconds = float64(durUS) / float64(timed) / 1e6
		}
		return nil
	})
	b.Queue(limitsSQL).QueryRow(func(row pgx.Row) error {
		l, err := scanLimits(row)
		st.Limits = l
		return err
	})
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("postgres: stats: %w", err)
	}
	return st, nil
}

// RunHeartbeat extends the leases of the given runs held by node and returns the ids among
// them that have a cancel requested.
func (s *Store) RunHeartbeat(ctx context.Context, node string, ids []string, leaseUntil time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var cancelled []string
	err := retry(ctx, func() error {
		rows, err := s.pool.Query(ctx, `UPDATE runs SET lease_until = $3
			WHERE id = ANY($2) AND node = $1 AND state = 'running'
			RETURNING id, cancel_requested_at IS NOT NULL`, node, ids, leaseUntil)
		if err != nil {
			return err
		}
		cancelled = nil
		for rows.Next() {
			var id string
			var req bool
			if err := rows.Scan(&id, &req); err != nil {
				rows.Close()
				return err
			}
			if req {
				cancelled = append(cancelled, id)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: heartbeat runs of node %s: %w", node, err)
	}
	return cancelled, nil
}

// RunPromote moves scheduled runs whose run_at has come to queued, with a status event each,
// returning how many. Concurrent promoters on other nodes skip the rows this one holds.
func (s *Store) RunPromote(ctx context.Context, now time.Time) (int, error) {
	var k int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		ids, err := collectStrings(tx.Query(ctx, `WITH due AS (
			SELECT id FROM runs WHERE state = 'scheduled' AND run_at <= $1
			ORDER BY run_at FOR UPDATE SKIP LOCKED
		), up AS (
			UPDATE runs r SET state = 'queued' FROM due WHERE r.id = due.id
			RETURNING r.id, r.attempt, (SELECT coalesce(max(seq), 0) FROM events e WHERE e.run_id = r.id) AS last
		)
		INSERT INTO events (run_id, seq, type, ts, status, attempt)
		SELECT id, last + 1, 'status', $1, 'queued', attempt FROM up
		RETURNING run_id`, now))
		if err != nil {
			return err
		}
		k = len(ids)
		if k == 0 {
			return nil
		}
		var n notes
		n.runnable()
		for _, id := range ids {
			n.event(id)
		}
		return n.send(ctx, tx, s.channel)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: promote scheduled runs: %w", err)
	}
	return k, nil
}

// RunNextWake returns the earliest time after now at which a scheduled run falls due or a
// backing-off queued run becomes available.
func (s *Store) RunNextWake(ctx context.Context, now time.Time) (time.Time, bool, error) {
	var t *time.Time
	err := s.pool.QueryRow(ctx, `SELECT least(
		(SELECT min(run_at) FROM runs WHERE state = 'scheduled' AND run_at > $1),
		(SELECT min(available_at) FROM runs WHERE state = 'queued' AND available_at > created_at AND available_at > $1))`,
		now).Scan(&t)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: next wake: %w", err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return t.UTC(), true, nil
}

// RunCancelRequested lists ids of runs held by node that have a cancel requested.
func (s *Store) RunCancelRequested(ctx context.Context, node string) ([]string, error) {
	ids, err := collectStrings(s.pool.Query(ctx, `SELECT id FROM runs
		WHERE state = 'running' AND node = $1 AND cancel_requested_at IS NOT NULL ORDER BY id`, node))
	if err != nil {
		return nil, fmt.Errorf("postgres: cancel-requested runs of node %s: %w", node, err)
	}
	return ids, nil
}
