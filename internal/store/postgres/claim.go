package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// sessionHead keeps runs without a session, and the head of each session: its earliest
// queued run, when no run of the session is running. A session is a session_id within a
// workspace.
const sessionHead = `(r.session_id = '' OR NOT EXISTS (
	SELECT 1 FROM runs o
	WHERE o.workspace = r.workspace AND o.session_id = r.session_id AND o.session_id <> ''
		AND o.state IN ('queued', 'running') AND (o.state = 'running' OR o.seq < r.seq)))`

// candidatesSQL reads claimable runs in claim order, $5 at most: available ($1), outside the
// excluded agents ($2), workspaces ($3) and recipes ($7), not yet picked ($4), session heads.
// Exclusions apply while the queue is read (hashed, so a long list of full or rate-limited
// groups costs one lookup per run), so an excluded group's backlog does not use up the
// budget: it examines at most $6 queued runs of the other groups (the first in claim order)
// and returns how many it examined (n; id is NULL when none qualified). When that budget
// fills without enough candidates (runs of busy sessions, runs picked already), the claim
// reads group by group instead (groupCandidatesSQL).
const candidatesSQL = `WITH scan AS MATERIALIZED (
	SELECT id, recipe, agent, workspace, session_id, priority, seq, available_at FROM runs
	WHERE state = 'queued' AND agent NOT IN (SELECT unnest($2::text[]))
		AND workspace NOT IN (SELECT unnest($3::text[])) AND recipe NOT IN (SELECT unnest($7::text[]))
	ORDER BY priority DESC, seq LIMIT $6
)
SELECT c.id, c.recipe, c.agent, c.workspace, c.session_id, s.n
FROM (SELECT count(*) AS n FROM scan) s
LEFT JOIN LATERAL (
	SELECT id, recipe, agent, workspace, session_id, priority, seq FROM scan r
	WHERE available_at <= $1 AND id <> ALL($4::text[]) AND ` + sessionHead + `
	ORDER BY priority DESC, seq LIMIT $5
) c ON true
ORDER BY c.priority DESC, c.seq`

// queuedGroupsCTE lists, as g, the (agent, workspace) groups that have queued runs with a
// loose index scan on runs_claim_group: one index descent per group.
const queuedGroupsCTE = `WITH RECURSIVE g AS (
	(SELECT agent, workspace FROM runs WHERE state = 'queued' ORDER BY agent, workspace LIMIT 1)
	UNION ALL
	SELECT x.agent, x.workspace FROM g, LATERAL (
		SELECT agent, workspace FROM runs
		WHERE state = 'queued' AND (agent, workspace) > (g.agent, g.workspace)
		ORDER BY agent, workspace LIMIT 1) x
)`

// groupCandidatesSQL reads the same candidates group by group: it lists the (agent,
// workspace) groups that have queued runs with a loose index scan (one index descent per
// group), skips the excluded ones, takes the first $5 candidates of each other group from
// runs_claim_group and merges them. Its cost follows the number of groups, not the length of
// a full group's backlog. Excluded recipes ($6) are filtered within each group.
const groupCandidatesSQL = queuedGroupsCTE + `
SELECT c.id, c.recipe, c.agent, c.workspace, c.session_id, 0::bigint
FROM g CROSS JOIN LATERAL (
	SELECT id, recipe, agent, workspace, session_id, priority, seq FROM runs r
	WHERE r.state = 'queued' AND r.agent = g.agent AND r.workspace = g.workspace
		AND r.available_at <= $1 AND r.recipe <> ALL($6::text[]) AND r.id <> ALL($4::text[]) AND ` + sessionHead + `
	ORDER BY priority DESC, seq LIMIT $5
) c
WHERE g.agent <> ALL($2::text[]) AND g.workspace <> ALL($3::text[])
ORDER BY c.priority DESC, c.seq
LIMIT $5`

