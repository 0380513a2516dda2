package sqlite

import (
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// claimCache keeps in memory what every claim reads: the rate buckets (rate_buckets) and
// the queued and running runs by (agent, workspace) (run_stats). The writer goroutine makes
// every write and owns the cache, so the cache follows the database as the writes change
// it, and a claim reads neither table. A part not loaded is read from the database at its
// next use; whenever a transaction that changed the cache rolls back (wholly or a write
// function's savepoint), the whole cache is dropped.
type claimCache struct {
	// changed: the cache took changes that the open transaction has not committed yet.
	changed bool

	buckets *store.BucketCache // every row of rate_buckets; nil until read

	countsLoaded bool
	queued       map[group]int64 // groups with queued runs
	running      map[group]int64 // groups with running runs

	// The groups with queued runs split by whether the stored buckets block them (their
	// agent's or workspace's is empty or held), as of buckets' version groupsVersion: open
	// are the queued groups not blocked, and blockedQueued counts the others' queued runs.
	groupsOK      bool
	groupsVersion uint64
	open          map[group]int64
	blockedQueued int64
}

// reset drops the whole cache.
func (c *claimCache) reset() { *c = claimCache{} }

// undo is called when the transaction's changes, or one write function's, are rolled back.
func (c *claimCache) undo() {
	if c.changed {
		c.reset()
	}
}

// committed is called when the transaction ended: its changes are the database's now.
func (c *claimCache) committed() { c.changed = false }

// loadBuckets reads rate_buckets into the cache when it is not loaded.
func (c *claimCache) loadBuckets(tx *wtx) error {
	if c.buckets != nil {
		return nil
	}
	rows, err := tx.query(`SELECT key, tokens, updated_at, full_at, held_until FROM rate_buckets`)
	if err != nil {
		return err
	}
	defer rows.Close()
	buckets := store.NewBucketCache()
	for rows.Next() {
		var (
			row                 store.BucketRow
			updated, full, held timeCol
		)
		if err := rows.Scan(&row.Key, &row.Tokens, &updated, &full, &held); err != nil {
			return err
		}
		row.UpdatedAt, row.FullAt, row.HeldUntil = updated.value(), full.value(), held.ptr()
		buckets.Put(row)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// Read inside the transaction, the rows may hold its changes: the cache now does too.
	c.buckets, c.changed = buckets, true
	return nil
}

// storeBuckets writes the buckets a claim took tokens from, keeping their holds.
func (c *claimCache) storeBuckets(tx *wtx, rows []store.BucketRow) error {
	for _, r := range rows {
		updated, full := micros(r.UpdatedAt), micros(r.FullAt)
		if _, err := tx.exec(`INSERT INTO rate_buckets (key, tokens, updated_at, full_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at,
				full_at = excluded.full_at`, r.Key, r.Tokens, updated, full); err != nil {
			return err
		}
		if c.buckets == nil {
			continue
		}
		c.changed = true
		old, _ := c.buckets.Get(r.Key)
		c.buckets.Put(store.BucketRow{Key: r.Key, Tokens: r.Tokens, UpdatedAt: fromMicros(updated),
			FullAt: fromMicros(full), HeldUntil: old.HeldUntil})
	}
	return nil
}

// hold stores a hold on key until until; a later hold wins.
func (c *claimCache) hold(tx *wtx, key string, until time.Time) error {
	us := micros(until)
	if _, err := tx.exec(`INSERT INTO rate_buckets (key, tokens, updated_at, full_at, held_until) VALUES (?, 0, 0, 0, ?)
			ON CONFLICT (key) DO UPDATE SET held_until = max(coalesce(held_until, 0), excluded.held_until)`,
		key, us); err != nil {
		return err
	}
	if c.buckets == nil {
		return nil
	}
	c.changed = true
	row, ok := c.buckets.Get(key)
	switch {
	case !ok:
		row = store.BucketRow{Key: key, UpdatedAt: fromMicros(0), FullAt: fromMicros(0)}
	case row.HeldUntil == nil:
		us = max(us, 0)
	default:
		us = max(us, micros(*row.HeldUntil))
	}
	h := fromMicros(us)
	row.HeldUntil = &h
	c.buckets.Put(row)
	return nil
}

// loadCounts reads the queued and running runs by group from run_stats when they are not
// loaded.
func (c *claimCache) loadCounts(tx *wtx) error {
	if c.countsLoaded {
		return nil
	}
	rows, err := tx.query(sqlClaimCounts)
	if err != nil {
		return err
	}
	defer rows.Close()
	queued, running := map[group]int64{}, map[group]int64{}
	for rows.Next() {
		var (
			g     group
			state string
			n     int64
		)
		if err := rows.Scan(&g.agent, &g.workspace, &state, &n); err != nil {
			return err
		}
		if state == string(spool.StateRunning) {
			running[g] += n
		} else {
			queued[g] += n
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	c.queued, c.running, c.countsLoaded, c.changed = queued, running, true, true
	return nil
}

// forgetCounts drops the counts, after run_stats was rebuilt.
func (c *claimCache) forgetCounts() {
	c.countsLoaded, c.queued, c.running = false, nil, nil
	c.groupsOK, c.open = false, nil
}

// blockedGroup reports whether the stored buckets block g's runs.
func (c *claimCache) blockedGroup(g group) bool {
	return c.buckets.Blocked(store.RateAgent, g.agent) || c.buckets.Blocked(store.RateWorkspace, g.workspace)
}

// splitGroups splits the queued groups into open and blocked, unless they are split for
// the buckets' current version. The counts and buckets must be loaded.
func (c *claimCache) splitGroups() {
	if c.groupsOK && c.groupsVersion == c.buckets.Version() {
		return
	}
	c.open, c.blockedQueued = map[group]int64{}, 0
	for g, n := range c.queued {
		if c.blockedGroup(g) {
			c.blockedQueued += n
		} else {
			c.open[g] = n
		}
	}
	c.groupsOK, c.groupsVersion, c.changed = true, c.buckets.Version(), true
}

// countStats follows a change of n runs written to the run_stats row of k.
func (c *claimCache) countStats(k statsKey, n int64) {
	if !c.countsLoaded || n == 0 {
		return
	}
	var m map[group]int64
	switch spool.State(k.state) {
	case spool.StateQueued:
		m = c.queued
	case spool.StateRunning:
		m = c.running
	default:
		return
	}
	c.changed = true
	g := group{k.agent, k.workspace}
	v := m[g] + n
	if v > 0 {
		m[g] = v
	} else {
		delete(m, g)
	}
	if spool.State(k.state) != spool.StateQueued || !c.groupsOK {
		return
	}
	switch {
	case c.buckets == nil || c.groupsVersion != c.buckets.Version():
		c.groupsOK = false // split again at the next claim
	case c.blockedGroup(g):
		c.blockedQueued += n
	case v > 0:
		c.open[g] = v
	default:
		delete(c.open, g)
	}
}
