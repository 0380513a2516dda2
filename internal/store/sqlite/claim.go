package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// How the claim finds candidates. The normal plan walks the runs_claim index (priority DESC,
// seq) and skips, inside the index, the runs of full or held groups and of busy sessions.
// Skipping costs one index entry per skipped run, so when full groups hold more than
// groupScanMin queued runs and at most groupScanMaxGroups (agent, workspace) groups have
// room, the claim instead reads the head of each group that has room from runs_claim_group
// and merges them.
const (
	groupScanMin       = 2000
	groupScanMaxGroups = 64
	claimSlack         = 8
	claimMaxRounds     = 64
)

const (
	// sqlClaimCounts: queued and running runs by (agent, workspace), from the aggregate (summed
	// over recipes and priorities by the caller: cheaper than a GROUP BY's sort). The writer's
	// claimCache reads it once and then follows the changes.
	sqlClaimCounts = `SELECT agent, workspace, state, runs FROM run_stats
WHERE state IN ('queued', 'running') AND runs > 0`
	// sqlFinishingRuns: the groups of the given runs (a JSON list of ids) still running.
	sqlFinishingRuns = `SELECT agent, workspace FROM runs WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'running'`
	sqlBusySessions  = `SELECT DISTINCT workspace, session_id FROM runs INDEXED BY runs_running
WHERE state = 'running' AND session_id > ''`

	// claimSessionFilter keeps runs without a session, and the head (earliest queued run)
	// of each session that has no running run. A session is a session_id within a
	// workspace; ?4 lists the busy ones as sessionKey values.
	claimSessionFilter = `(r.session_id = '' OR (
	r.workspace || char(31) || r.session_id NOT IN (SELECT value FROM json_each(?4))
	AND NOT EXISTS (SELECT 1 FROM runs AS e INDEXED BY runs_session_queue
		WHERE e.state = 'queued' AND e.session_id <> '' AND e.workspace = r.workspace
			AND e.session_id = r.session_id AND e.seq < r.seq)))`

	// sqlClaimScan: ?1 now, ?2 excluded agents, ?3 excluded workspaces, ?4 busy sessions,
	// ?5 limit. (No recipe: runs_claim covers every column read here.)
	sqlClaimScan = `SELECT r.seq, r.priority, r.agent, r.workspace, r.session_id, ''
FROM runs AS r INDEXED BY runs_claim
WHERE r.state = 'queued' AND r.available_at <= ?1
	AND r.agent NOT IN (SELECT value FROM json_each(?2))
	AND r.workspace NOT IN (SELECT value FROM json_each(?3))
	AND ` + claimSessionFilter + `
ORDER BY r.priority DESC, r.seq
LIMIT ?5`

	// sqlClaimScanRecipes is sqlClaimScan when recipes have rate limits: it reads each run's
	// recipe (from the table) and skips the recipes in ?6.
	sqlClaimScanRecipes = `SELECT r.seq, r.priority, r.agent, r.workspace, r.session_id, r.recipe
FROM runs AS r INDEXED BY runs_claim
WHERE r.state = 'queued' AND r.available_at <= ?1
	AND r.agent NOT IN (SELECT value FROM json_each(?2))
	AND r.workspace NOT IN (SELECT value FROM json_each(?3))
	AND r.recipe NOT IN (SELECT value FROM json_each(?6))
	AND ` + claimSessionFilter + `
ORDER BY r.priority DESC, r.seq
LIMIT ?5`

	// sqlClaimGroup: ?1 now, ?2 agent, ?3 workspace, ?4 busy sessions, ?5 limit, ?6
	// excluded recipes.
	sqlClaimGroup = `SELECT r.seq, r.priority, r.agent, r.workspace, r.session_id, r.recipe
FROM runs AS r INDEXED BY runs_claim_group
WHERE r.state = 'queued' AND r.agent = ?2 AND r.workspace = ?3 AND r.available_at <= ?1
	AND r.recipe NOT IN (SELECT value FROM json_each(?6))
	AND ` + claimSessionFilter + `
ORDER BY r.priority DESC, r.seq
LIMIT ?5`

	// sqlClaimUpdate starts the listed runs: ?1 node, ?2 now, ?3 lease, ?4 seqs. (Reading the
	// runs back with a SELECT costs less than UPDATE ... RETURNING all columns.)
	sqlClaimUpdate = `UPDATE runs SET state = 'running', node = ?1, attempt = attempt + 1, started_at = ?2,
	lease_until = ?3
WHERE seq IN (SELECT value FROM json_each(?4)) AND +state = 'queued'`
	sqlRunsBySeq = `SELECT ` + runColumns + ` FROM runs WHERE seq IN (SELECT value FROM json_each(?))`
)

