package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool/internal/store"
)

// groupListTTL is how long a node trusts its list of the groups that have queued runs.
// A group that gets its first queued run on another node is therefore read by this node's
// claims at most this long after (see queuedGroups); its own submits are seen at once.
const groupListTTL = 100 * time.Millisecond

// groupReadMin is the number of excluded groups from which a claim reads the queue group by
// group (see Store.candidates): below it, scanning past their backlogs is cheaper than listing the
// groups.
const groupReadMin = 16

// groupReadMax is the number of groups with room up to which a claim reads group by group.
const groupReadMax = 64

// queueGroup is an (agent, workspace) group.
type queueGroup struct{ agent, workspace string }

// queuedGroups is a node's list of the groups that have queued runs, for claims behind the
// backlogs of many full or rate-limited groups. Scanning the queue in claim order walks
// every queued run of those groups ahead of the first run that can start (10,000 index
// entries and heap rows for 1,000 rate-limited agents with 10 urgent runs each, at every
// claim); listing the groups takes one index descent per group, and reading the heads of
// the groups with room costs one more per group. The list is taken at most every
// groupListTTL and grows with this node's own submits in between.
type queuedGroups struct {
	mu   sync.Mutex
	at   time.Time // when list was read (wall clock)
	list map[queueGroup]bool
}

// listGroupsSQL lists the groups that have queued runs.
const listGroupsSQL = queuedGroupsCTE + `
SELECT agent, workspace FROM g`

// submitted adds the groups of runs this node submitted.
func (g *queuedGroups) submitted(ps []*store.RunInsertParams) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.list == nil {
		return
	}
	for _, p := range ps {
		g.list[queueGroup{p.Agent, p.Workspace}] = true
	}
}

// open returns the groups with queued runs that are not excluded, reading the list again
// when it is older than groupListTTL at now. ok is false when there are more than
// groupReadMax of them: the claim should scan instead.
func (g *queuedGroups) open(ctx context.Context, tx pgx.Tx, now time.Time, exAgents, exWorkspaces []string) (agents, workspaces []string, ok bool, err error) {
	g.mu.Lock()
	stale := g.list == nil || now.Sub(g.at) >= groupListTTL || now.Before(g.at)
	g.mu.Unlock()
	if stale {
		rows, err := tx.Query(ctx, listGroupsSQL)
		if err != nil {
			return nil, nil, false, err
		}
		list := map[queueGroup]bool{}
		for rows.Next() {
			var k queueGroup
			if err := rows.Scan(&k.agent, &k.workspace); err != nil {
				rows.Close()
				return nil, nil, false, err
			}
			list[k] = true
		}
		if err := rows.Err(); err != nil {
			return nil, nil, false, err
		}
		g.mu.Lock()
		g.list, g.at = list, now
		g.mu.Unlock()
	}
	exA := make(map[string]bool, len(exAgents))
	for _, a := range exAgents {
		exA[a] = true
	}
	exW := make(map[string]bool, len(exWorkspaces))
	for _, w := range exWorkspaces {
		exW[w] = true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := range g.list {
		if exA[k.agent] || exW[k.workspace] {
			continue
		}
		if len(agents) == groupReadMax {
			return nil, nil, false, nil
		}
		agents, workspaces = append(agents, k.agent), append(workspaces, k.workspace)
	}
	return agents, workspaces, true, nil
}

// openGroupCandidatesSQL reads candidates like groupCandidatesSQL, but from the given
// groups ($2 agents and $3 workspaces, in pairs) instead of listing every group. Each
// group's runs are read in the order of runs_claim_group's whole key: ordered by priority
// alone, the planner reads a group that holds most queued runs from runs_claim, and so walks
// the other groups' backlogs again.
const openGroupCandidatesSQL = `SELECT c.id, c.recipe, c.agent, c.workspace, c.session_id, 0::bigint
FROM unnest($2::text[], $3::text[]) AS g(agent, workspace) CROSS JOIN LATERAL (
	SELECT id, recipe, agent, workspace, session_id, priority, seq FROM runs r
	WHERE r.state = 'queued' AND r.agent = g.agent AND r.workspace = g.workspace
		AND r.available_at <= $1 AND r.recipe <> ALL($6::text[]) AND r.id <> ALL($4::text[]) AND ` + sessionHead + `
	ORDER BY r.agent, r.workspace, r.priority DESC, r.seq LIMIT $5
) c
ORDER BY c.priority DESC, c.seq
LIMIT $5`