// startRunsSQL starts the picked runs ($1) that are still queued, as the quick claim does
// (see startCTEs).
var startRunsSQL = `WITH ` + startCTEs("id = ANY($1::text[])", "$2", "$3", "$4", "$5") + `
SELECT u.*, (SELECT count(*) FROM note) FROM upd u`

// startCTEs are the CTEs upd, ev and note that start the queued runs matching pick (a
// condition on id) at now on node with a lease until lease: they move the runs to running,
// store their running status events and notify other nodes on channel, 200 ids a message.
// upd returns each run's columns and its last event seq before the claim (last_seq). Rows
// another transaction holds at this moment (a cancel, a pause) are skipped, not waited for.
func startCTEs(pick, now, node, lease, channel string) string {
	return `upd AS (
	UPDATE runs r SET state = 'running', started_at = ` + now + `, node = ` + node + `, lease_until = ` + lease + `,
		attempt = r.attempt + 1
	FROM (SELECT id FROM runs WHERE ` + pick + ` AND state = 'queued' FOR UPDATE SKIP LOCKED) l
	WHERE r.id = l.id
	RETURNING ` + runColumnsR + `, (SELECT coalesce(max(seq), 0) FROM events e WHERE e.run_id = r.id) AS last_seq
), ev AS (
	INSERT INTO events (run_id, seq, type, ts, status, attempt)
	SELECT id, last_seq + 1, 'status', ` + now + `, 'running', attempt FROM upd
), note AS (
	SELECT pg_notify(` + channel + `, 'event:' || string_agg(id, ',')) FROM (
		SELECT id, (row_number() OVER ()) / 200 AS g FROM upd) x GROUP BY g
)`
}

// groupWiseClaims is how many full claims after one whose scan a blocked backlog filled go
// straight to the group-wise read, before the scan is tried again.
const groupWiseClaims = 16

// claimLockSQL begins a claim: it takes the claim lock, and lets the claim commit without
// waiting for its WAL to reach the disk. A claim accepts nothing: if the database crashes
// and loses it, its runs are queued again, and the attempt that started is given up (its
// finish no longer matches), as when a node dies. Any later durable commit, such as the
// run's finish, makes the claim durable too, since WAL is flushed in order.
//
// The claim statements are planned anew at every execution (their custom plans look far
// cheaper than the generic one), which is 1.2-1.8 ms of a 3 ms quick claim. Forcing generic
// plans was tried and rejected: a generic plan made while the tables are nearly empty is
// kept as they grow, and its sequential scans and join orders made claims take seconds.
const claimLockSQL = `SELECT pg_advisory_xact_lock($1), set_config('synchronous_commit', 'off', true)`

// RunClaim starts up to Max runs on Node. Claims of all nodes are serialised by a
// transaction-level advisory lock, taken before anything is counted, so the running counts
// a claim sees include every run any node has started, and no two claims can both take the
// last free slot of a group. Runs held by dead nodes keep counting until the rescuer ends
// them. Candidates are read in claim order with full groups excluded in SQL, so a full
// group's backlog never hides the runs of other groups. Rate-limit buckets and holds live in
// rate_buckets and are read and written under the same lock, so they hold across nodes;
// empty or held groups are excluded in SQL like full ones.
func (s *Store) RunClaim(ctx context.Context, p *store.RunClaimParams) ([]*store.ClaimedRun, error) {
	if p.Max <= 0 {
		return nil, nil
	}
	if !quickClaimable(p) {
		return s.fullClaim(ctx, p)
	}
	claimed, more, holdEnds, err := s.quickClaim(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim runs for node %s: %w", p.Node, err)
	}
	if p.Result != nil {
		p.Result.NextAt = holdEnds
	}
	if !more {
		return claimed, nil
	}
	// The quick claim's scan ended at its budget: go on with the full claim.
	rest := *p
	rest.Max -= len(claimed)
	rest.Result = &store.ClaimResult{}
	others, err := s.fullClaim(ctx, &rest)
	if p.Result != nil && !rest.Result.NextAt.IsZero() && (p.Result.NextAt.IsZero() || rest.Result.NextAt.Before(p.Result.NextAt)) {
		p.Result.NextAt = rest.Result.NextAt
	}
	return append(claimed, others...), err
}