type claimCand struct {
	seq       int64
	priority  int64
	agent     string
	workspace string
	session   string
	recipe    string // set only when recipes have rate limits
}

type group struct{ agent, workspace string }

// RunClaim starts up to p.Max queued runs on p.Node in one transaction, honouring the
// concurrency limits, p.Rates (token buckets stored in rate_buckets) and holds. It reads the
// buckets and the counts of runs by group from the writer's claimCache, not the database.
func (s *Store) RunClaim(ctx context.Context, p *store.RunClaimParams) ([]*store.ClaimedRun, error) {
	if p.Max <= 0 {
		return nil, nil
	}
	var out []*store.ClaimedRun
	err := s.write(ctx, func(tx *wtx) (err error) {
		out, err = claim(tx, p)
		return err
	})
	if err != nil {
		return nil, wrap("claim runs", err)
	}
	return out, nil
}

// claimer holds one claim's view of the limits while it picks runs.
type claimer struct {
	p            *store.RunClaimParams
	now          int64
	room         int
	runAgent     map[string]int
	runWorkspace map[string]int
	// counts has the queued runs by group before the claim, split by whether the stored
	// buckets block them (read only: the claim flushes no run_stats change until it
	// returns); taken counts the runs the claim started.
	counts     *claimCache
	taken      map[group]int64
	exclAgent  map[string]bool
	exclWS     map[string]bool
	exclRecipe map[string]bool
	busy       map[string]bool
	// buckets applies rate limits and holds, and stored tells which stored buckets were
	// empty or held when the claim started; recipeRates says whether recipes have any.
	buckets     *store.Buckets
	stored      *store.BucketCache
	recipeRates bool
	// fetch is how many rows the group plan asks a group for, grown for groups that
	// limited the previous round.
	fetch map[group]int
}

func (c *claimer) agentLimit(agent string) int {
	if n := c.p.Limits.Agents[agent]; n > 0 {
		return n
	}
	return c.p.Limits.PerAgent
}

// take counts cand as started and excludes the groups it fills.
func (c *claimer) take(cand claimCand) {
	c.room--
	c.runAgent[cand.agent]++
	if lim := c.agentLimit(cand.agent); lim > 0 && c.runAgent[cand.agent] >= lim {
		c.exclAgent[cand.agent] = true
	}
	c.runWorkspace[cand.workspace]++
	if lim := c.p.Limits.PerWorkspace; lim > 0 && c.runWorkspace[cand.workspace] >= lim {
		c.exclWS[cand.workspace] = true
	}
	if cand.session != "" {
		c.busy[sessionKey(cand.workspace, cand.session)] = true
	}
	c.taken[group{cand.agent, cand.workspace}]++
}

// excluded reports whether g's runs may not start: it is full, held by the node, its
// bucket ran out during the claim, or a stored bucket blocks it.
func (c *claimer) excluded(g group) bool {
	return c.exclAgent[g.agent] || c.exclWS[g.workspace] ||
		c.stored.Blocked(store.RateAgent, g.agent) || c.stored.Blocked(store.RateWorkspace, g.workspace)
}

func (c *claimer) recipeExcluded(recipe string) bool {
	return c.exclRecipe[recipe] || c.stored.Blocked(store.RateRecipe, recipe)
}

// exclusions lists the names of kind whose runs may not start: those excl holds and those
// whose stored bucket is empty or held.
func (c *claimer) exclusions(kind string, excl map[string]bool) string {
	names := keys(excl)
	c.stored.EachBlocked(kind, func(name string) {
		if !excl[name] {
			names = append(names, name)
		}
	})
	return jsonList(names)
}

