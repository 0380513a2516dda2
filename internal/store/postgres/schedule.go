package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

var _ store.TimeStore = (*Store)(nil)

// scheduleColumns is the column list of queries returning schedules, in scanSchedule's order.
const scheduleColumns = `id, name, workspace, recipe, source, cron, every, timezone, catchup, overlap,
paused, input, config, metadata, priority, agent, timeout_sec, max_retries, next_at, last_at,
last_run_id, created_at, updated_at`

func scanSchedule(row pgx.Row, extra ...any) (*store.Schedule, error) {
	var (
		sc                      store.Schedule
		input, config, metadata *string
		priority                *int16
		timeoutSec              int32
		maxRetries              *int32
		nextAt, lastAt          *time.Time
	)
	dest := []any{&sc.ID, &sc.Name, &sc.Workspace, &sc.Recipe, &sc.Source, &sc.Cron, &sc.Every, &sc.Timezone,
		&sc.Catchup, &sc.Overlap, &sc.Paused, &input, &config, &metadata, &priority, &sc.Agent, &timeoutSec,
		&maxRetries, &nextAt, &lastAt, &sc.LastRunID, &sc.CreatedAt, &sc.UpdatedAt}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	sc.Input, sc.Config = rawJSON(input), rawJSON(config)
	if metadata != nil && *metadata != "" {
		if err := json.Unmarshal([]byte(*metadata), &sc.Metadata); err != nil {
			return nil, fmt.Errorf("schedule %s: decode metadata: %w", sc.ID, err)
		}
	}
	if priority != nil {
		p := spool.Priority(*priority)
		sc.Priority = &p
	}
	sc.TimeoutSec = int(timeoutSec)
	if maxRetries != nil {
		n := int(*maxRetries)
		sc.MaxRetries = &n
	}
	sc.NextAt, sc.LastAt = utcPtr(nextAt), utcPtr(lastAt)
	sc.CreatedAt, sc.UpdatedAt = sc.CreatedAt.UTC(), sc.UpdatedAt.UTC()
	return &sc, nil
}

func scanSchedules(rows pgx.Rows, err error) ([]*store.Schedule, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Schedule
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

func scheduleNotFound(id string) error {
	return &spool.Error{Code: spool.CodeNotFound, Message: fmt.Sprintf("schedule %s not found", id)}
}

// upsertScheduleSQL inserts a schedule or replaces the definition of the one with the same
// workspace and name, when it has the same source. The next tick changes only with the
// timing; updated_at only when something changed.
const upsertScheduleSQL = `INSERT INTO schedules (id, name, workspace, recipe, source, cron, every, timezone,
	catchup, overlap, paused, input, config, metadata, priority, agent, timeout_sec, max_retries,
	next_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, nullif($12, ''), nullif($13, ''), nullif($14, ''),
	$15, $16, $17, $18, $19, $20, $20)
ON CONFLICT (workspace, name) DO UPDATE SET
	recipe = excluded.recipe, cron = excluded.cron, every = excluded.every, timezone = excluded.timezone,
	catchup = excluded.catchup, overlap = excluded.overlap, input = excluded.input,
	config = excluded.config, metadata = excluded.metadata, priority = excluded.priority,
	agent = excluded.agent, timeout_sec = excluded.timeout_sec, max_retries = excluded.max_retries,
	next_at = CASE WHEN schedules.next_at IS NULL OR (schedules.cron, schedules.every, schedules.timezone)
			IS DISTINCT FROM (excluded.cron, excluded.every, excluded.timezone)
		THEN excluded.next_at ELSE schedules.next_at END,
	updated_at = CASE WHEN (schedules.recipe, schedules.cron, schedules.every, schedules.timezone,
			schedules.catchup, schedules.overlap, schedules.input, schedules.config, schedules.metadata,
			schedules.priority, schedules.agent, schedules.timeout_sec, schedules.max_retries)
		IS DISTINCT FROM (excluded.recipe, excluded.cron, excluded.every, excluded.timezone,
			excluded.catchup, excluded.overlap, excluded.input, excluded.config, excluded.metadata,
			excluded.priority, excluded.agent, excluded.timeout_sec, excluded.max_retries)
		THEN excluded.updated_at ELSE schedules.updated_at END
WHERE schedules.source = excluded.source
RETURNING ` + scheduleColumns + `, (xmax = 0)`

// ScheduleUpsert creates a schedule or replaces the definition of the one with the same
// workspace and name.
func (s *Store) ScheduleUpsert(ctx context.Context, p *store.ScheduleUpsertParams) (*store.Schedule, bool, error) {
	meta, err := jsonText(p.Metadata)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: schedule %s: encode metadata: %w", p.Name, err)
	}
	var priority *int16
	if p.Priority != nil {
		v := int16(*p.Priority)
		priority = &v
	}
	var maxRetries *int32
	if p.MaxRetries != nil {
		v := int32(*p.MaxRetries)
		maxRetries = &v
	}
	q := upsertScheduleSQL
	if p.IfAbsent {
		q = q[:strings.Index(q, "ON CONFLICT")] + "ON CONFLICT (workspace, name) DO NOTHING RETURNING " + scheduleColumns + ", true"
	}
	var (
		sc      *store.Schedule
		created bool
	)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		sc, err = scanSchedule(tx.QueryRow(ctx, q, p.ID, p.Name, p.Workspace, p.Recipe, p.Source, p.Cron,
			p.Every, p.Timezone, p.Catchup, p.Overlap, p.Paused, string(p.Input), string(p.Config), meta,
			priority, p.Agent, int32(p.TimeoutSec), maxRetries, nullTime(&p.NextAt), p.Now), &created)
		if errors.Is(err, pgx.ErrNoRows) {
			return &spool.Error{Code: spool.CodeConflict,
				Message: fmt.Sprintf("a schedule named %q already exists in workspace %s", p.Name, p.Workspace)}
		}
		if err != nil {
			return err
		}
		var n notes
		n.add(store.TopicSchedule, sc.ID)
		return n.send(ctx, tx, s.channel)
	})
	if err != nil {
		return nil, false, wrapScheduleErr(err, "store", p.Name)
	}
	return sc, created, nil
}

