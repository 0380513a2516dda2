package sqlite

import (
	"context"
	"time"

	"github.com/spool-run/spool/internal/store"
)

// nodeForget is how long a node that stopped heartbeating stays listed.
const nodeForget = time.Hour

const (
	sqlNodeUpsert = `INSERT INTO nodes (id, host, pid, started_at, seen_at, running) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, started_at = excluded.started_at,
	seen_at = excluded.seen_at, running = excluded.running`
	sqlNodeForget = `DELETE FROM nodes WHERE seen_at < ?`
	sqlNodeList   = `SELECT id, host, pid, started_at, seen_at, running FROM nodes ORDER BY id`
)

// NodeHeartbeat records that a node is alive, and forgets nodes silent for an hour.
func (s *Store) NodeHeartbeat(ctx context.Context, n *store.Node) error {
	seen := n.SeenAt
	if seen.IsZero() {
		seen = time.Now()
	}
	started := n.StartedAt
	if started.IsZero() {
		started = seen
	}
	err := s.write(ctx, func(tx *wtx) error {
		if _, err := tx.exec(sqlNodeUpsert, n.ID, n.Host, n.PID, micros(started), micros(seen), n.Running); err != nil {
			return err
		}
		_, err := tx.exec(sqlNodeForget, micros(seen.Add(-nodeForget)))
		return err
	})
	return wrap("node heartbeat", err)
}

// NodeList lists the nodes seen within the last hour, by id.
func (s *Store) NodeList(ctx context.Context) ([]*store.Node, error) {
	rows, err := s.queryRead(ctx, sqlNodeList)
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	defer rows.Close()
	var out []*store.Node
	for rows.Next() {
		var (
			n             store.Node
			started, seen int64
		)
		if err := rows.Scan(&n.ID, &n.Host, &n.PID, &started, &seen, &n.Running); err != nil {
			return nil, wrap("list nodes", err)
		}
		n.StartedAt, n.SeenAt = fromMicros(started), fromMicros(seen)
		out = append(out, &n)
	}
	return out, wrap("list nodes", rows.Err())
}
