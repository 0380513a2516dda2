package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

const limitsSQL = `SELECT max_global, per_agent, per_workspace, agents FROM limits WHERE id = 1
UNION ALL SELECT 0, 0, 0, '{}' WHERE NOT EXISTS (SELECT 1 FROM limits)`

func scanLimits(row pgx.Row) (spool.Limits, error) {
	var (
		l                     spool.Limits
		global, agent, wspace int32
		agents                string
	)
	if err := row.Scan(&global, &agent, &wspace, &agents); err != nil {
		return l, err
	}
	l.Global, l.PerAgent, l.PerWorkspace = int(global), int(agent), int(wspace)
	if agents != "" && agents != "{}" {
		if err := json.Unmarshal([]byte(agents), &l.Agents); err != nil {
			return l, fmt.Errorf("decode agent limits: %w", err)
		}
	}
	return l, nil
}

// agentsText encodes per-agent limits canonically (sorted keys), so equal maps compare equal.
func agentsText(m map[string]int) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// LimitsGet returns the cluster-wide concurrency limits (all zero until set).
func (s *Store) LimitsGet(ctx context.Context) (spool.Limits, error) {
	l, err := scanLimits(s.pool.QueryRow(ctx, limitsSQL))
	if err != nil {
		return l, fmt.Errorf("postgres: get limits: %w", err)
	}
	return l, nil
}

// LimitsSet replaces the cluster-wide limits and reports whether they changed.
func (s *Store) LimitsSet(ctx context.Context, l spool.Limits) (bool, error) {
	var changed bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The lock orders concurrent setters, so each one's answer is about the value it replaced.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("limits", s.schema)); err != nil {
			return err
		}
		cur, err := scanLimits(tx.QueryRow(ctx, limitsSQL))
		if err != nil {
			return err
		}
		changed = cur.Global != l.Global || cur.PerAgent != l.PerAgent || cur.PerWorkspace != l.PerWorkspace ||
			agentsText(cur.Agents) != agentsText(l.Agents)
		if !changed {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO limits (id, max_global, per_agent, per_workspace, agents)
			VALUES (1, $1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET max_global = excluded.max_global, per_agent = excluded.per_agent,
				per_workspace = excluded.per_workspace, agents = excluded.agents`,
			l.Global, l.PerAgent, l.PerWorkspace, agentsText(l.Agents))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: set limits: %w", err)
	}
	return changed, nil
}

// NodeHeartbeat records that a node is alive, and forgets nodes not seen for a day.
func (s *Store) NodeHeartbeat(ctx context.Context, n *store.Node) error {
	seen := n.SeenAt
	if seen.IsZero() {
		seen = time.Now()
	}
	started := n.StartedAt
	if started.IsZero() {
		started = seen
	}
	var b pgx.Batch
	b.Queue(`INSERT INTO nodes (id, host, pid, started_at, seen_at, running) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, started_at = excluded.started_at,
			seen_at = excluded.seen_at, running = excluded.running`,
		n.ID, n.Host, n.PID, started, seen, n.Running)
	b.Queue(`DELETE FROM nodes WHERE seen_at < $1`, seen.Add(-24*time.Hour))
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("postgres: heartbeat of node %s: %w", n.ID, err)
	}
	return nil
}

// NodeList lists the nodes seen in the last day, most recently seen first.
func (s *Store) NodeList(ctx context.Context) ([]*store.Node, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, host, pid, started_at, seen_at, running FROM nodes ORDER BY seen_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list nodes: %w", err)
	}
	defer rows.Close()
	var nodes []*store.Node
	for rows.Next() {
		var n store.Node
		var pid, running int32
		if err := rows.Scan(&n.ID, &n.Host, &pid, &n.StartedAt, &n.SeenAt, &running); err != nil {
			return nil, fmt.Errorf("postgres: list nodes: %w", err)
		}
		n.PID, n.Running = int(pid), int(running)
		n.StartedAt, n.SeenAt = n.StartedAt.UTC(), n.SeenAt.UTC()
		nodes = append(nodes, &n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list nodes: %w", err)
	}
	return nodes, nil
}