func claim(tx *wtx, p *store.RunClaimParams) ([]*store.ClaimedRun, error) {
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	c := &claimer{
		p: p, now: micros(now), room: p.Max,
		runAgent: map[string]int{}, runWorkspace: map[string]int{}, counts: &tx.w.cache, taken: map[group]int64{},
		exclAgent: map[string]bool{}, exclWS: map[string]bool{}, exclRecipe: map[string]bool{},
		busy: map[string]bool{}, fetch: map[group]int{},
	}
	for k := range p.Rates {
		c.recipeRates = c.recipeRates || strings.HasPrefix(k, store.RateRecipe+":")
	}
	if err := tx.flushStats(); err != nil {
		return nil, err
	}
	if err := c.counts.loadCounts(tx); err != nil {
		return nil, err
	}
	running := 0
	for g, n := range c.counts.running {
		running += int(n)
		c.runAgent[g.agent] += int(n)
		c.runWorkspace[g.workspace] += int(n)
	}
	if len(p.Finishing) > 0 {
		// Finishing runs have given their slots back (store.RunClaimParams.Finishing).
		rows, err := tx.query(sqlFinishingRuns, jsonList(p.Finishing))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var g group
			if err := rows.Scan(&g.agent, &g.workspace); err != nil {
				rows.Close()
				return nil, err
			}
			running--
			c.runAgent[g.agent]--
			c.runWorkspace[g.workspace]--
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	if p.Limits.Global > 0 {
		c.room = min(c.room, p.Limits.Global-running)
	}
	if c.room <= 0 || len(c.counts.queued) == 0 {
		return nil, nil
	}
	if err := tx.w.cache.loadBuckets(tx); err != nil {
		return nil, err
	}
	c.stored = tx.w.cache.buckets
	c.buckets = c.stored.Claim(p.Rates, now)
	for _, a := range p.HeldAgents {
		c.buckets.HoldLocal(store.RateKey(store.RateAgent, a))
		if a != "*" {
			c.exclAgent[a] = true
		}
	}
	c.counts.splitGroups()
	defer func() {
		if p.Result != nil {
			p.Result.NextAt = c.buckets.NextAt()
		}
	}()
	for a, n := range c.runAgent {
		if lim := c.agentLimit(a); lim > 0 && n >= lim {
			c.exclAgent[a] = true
		}
	}
	for w, n := range c.runWorkspace {
		if lim := p.Limits.PerWorkspace; lim > 0 && n >= lim {
			c.exclWS[w] = true
		}
	}
	var out []*store.ClaimedRun
	for round := 0; round < claimMaxRounds && c.room > 0; round++ {
		var (
			eligible []group
			backlog  = c.counts.blockedQueued // queued runs of excluded groups
		)
		for g, n := range c.counts.open {
			if n -= c.taken[g]; n <= 0 {
				continue
			}
			if c.exclAgent[g.agent] || c.exclWS[g.workspace] {
				backlog += n
			} else {
				eligible = append(eligible, g)
			}
		}
		if len(eligible) == 0 {
			break
		}
		if round == 0 {
			if err := c.busySessions(tx); err != nil {
				return nil, err
			}
		}
		var (
			cands     []claimCand
			frontier  *claimCand
			exhausted bool
			err       error
		)
		if backlog > groupScanMin && len(eligible) <= groupScanMaxGroups {
			cands, frontier, exhausted, err = c.fetchByGroup(tx, eligible)
		} else {
			cands, exhausted, err = c.fetchScan(tx)
		}
		if err != nil {
			return nil, err
		}
		var picked []claimCand
		for _, cand := range cands {
			if c.room == 0 || (frontier != nil && before(*frontier, cand)) {
				break
			}
			if c.excluded(group{cand.agent, cand.workspace}) || c.recipeExcluded(cand.recipe) ||
				(cand.session != "" && c.busy[sessionKey(cand.workspace, cand.session)]) {
				continue // filled by a run picked earlier in this claim
			}
			if !c.buckets.Admit(cand.agent, cand.workspace, cand.recipe) {
				c.excludeEmptied() // a bucket ran out during this claim
				continue
			}
			c.take(cand)
			picked = append(picked, cand)
		}
		if len(picked) > 0 {
			started, err := startRuns(tx, p, now, picked)
			if err != nil {
				return nil, err
			}
			out = append(out, started...)
		}
		if exhausted {
			break
		}
	}
	if len(out) > 0 {
		if err := tx.w.cache.storeBuckets(tx, c.buckets.Dirty()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// busySessions reads the sessions that have a running run.
func (c *claimer) busySessions(tx *wtx) error {
	rows, err := tx.query(sqlBusySessions)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ws, sess string
		if err := rows.Scan(&ws, &sess); err != nil {
			return err
		}
		c.busy[sessionKey(ws, sess)] = true
	}
	return rows.Err()
}

// excludeEmptied excludes the agents, workspaces and recipes whose bucket this claim emptied.
func (c *claimer) excludeEmptied() {
	c.buckets.EachEmptied(func(kind, name string) {
		switch kind {
		case store.RateAgent:
			c.exclAgent[name] = true
		case store.RateWorkspace:
			c.exclWS[name] = true
		case store.RateRecipe:
			c.exclRecipe[name] = true
		}
	})
}

// fetchScan reads candidates in claim order from runs_claim, skipping excluded groups and
// sessions inside the index.
func (c *claimer) fetchScan(tx *wtx) ([]claimCand, bool, error) {
	limit := c.room + claimSlack
	var (
		rows *sql.Rows
		err  error
	)
	if c.recipeRates {
		rows, err = tx.query(sqlClaimScanRecipes, c.now, c.exclusions(store.RateAgent, c.exclAgent),
			c.exclusions(store.RateWorkspace, c.exclWS), jsonList(keys(c.busy)), limit,
			c.exclusions(store.RateRecipe, c.exclRecipe))
	} else {
		rows, err = tx.query(sqlClaimScan, c.now, c.exclusions(store.RateAgent, c.exclAgent),
			c.exclusions(store.RateWorkspace, c.exclWS), jsonList(keys(c.busy)), limit)
	}
	cands, err := scanCands(rows, err)
	return cands, len(cands) < limit, err
}

// fetchByGroup reads the first runs of each eligible group and merges them in claim order.
// A group that returned all the rows asked for may hold more: frontier is the earliest last
// row of such groups, and runs after it must wait for the next round (which asks that group
// for more rows).
func (c *claimer) fetchByGroup(tx *wtx, eligible []group) (cands []claimCand, frontier *claimCand, exhausted bool, err error) {
	busy := jsonList(keys(c.busy))
	recipes := c.exclusions(store.RateRecipe, c.exclRecipe)
	exhausted = true
	var frontierGroup group
	share := (c.room+len(eligible)-1)/len(eligible) + claimSlack
	for _, g := range eligible {
		limit := max(share, c.fetch[g])
		if lim := c.agentLimit(g.agent); lim > 0 {
			limit = min(limit, lim-c.runAgent[g.agent]+claimSlack)
		}
		if lim := c.p.Limits.PerWorkspace; lim > 0 {
			limit = min(limit, lim-c.runWorkspace[g.workspace]+claimSlack)
		}
		rows, err := tx.query(sqlClaimGroup, c.now, g.agent, g.workspace, busy, limit, recipes)
		got, err := scanCands(rows, err)
		if err != nil {
			return nil, nil, false, err
		}
		if len(got) >= limit {
			exhausted = false
			if last := got[len(got)-1]; frontier == nil || before(last, *frontier) {
				frontier, frontierGroup = &last, g
			}
		}
		cands = append(cands, got...)
	}
	if frontier != nil {
		c.fetch[frontierGroup] = 4 * max(share, c.fetch[frontierGroup])
	}
	sort.Slice(cands, func(i, j int) bool { return before(cands[i], cands[j]) })
	return cands, frontier, exhausted, nil
}

// before reports whether a comes before b in claim order: priority, then submit order.
func before(a, b claimCand) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return a.seq < b.seq
}

func scanCands(rows *sql.Rows, err error) ([]claimCand, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []claimCand
	for rows.Next() {
		var cand claimCand
		if err := rows.Scan(&cand.seq, &cand.priority, &cand.agent, &cand.workspace, &cand.session, &cand.recipe); err != nil {
			return nil, err
		}
		out = append(out, cand)
	}
	return out, rows.Err()
}

// startRuns moves the picked runs to running and writes their status events.
func startRuns(tx *wtx, p *store.RunClaimParams, now time.Time, picked []claimCand) ([]*store.ClaimedRun, error) {
	seqs := make([]int64, len(picked))
	order := make(map[int64]int, len(picked))
	for i, cand := range picked {
		seqs[i] = cand.seq
		order[cand.seq] = i
	}
	var lease any
	if !p.LeaseUntil.IsZero() {
		lease = micros(p.LeaseUntil)
	}
	list := jsonList(seqs)
	res, err := tx.exec(sqlClaimUpdate, p.Node, micros(now), lease, list)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(picked)) {
		return nil, fmt.Errorf("claim: started %d of %d picked runs (%v)", n, len(picked), err)
	}
	runs, err := scanRuns(tx.query(sqlRunsBySeq, list))
	if err != nil {
		return nil, err
	}
	lastSeq, err := statusEvents(tx, list, now)
	if err != nil {
		return nil, err
	}
	out := make([]*store.ClaimedRun, len(runs))
	for _, r := range runs {
		tx.statsMove(r, spool.StateQueued)
		out[order[r.Seq]] = &store.ClaimedRun{Run: r, LastSeq: lastSeq[r.ID]}
	}
	return out, nil
}

// sessionKey names a session: its id within its workspace.
func sessionKey(workspace, session string) string { return workspace + "\x1f" + session }

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