// fullClaim is a claim with the accounting done in Go, for rate limits and per-workspace
// limits: candidates are read, checked against every limit, and started in one transaction.
func (s *Store) fullClaim(ctx context.Context, p *store.RunClaimParams) ([]*store.ClaimedRun, error) {
	var (
		claimed []*store.ClaimedRun
		dirty   []store.BucketRow // the buckets the committed claim wrote
		version int64             // rate_version after that write
	)
	bc := &s.buckets
	bc.mu.Lock()
	defer bc.mu.Unlock()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		claimed, dirty = nil, nil
		// The lock, the running counts and the buckets in one round trip: the counts and
		// buckets are read by statements that start after the lock is held.
		var b pgx.Batch
		b.Queue(claimLockSQL, s.claimKey)
		// The candidate queries read runs in index order up to a limit. Estimating a few
		// rows per group, the planner would rather collect a group's whole backlog with a
		// bitmap scan and sort it: 30,000 rows for the first 200.
		b.Queue(`SELECT set_config('enable_bitmapscan', 'off', true)`)
		c := queueCounts(&b, p)
		read := bc.queueRead(&b)
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
		bk := bc.claim(read, p)
		want := c.free(p.Max)
		if want == 0 {
			return nil
		}
		defer func() {
			if p.Result != nil {
				p.Result.NextAt = bk.NextAt()
			}
		}()
		picked := make([]string, 0, want) // never nil: a NULL array would exclude every run
		blocked := newBlockedNames(bc.rows, p.HeldAgents)
		for len(picked) < want {
			limit := min(2*(want-len(picked))+8, 1000)
			exAgents := append(c.excludedAgents(), blocked.agents...)
			exWorkspaces := append(c.excludedWorkspaces(), blocked.workspaces...)
			cands, err := s.candidates(ctx, tx, p.Now, exAgents, exWorkspaces, blocked.recipes, picked, limit)
			if err != nil {
				return err
			}
			before := len(picked)
			for _, cd := range cands {
				if len(picked) == want {
					break
				}
				if c.fits(cd) && bk.Admit(cd.Agent, cd.Workspace, cd.Recipe) {
					c.take(cd)
					picked = append(picked, cd.ID)
				}
			}
			// Fewer candidates than asked for: every eligible run was seen. Otherwise some
			// groups may have filled up (or run out of tokens) while others wait beyond the
			// limit: look again with them excluded.
			if len(cands) < limit {
				break
			}
			emptied := blocked.addEmptied(bk)
			if len(picked) == before && !emptied &&
				len(exAgents)+len(exWorkspaces) == len(c.excludedAgents())+len(c.excludedWorkspaces())+len(blocked.agents)+len(blocked.workspaces) {
				break
			}
		}
		if len(picked) == 0 {
			return nil
		}
		b = pgx.Batch{}
		dirty = bk.Dirty()
		queueStoreBuckets(&b, dirty, &version)
		b.Queue(startRunsSQL, picked, p.Now, p.Node, p.LeaseUntil, s.channel).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var last, notified int64
				r, err := scanRun(rows, &last, &notified)
				if err != nil {
					return err
				}
				claimed = append(claimed, &store.ClaimedRun{Run: r, LastSeq: last + 1})
			}
			return rows.Err()
		})
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
		slices.SortFunc(claimed, func(a, b *store.ClaimedRun) int {
			return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.Seq, b.Seq))
		})
		return nil
	})
	if err != nil {
		bc.drop() // it may hold what a rolled-back attempt read or planned
		return nil, fmt.Errorf("postgres: claim runs for node %s: %w", p.Node, err)
	}
	bc.stored(dirty, version)
	return claimed, nil
}

