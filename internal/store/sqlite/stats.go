package sqlite

import (
	"context"
	"strings"

	"github.com/spool-run/spool"
)

// statsKey is one row of run_stats.
type statsKey struct {
	workspace, agent, recipe, state string
	priority                        int64
}

// statsDelta is a change to one run_stats row.
type statsDelta struct {
	runs, waited, waitUS, timed, durationUS int64
}

func (d *statsDelta) add(o statsDelta, sign int64) {
	d.runs += sign * o.runs
	d.waited += sign * o.waited
	d.waitUS += sign * o.waitUS
	d.timed += sign * o.timed
	d.durationUS += sign * o.durationUS
}

// contribution is what run r, as it is, counts for in run_stats.
func contribution(r *spool.Run) (statsKey, statsDelta) {
	k := statsKey{r.Workspace, r.Agent, r.Recipe, string(r.State), int64(r.Priority)}
	d := statsDelta{runs: 1}
	if r.State.IsTerminal() && r.StartedAt != nil {
		d.waited, d.waitUS = 1, micros(*r.StartedAt)-micros(r.CreatedAt)
		if r.CompletedAt != nil {
			d.timed, d.durationUS = 1, micros(*r.CompletedAt)-micros(*r.StartedAt)
		}
	}
	return k, d
}

func (t *wtx) statsChange(k statsKey, d statsDelta, sign int64) {
	if t.stats == nil {
		t.stats = map[statsKey]*statsDelta{}
	}
	cur := t.stats[k]
	if cur == nil {
		cur = &statsDelta{}
		t.stats[k] = cur
	}
	cur.add(d, sign)
}

// statsAdd counts a run that appeared; statsRemove uncounts one that went away.
func (t *wtx) statsAdd(r *spool.Run) {
	k, d := contribution(r)
	t.statsChange(k, d, 1)
}

func (t *wtx) statsRemove(r *spool.Run) {
	k, d := contribution(r)
	t.statsChange(k, d, -1)
}

// statsMove counts r, now in its new state, as having left state from. A run leaving a
// non-terminal state takes only its count with it.
func (t *wtx) statsMove(r *spool.Run, from spool.State) {
	t.statsChange(statsKey{r.Workspace, r.Agent, r.Recipe, string(from), int64(r.Priority)}, statsDelta{runs: 1}, -1)
	t.statsAdd(r)
}

const sqlStatsUpsert = `INSERT INTO run_stats (workspace, agent, recipe, state, priority, runs, waited, wait_us, timed, duration_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO UPDATE SET runs = runs + excluded.runs, waited = waited + excluded.waited,
	wait_us = wait_us + excluded.wait_us, timed = timed + excluded.timed, duration_us = duration_us + excluded.duration_us`

// flushStats writes the pending run_stats changes. The writer calls it when a write
// function returns, and functions call it before reading run_stats.
func (t *wtx) flushStats() error {
	for k, d := range t.stats {
		if *d == (statsDelta{}) {
			continue
		}
		if _, err := t.exec(sqlStatsUpsert, k.workspace, k.agent, k.recipe, k.state, k.priority,
			d.runs, d.waited, d.waitUS, d.timed, d.durationUS); err != nil {
			return err
		}
		t.w.cache.countStats(k, d.runs)
	}
	clear(t.stats)
	return nil
}

// statsForget drops pending changes of a write function that failed.
func (t *wtx) statsForget() { clear(t.stats) }

// statsRemoveWhere uncounts the runs of from (a table clause) matching cond, before a
// set-based delete.
func (t *wtx) statsRemoveWhere(from, cond string, args ...any) error {
	q := strings.Replace(sqlStatsRecount, "FROM runs GROUP BY", "FROM "+from+" WHERE "+cond+" GROUP BY", 1)
	rows, err := t.query(q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k statsKey
			d statsDelta
		)
		if err := rows.Scan(&k.workspace, &k.agent, &k.recipe, &k.state, &k.priority,
			&d.runs, &d.waited, &d.waitUS, &d.timed, &d.durationUS); err != nil {
			return err
		}
		t.statsChange(k, d, -1)
	}
	return rows.Err()
}

