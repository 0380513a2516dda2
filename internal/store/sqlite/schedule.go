package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

var _ store.TimeStore = (*Store)(nil)

// scheduleColumns is the column list of queries returning schedules, in scanSchedule's order.
const scheduleColumns = `id, name, workspace, recipe, source, cron, every, timezone, catchup, overlap,
paused, input, config, metadata, priority, agent, timeout_sec, max_retries, next_at, last_at,
last_run_id, created_at, updated_at`

func scanSchedule(sc scanner) (*store.Schedule, error) {
	var (
		s                       store.Schedule
		paused, timeout         intCol
		input, config, metadata jsonCol
		priority, maxRetries    *int64
		nextAt, lastAt          timeCol
		createdAt, updatedAt    timeCol
	)
	if err := sc.Scan(&s.ID, &s.Name, &s.Workspace, &s.Recipe, &s.Source, &s.Cron, &s.Every, &s.Timezone,
		&s.Catchup, &s.Overlap, &paused, &input, &config, &metadata, &priority, &s.Agent, &timeout,
		&maxRetries, &nextAt, &lastAt, &s.LastRunID, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	s.Paused = paused != 0
	s.Input, s.Config = rawJSON(input), rawJSON(config)
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &s.Metadata); err != nil {
			return nil, fmt.Errorf("schedule %s: decode metadata: %w", s.ID, err)
		}
	}
	if priority != nil {
		p := spool.Priority(*priority)
		s.Priority = &p
	}
	s.TimeoutSec = int(timeout)
	if maxRetries != nil {
		n := int(*maxRetries)
		s.MaxRetries = &n
	}
	s.NextAt, s.LastAt = nextAt.ptr(), lastAt.ptr()
	s.CreatedAt, s.UpdatedAt = createdAt.value(), updatedAt.value()
	return &s, nil
}

