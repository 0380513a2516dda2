package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

const deliveryColumns = `id, run_id, event, url, state, attempts, created_at, next_at`

func scanDeliveries(rows pgx.Rows, err error) ([]*store.Delivery, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Delivery
	for rows.Next() {
		var d store.Delivery
		var attempts []byte
		if err := rows.Scan(&d.ID, &d.RunID, &d.Event, &d.URL, &d.State, &attempts, &d.CreatedAt, &d.NextAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(attempts, &d.Attempts); err != nil {
			return nil, fmt.Errorf("delivery %s: decode attempts: %w", d.ID, err)
		}
		if d.Attempts == nil {
			d.Attempts = []store.DeliveryAttempt{}
		}
		for i := range d.Attempts {
			d.Attempts[i].At = d.Attempts[i].At.UTC()
		}
		d.CreatedAt, d.NextAt = d.CreatedAt.UTC(), d.NextAt.UTC()
		out = append(out, &d)
	}
	return out, rows.Err()
}

// WebhookClaim leases up to limit due deliveries to node until leaseUntil. Deliveries leased
// by another node are skipped (FOR UPDATE SKIP LOCKED, then the lease), so each attempt is
// made by one node.
func (s *Store) WebhookClaim(ctx context.Context, node string, now, leaseUntil time.Time, limit int) ([]*store.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	ds, err := scanDeliveries(s.pool.Query(ctx, `WITH due AS (
		SELECT id FROM webhook_deliveries
		WHERE state = 'pending' AND next_at <= $2 AND (lease_until IS NULL OR lease_until <= $2)
		ORDER BY next_at, id LIMIT $4
		FOR UPDATE SKIP LOCKED
	)
	UPDATE webhook_deliveries d SET lease_node = $1, lease_until = $3 FROM due WHERE d.id = due.id
	RETURNING d.id, d.run_id, d.event, d.url, d.state, d.attempts, d.created_at, d.next_at`,
		node, now, leaseUntil, limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: claim webhook deliveries: %w", err)
	}
	slices.SortFunc(ds, func(a, b *store.Delivery) int {
		if c := a.NextAt.Compare(b.NextAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	return ds, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// WebhookRecord appends one attempt to a delivery and sets its state (and, when pending,
// when it is next due), releasing its lease.
func (s *Store) WebhookRecord(ctx context.Context, p *store.WebhookRecordParams) error {
	switch p.State {
	case store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
	default:
		return spool.Invalid("state", fmt.Sprintf("delivery state %q is not pending, delivered or failed", p.State))
	}
	attempt, err := json.Marshal(p.Attempt)
	if err != nil {
		return fmt.Errorf("postgres: record webhook attempt: %w", err)
	}
	var next any
	if p.State == store.DeliveryPending {
		next = p.NextAt
	}
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries
		SET attempts = attempts || jsonb_build_array($2::jsonb), state = $3, next_at = coalesce($4, next_at),
			lease_node = '', lease_until = NULL
		WHERE id = $1`, p.ID, string(attempt), p.State, next)
	if err != nil {
		return fmt.Errorf("postgres: record webhook attempt of %s: %w", p.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return &spool.Error{Code: spool.CodeNotFound, Message: fmt.Sprintf("webhook delivery %s not found", p.ID)}
	}
	return nil
}

// WebhookList returns a run's deliveries with their attempts, oldest first.
func (s *Store) WebhookList(ctx context.Context, runID string) ([]*store.Delivery, error) {
	ds, err := scanDeliveries(s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE run_id = $1 ORDER BY created_at, id`, runID))
	if err != nil {
		return nil, fmt.Errorf("postgres: list webhook deliveries of run %s: %w", runID, err)
	}
	return ds, nil
}

// webhookEvent is the event a terminal run's webhook delivery is for (its state), and
// whether the run asked for it. Empty WebhookEvents means every terminal state. Names:
// "completed" or "succeeded", "failed" (any failure, timeouts included), "timeout" (failed
// with code timeout), "cancelled"; case is ignored, and so is a "job." or "run." prefix.
func webhookEvent(r *spool.Run) (string, bool) {
	if r.WebhookURL == "" || !r.State.IsTerminal() {
		return "", false
	}
	ev := string(r.State)
	if len(r.WebhookEvents) == 0 {
		return ev, true
	}
	for _, name := range r.WebhookEvents {
		name = strings.ToLower(strings.TrimSpace(name))
		name = strings.TrimPrefix(strings.TrimPrefix(name, "job."), "run.")
		switch name {
		case "completed", "succeeded":
			if r.State == spool.StateSucceeded {
				return ev, true
			}
		case "failed":
			if r.State == spool.StateFailed {
				return ev, true
			}
		case "timeout":
			if r.State == spool.StateFailed && r.ErrorCode == spool.CodeTimeout {
				return ev, true
			}
		case "cancelled", "canceled":
			if r.State == spool.StateCancelled {
				return ev, true
			}
		}
	}
	return ev, false
}

// queueEnded adds to b what follows a run's end: its webhook delivery (due at once), its wait
// and duration in run_totals, and a TopicFinish notification. Runs must be terminal.
func queueEnded(b *pgx.Batch, runs []*spool.Run, now time.Time, n *notes) error {
	var (
		ids, runIDs, events, urls []string
		times                     []time.Time
		totals                    = map[string]*[4]int64{}
		workspaces                []string
	)
	for _, r := range runs {
		n.finish(r.ID)
		if ev, ok := webhookEvent(r); ok {
			ids = append(ids, "whd_"+ulid.Make().String())
			runIDs, events, urls = append(runIDs, r.ID), append(events, ev), append(urls, r.WebhookURL)
			at := now
			if r.CompletedAt != nil {
				at = *r.CompletedAt
			}
			times = append(times, at)
		}
		if r.StartedAt != nil {
			t := totals[r.Workspace]
			if t == nil {
				t = new([4]int64)
				totals[r.Workspace] = t
				workspaces = append(workspaces, r.Workspace)
			}
			t[0]++
			t[1] += r.StartedAt.Sub(r.CreatedAt).Microseconds()
			if r.CompletedAt != nil {
				t[2]++
				t[3] += r.CompletedAt.Sub(*r.StartedAt).Microseconds()
			}
		}
	}
	if len(ids) > 0 {
		b.Queue(`INSERT INTO webhook_deliveries (id, run_id, event, url, state, created_at, next_at)
			SELECT id, run_id, event, url, 'pending', at, at
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS d(id, run_id, event, url, at)`,
			ids, runIDs, events, urls, times)
	}
	if len(workspaces) > 0 {
		// In workspace order, so concurrent transactions lock the rows in the same order.
		slices.Sort(workspaces)
		k := len(workspaces)
		waited, waitUS, timed, durUS := make([]int64, k), make([]int64, k), make([]int64, k), make([]int64, k)
		for i, ws := range workspaces {
			t := totals[ws]
			waited[i], waitUS[i], timed[i], durUS[i] = t[0], t[1], t[2], t[3]
		}
		b.Queue(`INSERT INTO run_totals (workspace, waited, wait_us, timed, duration_us)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) ORDER BY 1
			ON CONFLICT (workspace) DO UPDATE SET waited = run_totals.waited + excluded.waited,
				wait_us = run_totals.wait_us + excluded.wait_us, timed = run_totals.timed + excluded.timed,
				duration_us = run_totals.duration_us + excluded.duration_us`,
			workspaces, waited, waitUS, timed, durUS)
	}
	return nil
}