// candidates reads up to limit claimable runs in claim order, outside the excluded agents,
// workspaces and recipes and not among picked, in the cheapest of three ways:
//   - behind at least groupReadMin excluded groups, from the heads of the other groups
//     (queuedGroups), when there are at most groupReadMax of those;
//   - else with one scan of the queue in claim order that examines a bounded number of runs;
//   - when that bound was reached before enough runs were found (runs waiting out a backoff
//     or behind a busy session fill it), group by group over every group, for this and the
//     next groupWiseClaims claims.
func (s *Store) candidates(ctx context.Context, tx pgx.Tx, now time.Time, exAgents, exWorkspaces, exRecipes, picked []string, limit int) ([]candidate, error) {
	if len(exAgents)+len(exWorkspaces) >= groupReadMin {
		agents, workspaces, ok, err := s.groups.open(ctx, tx, time.Now(), exAgents, exWorkspaces)
		if err != nil {
			return nil, err
		}
		if ok {
			cands, _, err := readCandidates(ctx, tx, openGroupCandidatesSQL, now, agents, workspaces, picked, limit, exRecipes)
			return cands, err
		}
	}
	if s.groupWise.Load() > 0 {
		s.groupWise.Add(-1)
	} else {
		budget := 4*limit + 256
		cands, scanned, err := readCandidates(ctx, tx, candidatesSQL, now, exAgents, exWorkspaces, picked, limit, budget, exRecipes)
		if err != nil || len(cands) == limit || scanned < budget {
			return cands, err
		}
		s.groupWise.Store(groupWiseClaims)
	}
	cands, _, err := readCandidates(ctx, tx, groupCandidatesSQL, now, exAgents, exWorkspaces, picked, limit, exRecipes)
	return cands, err
}

// readCandidates runs one of the candidate queries and returns the candidates and how many
// queued runs it examined.
func readCandidates(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]candidate, int, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var (
		cands   []candidate
		scanned int
	)
	for rows.Next() {
		var (
			id, recipe, agent, ws, session *string
			n                              int64
		)
		if err := rows.Scan(&id, &recipe, &agent, &ws, &session, &n); err != nil {
			return nil, 0, err
		}
		scanned = int(n)
		if id != nil {
			cands = append(cands, candidate{ID: *id, Recipe: *recipe, Agent: *agent, Workspace: *ws, SessionID: *session})
		}
	}
	return cands, scanned, rows.Err()
}

// candidate is a claimable run as the claim queries return it.
type candidate struct {
	ID        string
	Recipe    string
	Agent     string
	Workspace string
	SessionID string
}

// counts are the running runs by group during one claim, including the runs it picked.
type counts struct {
	limits      spool.Limits
	total       int
	byAgent     map[string]int
	byWorkspace map[string]int
	sessions    map[string]bool // sessions (workspace \x1f session_id) given a run by this claim
}

// queueCounts queues on b the count of running runs by agent and workspace (runs in
// p.Finishing left out), into the counts it returns once b has run.
func queueCounts(b *pgx.Batch, p *store.RunClaimParams) *counts {
	c := &counts{
		limits:      p.Limits,
		byAgent:     map[string]int{},
		byWorkspace: map[string]int{},
		sessions:    map[string]bool{},
	}
	b.Queue(`SELECT agent, workspace, count(*) FROM runs
		WHERE state = 'running' AND id <> ALL($1::text[]) GROUP BY agent, workspace`, nonNil(p.Finishing)).Query(func(rows pgx.Rows) error {
		c.total = 0
		clear(c.byAgent)
		clear(c.byWorkspace)
		for rows.Next() {
			var agent, ws string
			var k int
			if err := rows.Scan(&agent, &ws, &k); err != nil {
				return err
			}
			c.total += k
			c.byAgent[agent] += k
			c.byWorkspace[ws] += k
		}
		return rows.Err()
	})
	return c
}

