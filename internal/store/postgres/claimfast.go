package postgres

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool/internal/store"
)

// quickClaimSQL is a whole claim in one statement, for the common case the claim's Go
// accounting is not needed for: no rate limits and no per-workspace limit. It runs after
// the claim lock in the same implicit transaction (one pgx batch, so one round trip).
//
// It counts the running runs by agent ($6: finishing runs left out), excludes full agents
// ($8/$9 limits by name, $10 the per-agent default, 0 = unlimited), held agents ($7) and runs
// under a stored hold, then reads up to $11 available queued runs in claim order. Of those it
// keeps session heads, and per agent only as many as the agent has room for (row_number is
// exact here: with agent limits alone, whether a run fits depends only on the runs of its
// own agent before it). It starts the first of them, at most $4 and the global limit's room
// ($5, 0 = unlimited), stores their running status events and notifies other nodes. Each
// row carries how many queued runs the scan read and when the earliest stored hold ends,
// and a last sentinel row, with an empty id, carries them when no run started.
var quickClaimSQL = quickClaimQuery(true)

// quickClaimPlainSQL is quickClaimSQL when no agent has a limit: no per-agent ranking.
var quickClaimPlainSQL = quickClaimQuery(false)

// quickClaimQuery builds quickClaimSQL, with or without the per-agent ranking.
func quickClaimQuery(agentLimits bool) string {
	pick := `), pick AS (
	SELECT r.id FROM scan r WHERE ` + sessionHead + `
	ORDER BY r.priority DESC, r.seq
	LIMIT (SELECT greatest(n, 0) FROM room)
`
	if agentLimits {
		pick = `), pick AS (
	SELECT c.id FROM (
		SELECT r.id, r.agent, r.priority, r.seq,
			row_number() OVER (PARTITION BY r.agent ORDER BY r.priority DESC, r.seq) AS rn
		FROM scan r WHERE ` + sessionHead + `
	) c
	LEFT JOIN busy b ON b.agent = c.agent LEFT JOIN lims l ON l.agent = c.agent
	WHERE coalesce(l.lim, $10) = 0 OR c.rn <= coalesce(l.lim, $10) - coalesce(b.n, 0)
	ORDER BY c.priority DESC, c.seq
	LIMIT (SELECT greatest(n, 0) FROM room)
`
	}
	return `WITH lims AS (
	SELECT a AS agent, l AS lim FROM unnest($8::text[], $9::int[]) AS u(a, l) WHERE l > 0
), busy AS (
	SELECT b.agent, b.n, coalesce(l.lim, $10) AS lim
	FROM (SELECT agent, count(*)::int AS n FROM runs
		WHERE state = 'running' AND id <> ALL($6::text[]) GROUP BY agent) b
	LEFT JOIN lims l USING (agent)
), room AS (
	SELECT CASE WHEN $5::int > 0 THEN least($4::int, $5::int - (SELECT coalesce(sum(n), 0)::int FROM busy))
		ELSE $4::int END AS n
), excl AS (
	SELECT coalesce(array_agg(agent), '{}') || $7::text[] AS agents FROM busy WHERE lim > 0 AND n >= lim
), held AS (
	SELECT coalesce(array_agg(key), '{}') AS keys, min(held_until) AS next
	FROM rate_buckets WHERE held_until > $1
), scan AS MATERIALIZED (
	SELECT r.id, r.agent, r.workspace, r.session_id, r.priority, r.seq
	FROM runs r, excl, held, room
	WHERE r.state = 'queued' AND r.available_at <= $1 AND room.n > 0 AND r.agent <> ALL(excl.agents)
		AND (cardinality(held.keys) = 0 OR NOT ('agent:' || r.agent = ANY(held.keys)
			OR 'workspace:' || r.workspace = ANY(held.keys) OR 'recipe:' || r.recipe = ANY(held.keys)))
	ORDER BY r.priority DESC, r.seq LIMIT $11
` + pick + `), ` + startCTEs("id IN (SELECT id FROM pick)", "$1", "$2", "$3", "$12") + `
SELECT u.*, (SELECT count(*) FROM scan), (SELECT next FROM held), (SELECT count(*) FROM note) FROM upd u
UNION ALL
SELECT ` + emptyRunRow + `, 0, (SELECT count(*) FROM scan), (SELECT next FROM held), 0`
}

// emptyRunRow is a row of runColumns with an empty id, as a sentinel.
const emptyRunRow = `0::bigint, ''::text, '', '', '', '', '', 0::smallint, NULL::text, NULL::text, NULL::text,
	NULL::text, '', '', 0::float8, '', 0, 0, 0, 0, 0, '', '', '', '', NULL::text[], '', NULL::timestamptz,
	'epoch'::timestamptz, NULL::timestamptz, 'epoch'::timestamptz, NULL::timestamptz, NULL::timestamptz,
	NULL::timestamptz, ''`

// quickClaimable reports whether a claim can be made with quickClaimSQL.
func quickClaimable(p *store.RunClaimParams) bool {
	return len(p.Rates) == 0 && p.Limits.PerWorkspace <= 0
}

// quickClaim makes a claim with quickClaimSQL in one round trip. It reports whether the
// scan stopped at its budget with room left, in which case more runs may be claimable
// beyond it (behind busy sessions or agents out of room) and the full claim should go on,
// and when the earliest stored hold ends (zero for none).
func (s *Store) quickClaim(ctx context.Context, p *store.RunClaimParams) ([]*store.ClaimedRun, bool, time.Time, error) {
	want := p.Max
	budget := 2*want + 32
	names := make([]string, 0, len(p.Limits.Agents))
	lims := make([]int32, 0, len(p.Limits.Agents))
	query := quickClaimPlainSQL
	if p.Limits.PerAgent > 0 {
		query = quickClaimSQL
	}
	for a, l := range p.Limits.Agents {
		names, lims = append(names, a), append(lims, int32(l))
		if l > 0 {
			query = quickClaimSQL
		}
	}
	var (
		claimed []*store.ClaimedRun
		scanned int64
		next    *time.Time
	)
	err := retry(ctx, func() error {
		claimed, scanned, next = nil, 0, nil
		var b pgx.Batch
		b.Queue(claimLockSQL, s.claimKey)
		b.Queue(query, p.Now, p.Node, p.LeaseUntil, want, p.Limits.Global, nonNil(p.Finishing),
			nonNil(p.HeldAgents), names, lims, p.Limits.PerAgent, budget, s.channel).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var last, notified int64
				r, err := scanRun(rows, &last, &scanned, &next, &notified)
				if err != nil {
					return err
				}
				if r.ID != "" {
					claimed = append(claimed, &store.ClaimedRun{Run: r, LastSeq: last + 1})
				}
			}
			return rows.Err()
		})
		// Outside a transaction, a batch is one implicit transaction: the lock is held
		// until the claim commits.
		return s.pool.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return nil, false, time.Time{}, err
	}
	var nextAt time.Time
	if next != nil {
		nextAt = *next
	}
	slices.SortFunc(claimed, func(a, b *store.ClaimedRun) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.Seq, b.Seq))
	})
	return claimed, scanned == int64(budget) && len(claimed) < want, nextAt, nil
}