func scanSchedules(rows interface {
	scanner
	Next() bool
	Close() error
	Err() error
}, err error) ([]*store.Schedule, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Schedule
	for rows.Next() {
		s, err := scanSchedule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func scheduleNotFound(id string) error {
	return &spool.Error{Code: spool.CodeNotFound, Message: fmt.Sprintf("schedule %s not found", id)}
}

const (
	sqlScheduleByID   = `SELECT ` + scheduleColumns + ` FROM schedules WHERE id = ?`
	sqlScheduleByName = `SELECT ` + scheduleColumns + ` FROM schedules WHERE workspace = ? AND name = ?`
	sqlScheduleInsert = `INSERT INTO schedules (id, name, workspace, recipe, source, cron, every, timezone,
	catchup, overlap, paused, input, config, metadata, priority, agent, timeout_sec, max_retries,
	next_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlScheduleReplace = `UPDATE schedules SET recipe = ?2, cron = ?3, every = ?4, timezone = ?5,
	catchup = ?6, overlap = ?7, input = ?8, config = ?9, metadata = ?10, priority = ?11, agent = ?12,
	timeout_sec = ?13, max_retries = ?14, next_at = ?15, updated_at = ?16
WHERE id = ?1`
)

// ScheduleUpsert creates a schedule or replaces the definition of the one with the same
// workspace and name.
func (s *Store) ScheduleUpsert(ctx context.Context, p *store.ScheduleUpsertParams) (*store.Schedule, bool, error) {
	metadata, err := jsonText(p.Metadata)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: schedule %s: encode metadata: %w", p.Name, err)
	}
	var priority, maxRetries any
	if p.Priority != nil {
		priority = int64(*p.Priority)
	}
	if p.MaxRetries != nil {
		maxRetries = int64(*p.MaxRetries)
	}
	var (
		out     *store.Schedule
		created bool
	)
	err = s.write(ctx, func(tx *wtx) error {
		cur, err := scanSchedule(tx.queryRow(sqlScheduleByName, p.Workspace, p.Name))
		switch {
		case isNoRows(err):
			var paused int64
			if p.Paused {
				paused = 1
			}
			if _, err := tx.exec(sqlScheduleInsert, p.ID, p.Name, p.Workspace, p.Recipe, p.Source, p.Cron,
				p.Every, p.Timezone, p.Catchup, p.Overlap, paused, nullText(p.Input), nullText(p.Config),
				metadata, priority, p.Agent, p.TimeoutSec, maxRetries, nullMicros(&p.NextAt), micros(p.Now), micros(p.Now)); err != nil {
				return err
			}
			created = true
			out, err = scanSchedule(tx.queryRow(sqlScheduleByID, p.ID))
			return err
		case err != nil:
			return err
		case p.IfAbsent || cur.Source != p.Source:
			return &spool.Error{Code: spool.CodeConflict,
				Message: fmt.Sprintf("a schedule named %q already exists in workspace %s", p.Name, p.Workspace)}
		}
		next := cur.NextAt
		if next == nil || cur.Cron != p.Cron || cur.Every != p.Every || cur.Timezone != p.Timezone {
			next = &p.NextAt
		}
		updated := cur.UpdatedAt
		if scheduleChanged(cur, &p.Schedule) {
			updated = p.Now
		}
		if _, err := tx.exec(sqlScheduleReplace, cur.ID, p.Recipe, p.Cron, p.Every, p.Timezone, p.Catchup,
			p.Overlap, nullText(p.Input), nullText(p.Config), metadata, priority, p.Agent, p.TimeoutSec,
			maxRetries, nullMicros(next), micros(updated)); err != nil {
			return err
		}
		out, err = scanSchedule(tx.queryRow(sqlScheduleByID, cur.ID))
		return err
	})
	if err != nil {
		return nil, false, wrap("store schedule "+p.Name, err)
	}
	return out, created, nil
}

// scheduleChanged reports whether b's definition differs from a's.
func scheduleChanged(a, b *store.Schedule) bool {
	ja, _ := json.Marshal([]any{a.Recipe, a.Cron, a.Every, a.Timezone, a.Catchup, a.Overlap, a.Input,
		a.Config, a.Metadata, a.Priority, a.Agent, a.TimeoutSec, a.MaxRetries})
	jb, _ := json.Marshal([]any{b.Recipe, b.Cron, b.Every, b.Timezone, b.Catchup, b.Overlap, b.Input,
		b.Config, b.Metadata, b.Priority, b.Agent, b.TimeoutSec, b.MaxRetries})
	return string(ja) != string(jb)
}

// ScheduleGet returns a schedule by id, or by name within workspace.
func (s *Store) ScheduleGet(ctx context.Context, workspace, idOrName string) (*store.Schedule, error) {
	sc, err := scanSchedule(s.queryRowRead(ctx, sqlScheduleByID, idOrName))
	if isNoRows(err) && workspace != "" {
		sc, err = scanSchedule(s.queryRowRead(ctx, sqlScheduleByName, workspace, idOrName))
	}
	if isNoRows(err) {
		return nil, scheduleNotFound(idOrName)
	}
	if err != nil {
		return nil, wrap("get schedule", err)
	}
	return sc, nil
}

// ScheduleList returns schedules sorted by workspace and name.
func (s *Store) ScheduleList(ctx context.Context, p *store.ScheduleListParams) ([]*store.Schedule, error) {
	out, err := scanSchedules(s.queryRead(ctx, `SELECT `+scheduleColumns+` FROM schedules
		WHERE (?1 = '' OR workspace = ?1) AND (?2 = '' OR source = ?2) AND (?3 = '' OR recipe = ?3)
		ORDER BY workspace, name`, p.Workspace, p.Source, p.Recipe))
	if err != nil {
		return nil, wrap("list schedules", err)
	}
	return out, nil
}

// ScheduleDelete deletes a schedule.
func (s *Store) ScheduleDelete(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM schedules WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err == nil {
				err = scheduleNotFound(id)
			}
			return err
		}
		return nil
	})
	return wrap("delete schedule", err)
}

// ScheduleSetPaused pauses or resumes a schedule; resuming moves the next tick to nextAt.
func (s *Store) ScheduleSetPaused(ctx context.Context, id string, paused bool, nextAt, now time.Time) (*store.Schedule, error) {
	var out *store.Schedule
	err := s.write(ctx, func(tx *wtx) error {
		cur, err := scanSchedule(tx.queryRow(sqlScheduleByID, id))
		if isNoRows(err) {
			return scheduleNotFound(id)
		}
		if err != nil {
			return err
		}
		if cur.Paused != paused {
			next := cur.NextAt
			if !paused {
				next = &nextAt
			}
			var p int64
			if paused {
				p = 1
			}
			if _, err := tx.exec(`UPDATE schedules SET paused = ?, next_at = ?, updated_at = ? WHERE id = ?`,
				p, nullMicros(next), micros(now), id); err != nil {
				return err
			}
		}
		out, err = scanSchedule(tx.queryRow(sqlScheduleByID, id))
		return err
	})
	if err != nil {
		return nil, wrap("pause schedule", err)
	}
	return out, nil
}

// ScheduleDue returns schedules whose next tick has come, earliest first.
func (s *Store) ScheduleDue(ctx context.Context, now time.Time, limit int) ([]*store.Schedule, error) {
	out, err := scanSchedules(s.queryRead(ctx, `SELECT `+scheduleColumns+` FROM schedules INDEXED BY schedules_due
		WHERE paused = 0 AND next_at IS NOT NULL AND next_at <= ? ORDER BY next_at LIMIT ?`, micros(now), limit))
	if err != nil {
		return nil, wrap("due schedules", err)
	}
	return out, nil
}

// ScheduleNextWake returns the earliest next tick of the active schedules.
func (s *Store) ScheduleNextWake(ctx context.Context) (time.Time, bool, error) {
	var t *int64
	if err := s.queryRowRead(ctx, `SELECT min(next_at) FROM schedules WHERE paused = 0 AND next_at IS NOT NULL`).Scan(&t); err != nil {
		return time.Time{}, false, wrap("next schedule tick", err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return fromMicros(*t), true, nil
}

const (
	sqlTickExists = `SELECT EXISTS (SELECT 1 FROM runs INDEXED BY runs_schedule_tick
	WHERE schedule_id = ? AND schedule_id <> '' AND scheduled_for = ?)`
	sqlScheduleActive = `SELECT EXISTS (SELECT 1 FROM runs INDEXED BY runs_schedule_active
	WHERE schedule_id = ? AND schedule_id <> '' AND completed_at IS NULL)`
)

// ScheduleFire moves a schedule's next tick, guarded by the value the caller read, and
// inserts the runs of its ticks, in one transaction. Runs for ticks that have one already
// are skipped (the unique index runs_schedule_tick backs this).
func (s *Store) ScheduleFire(ctx context.Context, p *store.ScheduleFireParams) (*store.ScheduleFireResult, error) {
	var res *store.ScheduleFireResult
	err := s.write(ctx, func(tx *wtx) error {
		res = &store.ScheduleFireResult{}
		if p.Trigger {
			if _, err := scanSchedule(tx.queryRow(sqlScheduleByID, p.ID)); isNoRows(err) {
				return scheduleNotFound(p.ID)
			} else if err != nil {
				return err
			}
		} else {
			r, err := tx.exec(`UPDATE schedules SET next_at = ? WHERE id = ? AND next_at = ? AND paused = 0`,
				nullMicros(&p.NextAt), p.ID, micros(p.ExpectNextAt))
			if err != nil {
				return err
			}
			if n, err := r.RowsAffected(); err != nil || n == 0 {
				return err // fired elsewhere, paused, or deleted
			}
		}
		res.Fired = true
		runs := p.Runs
		if p.SkipIfActive && !p.Trigger && len(runs) > 0 {
			var active bool
			if err := tx.queryRow(sqlScheduleActive, p.ID).Scan(&active); err != nil {
				return err
			}
			if active {
				runs = nil
			} else {
				runs = runs[:1]
			}
		}
		res.Skipped = len(p.Runs) - len(runs)
		var last *spool.Run
		for _, rp := range runs {
			if rp.ScheduledFor != nil {
				var exists bool
				if err := tx.queryRow(sqlTickExists, p.ID, micros(*rp.ScheduledFor)).Scan(&exists); err != nil {
					return err
				}
				if exists {
					res.Skipped++
					continue
				}
			}
			r, _, err := insertRun(tx, rp, false)
			if err != nil {
				return err
			}
			res.Runs = append(res.Runs, r)
			if last == nil || r.ScheduledFor != nil && last.ScheduledFor != nil && r.ScheduledFor.After(*last.ScheduledFor) {
				last = r
			}
		}
		if last != nil {
			if _, err := tx.exec(`UPDATE schedules SET last_at = ?, last_run_id = ? WHERE id = ?`,
				nullMicros(last.ScheduledFor), last.ID, p.ID); err != nil {
				return err
			}
		}
		var err error
		res.Schedule, err = scanSchedule(tx.queryRow(sqlScheduleByID, p.ID))
		return err
	})
	if err != nil {
		return nil, wrap("fire schedule "+p.ID, err)
	}
	return res, nil
}

// sqlBuckets reads the buckets that matter at ?1: not yet full again, or held.
const sqlBuckets = `SELECT key, tokens, updated_at, full_at, held_until FROM rate_buckets
WHERE full_at > ?1 OR held_until > ?1`

// loadBuckets reads the stored buckets and holds into a bucket accounting, with the
// node's own holds added. (Claims read them from the writer's claimCache.)
func loadBuckets(q func(string, ...any) (rowsScanner, error), p *store.RunClaimParams) (*store.Buckets, error) {
	b := store.NewBuckets(p.Rates, p.Now)
	for _, a := range p.HeldAgents {
		b.HoldLocal(store.RateKey(store.RateAgent, a))
	}
	rows, err := q(sqlBuckets, micros(p.Now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			row           store.BucketRow
			updated, full timeCol
			held          timeCol
		)
		if err := rows.Scan(&row.Key, &row.Tokens, &updated, &full, &held); err != nil {
			return nil, err
		}
		row.UpdatedAt, row.FullAt, row.HeldUntil = updated.value(), full.value(), held.ptr()
		b.Load(row)
	}
	return b, rows.Err()
}

// rowsScanner is what *sql.Rows offers loadBuckets.
type rowsScanner interface {
	scanner
	Next() bool
	Close() error
	Err() error
}

// RateHold holds key until until; a later hold wins.
func (s *Store) RateHold(ctx context.Context, key string, until time.Time) error {
	err := s.write(ctx, func(tx *wtx) error { return tx.w.cache.hold(tx, key, until) })
	return wrap("hold "+key, err)
}

// RateList returns the buckets that are empty or held at now, with the queued runs waiting
// on each and on any of them.
func (s *Store) RateList(ctx context.Context, rates map[string]store.Rate, now time.Time) ([]*store.RateState, int64, error) {
	b, err := loadBuckets(func(q string, args ...any) (rowsScanner, error) { return s.queryRead(ctx, q, args...) },
		&store.RunClaimParams{Rates: rates, Now: now})
	if err != nil {
		return nil, 0, wrap("list rate buckets", err)
	}
	states := b.States()
	if len(states) == 0 {
		return nil, 0, nil
	}
	columns := map[string]string{store.RateAgent: "agent", store.RateWorkspace: "workspace", store.RateRecipe: "recipe"}
	byKind := map[string][]string{}
	for _, st := range states {
		kind, name, _ := strings.Cut(st.Key, ":")
		col := columns[kind]
		if col == "" {
			continue
		}
		byKind[kind] = append(byKind[kind], name)
		// run_stats counts queued runs by group without scanning runs.
		if err := s.queryRowRead(ctx, `SELECT coalesce(sum(runs), 0) FROM run_stats WHERE state = 'queued' AND `+col+` = ?`,
			name).Scan(&st.Waiting); err != nil {
			return nil, 0, wrap("count runs waiting on rate limits", err)
		}
	}
	var total int64
	if err := s.queryRowRead(ctx, `SELECT coalesce(sum(runs), 0) FROM run_stats WHERE state = 'queued'
		AND (agent IN (SELECT value FROM json_each(?1)) OR workspace IN (SELECT value FROM json_each(?2))
			OR recipe IN (SELECT value FROM json_each(?3)))`,
		jsonList(byKind[store.RateAgent]), jsonList(byKind[store.RateWorkspace]), jsonList(byKind[store.RateRecipe])).Scan(&total); err != nil {
		return nil, 0, wrap("count runs waiting on rate limits", err)
	}
	return states, total, nil
}