// free is how many runs the claim may start: Max, bounded by the global limit.
func (c *counts) free(n int) int {
	if g := c.limits.Global; g > 0 {
		n = min(n, g-c.total)
	}
	return max(n, 0)
}

// agentLimit is the limit of one agent: its own when set, else the per-agent default
// (0 = unlimited).
func (c *counts) agentLimit(agent string) int {
	if l := c.limits.Agents[agent]; l > 0 {
		return l
	}
	return c.limits.PerAgent
}

func (c *counts) agentFull(agent string) bool {
	l := c.agentLimit(agent)
	return l > 0 && c.byAgent[agent] >= l
}

func (c *counts) workspaceFull(ws string) bool {
	l := c.limits.PerWorkspace
	return l > 0 && c.byWorkspace[ws] >= l
}

// excludedAgents lists the agents that cannot start a run now: full.
func (c *counts) excludedAgents() []string {
	out := []string{}
	for a := range c.byAgent {
		if c.agentFull(a) {
			out = append(out, a)
		}
	}
	return out
}

func (c *counts) excludedWorkspaces() []string {
	out := []string{}
	for ws := range c.byWorkspace {
		if c.workspaceFull(ws) {
			out = append(out, ws)
		}
	}
	return out
}

// fits reports whether every concurrency limit cd falls under has room.
func (c *counts) fits(cd candidate) bool {
	return !c.agentFull(cd.Agent) && !c.workspaceFull(cd.Workspace) && (cd.SessionID == "" || !c.sessions[cd.Workspace+"\x1f"+cd.SessionID])
}

// take counts cd as started.
func (c *counts) take(cd candidate) {
	if cd.SessionID != "" {
		c.sessions[cd.Workspace+"\x1f"+cd.SessionID] = true
	}
	c.total++
	c.byAgent[cd.Agent]++
	c.byWorkspace[cd.Workspace]++
}

// nonNil returns ids, or an empty slice for nil: a NULL array in `<> ALL` matches nothing.
func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// blockedNames are the agents, workspaces and recipes whose bucket is empty or held during
// one claim, gathered in one pass over the buckets and then grown by the claim's own
// admissions, so a claim never walks every bucket more than once.
type blockedNames struct {
	agents, workspaces, recipes []string        // never nil: a NULL array would exclude every run
	emptied                     map[string]bool // buckets emptied by the claim, as kind:name
}

// newBlockedNames lists what the node's copy of the buckets and the node's own holds (held
// agents) hold back at the start of a claim: as Buckets.EachBlocked would on the claim's
// accounting, but from the copy's list of blocked names, without visiting every bucket.
func newBlockedNames(stored *store.BucketCache, held []string) *blockedNames {
	b := &blockedNames{agents: []string{}, workspaces: []string{}, recipes: []string{}}
	for _, kind := range []string{store.RateAgent, store.RateWorkspace, store.RateRecipe} {
		stored.EachBlocked(kind, func(name string) { b.add(kind, name) })
	}
	for _, a := range held {
		if !stored.Blocked(store.RateAgent, a) {
			b.add(store.RateAgent, a)
		}
	}
	return b
}

// addEmptied adds the buckets Admit emptied, and reports whether any was new. None of them
// was blocked at the start of the claim: Admit takes no token from a blocked bucket.
func (b *blockedNames) addEmptied(bk *store.Buckets) bool {
	added := false
	bk.EachEmptied(func(kind, name string) {
		key := kind + ":" + name
		if b.emptied == nil {
			b.emptied = map[string]bool{}
		}
		if !b.emptied[key] {
			b.emptied[key] = true
			b.add(kind, name)
			added = true
		}
	})
	return added
}

// add adds one name of kind.
func (b *blockedNames) add(kind, name string) {
	switch kind {
	case store.RateAgent:
		b.agents = append(b.agents, name)
	case store.RateWorkspace:
		b.workspaces = append(b.workspaces, name)
	case store.RateRecipe:
		b.recipes = append(b.recipes, name)
	}
}