func wrapScheduleErr(err error, action, id string) error {
	var se *spool.Error
	if err == nil || errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("postgres: %s schedule %s: %w", action, id, err)
}

// ScheduleGet returns a schedule by id, or by name within workspace.
func (s *Store) ScheduleGet(ctx context.Context, workspace, idOrName string) (*store.Schedule, error) {
	sc, err := scanSchedule(s.pool.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules
		WHERE id = $1 OR (workspace = $2 AND name = $1) ORDER BY (id = $1) DESC LIMIT 1`, idOrName, workspace))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, scheduleNotFound(idOrName)
	}
	if err != nil {
		return nil, wrapScheduleErr(err, "get", idOrName)
	}
	return sc, nil
}

// ScheduleList returns schedules sorted by workspace and name.
func (s *Store) ScheduleList(ctx context.Context, p *store.ScheduleListParams) ([]*store.Schedule, error) {
	out, err := scanSchedules(s.pool.Query(ctx, `SELECT `+scheduleColumns+` FROM schedules
		WHERE ($1 = '' OR workspace = $1) AND ($2 = '' OR source = $2) AND ($3 = '' OR recipe = $3)
		ORDER BY workspace, name`, p.Workspace, p.Source, p.Recipe))
	if err != nil {
		return nil, fmt.Errorf("postgres: list schedules: %w", err)
	}
	return out, nil
}

// ScheduleDelete deletes a schedule.
func (s *Store) ScheduleDelete(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM schedules WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return scheduleNotFound(id)
		}
		var n notes
		n.add(store.TopicSchedule, id)
		return n.send(ctx, tx, s.channel)
	})
	return wrapScheduleErr(err, "delete", id)
}

// ScheduleSetPaused pauses or resumes a schedule; resuming moves the next tick to nextAt.
func (s *Store) ScheduleSetPaused(ctx context.Context, id string, paused bool, nextAt, now time.Time) (*store.Schedule, error) {
	var sc *store.Schedule
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		sc, err = scanSchedule(tx.QueryRow(ctx, `UPDATE schedules SET paused = $2,
			next_at = CASE WHEN $2 OR NOT paused THEN next_at ELSE $3 END,
			updated_at = CASE WHEN paused = $2 THEN updated_at ELSE $4 END
			WHERE id = $1 RETURNING `+scheduleColumns, id, paused, nullTime(&nextAt), now))
		if errors.Is(err, pgx.ErrNoRows) {
			return scheduleNotFound(id)
		}
		if err != nil {
			return err
		}
		var n notes
		n.add(store.TopicSchedule, id)
		return n.send(ctx, tx, s.channel)
	})
	if err != nil {
		return nil, wrapScheduleErr(err, "pause", id)
	}
	return sc, nil
}

// ScheduleDue returns schedules whose next tick has come.
func (s *Store) ScheduleDue(ctx context.Context, now time.Time, limit int) ([]*store.Schedule, error) {
	out, err := scanSchedules(s.pool.Query(ctx, `SELECT `+scheduleColumns+` FROM schedules
		WHERE NOT paused AND next_at <= $1 ORDER BY next_at LIMIT $2`, now, limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: due schedules: %w", err)
	}
	return out, nil
}

// ScheduleNextWake returns the earliest next tick of the active schedules.
func (s *Store) ScheduleNextWake(ctx context.Context) (time.Time, bool, error) {
	var t *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(next_at) FROM schedules WHERE NOT paused`).Scan(&t); err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: next schedule tick: %w", err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return t.UTC(), true, nil
}