const sqlStats = `SELECT state, priority, agent, workspace, sum(runs), sum(waited), sum(wait_us), sum(timed), sum(duration_us)
FROM run_stats WHERE ?1 = '' OR workspace = ?1
GROUP BY state, priority, agent, workspace`

// RunStats reports counts and averages from the run_stats aggregate; it never scans runs.
func (s *Store) RunStats(ctx context.Context, workspace string) (*spool.Stats, error) {
	rows, err := s.queryRead(ctx, sqlStats, workspace)
	if err != nil {
		return nil, wrap("stats", err)
	}
	defer rows.Close()
	st := &spool.Stats{
		QueuedByPriority:   map[string]int64{},
		RunningByAgent:     map[string]int64{},
		RunningByWorkspace: map[string]int64{},
	}
	for _, p := range []spool.Priority{spool.PriorityUrgent, spool.PriorityHigh, spool.PriorityNormal, spool.PriorityLow} {
		st.QueuedByPriority[p.String()] = 0
	}
	var waited, waitUS, timed, durationUS int64
	for rows.Next() {
		var (
			state, agent, ws    string
			priority            int64
			n, wd, wus, tm, dus int64
		)
		if err := rows.Scan(&state, &priority, &agent, &ws, &n, &wd, &wus, &tm, &dus); err != nil {
			return nil, wrap("stats", err)
		}
		waited, waitUS, timed, durationUS = waited+wd, waitUS+wus, timed+tm, durationUS+dus
		if n == 0 {
			continue
		}
		st.Total += n
		switch spool.State(state) {
		case spool.StateQueued:
			st.Queued += n
			st.QueuedByPriority[spool.Priority(priority).String()] += n
		case spool.StateScheduled:
			st.Scheduled += n
		case spool.StateRunning:
			st.Running += n
			st.RunningByAgent[agent] += n
			st.RunningByWorkspace[ws] += n
		case spool.StatePaused:
			st.Paused += n
		case spool.StateSucceeded:
			st.Succeeded += n
		case spool.StateFailed:
			st.Failed += n
		case spool.StateCancelled:
			st.Cancelled += n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("stats", err)
	}
	if waited > 0 {
		st.AvgWaitSeconds = float64(waitUS) / float64(waited) / 1e6
	}
	if timed > 0 {
		st.AvgDurationSeconds = float64(durationUS) / float64(timed) / 1e6
	}
	if st.Limits, err = s.LimitsGet(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// sqlStatsRecount computes run_stats from runs; recountStats uses it to rebuild the table
// (after bulk loads, and in tests that check the running totals).
const sqlStatsRecount = `SELECT workspace, agent, recipe, state, priority, count(*),
	coalesce(sum(state IN ` + terminalStates + ` AND started_at IS NOT NULL), 0),
	coalesce(sum(CASE WHEN state IN ` + terminalStates + ` AND started_at IS NOT NULL THEN started_at - created_at END), 0),
	coalesce(sum(state IN ` + terminalStates + ` AND started_at IS NOT NULL AND completed_at IS NOT NULL), 0),
	coalesce(sum(CASE WHEN state IN ` + terminalStates + ` AND started_at IS NOT NULL AND completed_at IS NOT NULL
		THEN completed_at - started_at END), 0)
FROM runs GROUP BY workspace, agent, recipe, state, priority`

// recountStats rebuilds run_stats from runs.
func recountStats(tx *wtx) error {
	tx.w.cache.forgetCounts()
	if _, err := tx.exec(`DELETE FROM run_stats`); err != nil {
		return err
	}
	_, err := tx.exec(`INSERT INTO run_stats (workspace, agent, recipe, state, priority, runs, waited, wait_us, timed, duration_us) ` + sqlStatsRecount)
	return err
}