// ScheduleFire moves a schedule's next tick, guarded by the value the caller read, and
// inserts the runs of its ticks, in one transaction.
func (s *Store) ScheduleFire(ctx context.Context, p *store.ScheduleFireParams) (*store.ScheduleFireResult, error) {
	var res *store.ScheduleFireResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = &store.ScheduleFireResult{}
		var err error
		if p.Trigger {
			_, err = scanSchedule(tx.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE id = $1 FOR UPDATE`, p.ID))
			if errors.Is(err, pgx.ErrNoRows) {
				return scheduleNotFound(p.ID)
			}
		} else {
			// The guard: a node that read the same next tick and fires second updates nothing.
			_, err = scanSchedule(tx.QueryRow(ctx, `UPDATE schedules SET next_at = $3
				WHERE id = $1 AND next_at = $2 AND NOT paused RETURNING `+scheduleColumns,
				p.ID, p.ExpectNextAt, nullTime(&p.NextAt)))
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // fired elsewhere, paused, or deleted
			}
		}
		if err != nil {
			return err
		}
		res.Fired = true
		runs := p.Runs
		if p.SkipIfActive && !p.Trigger && len(runs) > 0 {
			var active bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM runs WHERE schedule_id = $1
				AND state IN ('queued', 'scheduled', 'running', 'paused'))`, p.ID).Scan(&active); err != nil {
				return err
			}
			if active {
				runs = nil
			} else {
				runs = runs[:1]
			}
		}
		res.Skipped = len(p.Runs) - len(runs)
		if len(runs) > 0 {
			// A tick whose run exists (runs_schedule_tick) starts nothing.
			var runnable bool
			res.Runs, runnable, err = insertSkipping(ctx, tx, runs)
			if err != nil {
				return err
			}
			res.Skipped += len(runs) - len(res.Runs)
			if runnable && len(res.Runs) > 0 {
				var n notes
				n.runnable()
				if err := n.send(ctx, tx, s.channel); err != nil {
					return err
				}
			}
		}
		var last *spool.Run
		for _, r := range res.Runs {
			if last == nil || r.ScheduledFor != nil && last.ScheduledFor != nil && r.ScheduledFor.After(*last.ScheduledFor) {
				last = r
			}
		}
		var lastAt pgtype.Timestamptz
		lastID := ""
		if last != nil {
			lastAt, lastID = nullTime(last.ScheduledFor), last.ID
		}
		res.Schedule, err = scanSchedule(tx.QueryRow(ctx, `UPDATE schedules SET
			last_at = CASE WHEN $3 = '' THEN last_at ELSE $2 END,
			last_run_id = CASE WHEN $3 = '' THEN last_run_id ELSE $3 END
			WHERE id = $1 RETURNING `+scheduleColumns, p.ID, lastAt, lastID))
		return err
	})
	if err != nil {
		return nil, wrapScheduleErr(err, "fire", p.ID)
	}
	return res, nil
}
