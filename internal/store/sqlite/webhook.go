package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

const deliveryColumns = `id, run_id, event, url, state, attempts, created_at, next_at`

const sqlDeliveryInsert = `INSERT INTO webhook_deliveries (id, run_id, event, url, state, created_at, next_at)
VALUES (?, ?, ?, ?, 'pending', ?, ?)`

// enqueueWebhook queues a delivery of r's terminal state when r has a webhook that wants it.
func enqueueWebhook(tx *wtx, r *spool.Run, now time.Time) error {
	if r.WebhookURL == "" || !r.State.IsTerminal() || !wantsWebhook(r) {
		return nil
	}
	_, err := tx.exec(sqlDeliveryInsert, "whd_"+ulid.Make().String(), r.ID, string(r.State), r.WebhookURL,
		micros(now), micros(now))
	return err
}

// wantsWebhook reports whether a run in its (terminal) state asked for a webhook delivery.
// Empty WebhookEvents means every terminal state. Names: "completed" or "succeeded",
// "failed" (any failure, timeouts included), "timeout" (failed with code timeout),
// "cancelled"; a "job." or "run." prefix is ignored.
func wantsWebhook(r *spool.Run) bool {
	if len(r.WebhookEvents) == 0 {
		return r.State.IsTerminal()
	}
	for _, name := range r.WebhookEvents {
		name = strings.ToLower(strings.TrimSpace(name))
		name = strings.TrimPrefix(strings.TrimPrefix(name, "job."), "run.")
		switch name {
		case "completed", "succeeded":
			if r.State == spool.StateSucceeded {
				return true
			}
		case "failed":
			if r.State == spool.StateFailed {
				return true
			}
		case "timeout":
			if r.State == spool.StateFailed && r.ErrorCode == spool.CodeTimeout {
				return true
			}
		case "cancelled", "canceled":
			if r.State == spool.StateCancelled {
				return true
			}
		}
	}
	return false
}

const sqlWebhookClaim = `UPDATE webhook_deliveries SET lease_node = ?1, lease_until = ?3
WHERE id IN (
	SELECT id FROM webhook_deliveries
	WHERE state = 'pending' AND next_at <= ?2 AND (lease_until IS NULL OR lease_until <= ?2)
	ORDER BY next_at LIMIT ?4)
RETURNING ` + deliveryColumns

// WebhookClaim leases up to limit due deliveries to node until leaseUntil.
func (s *Store) WebhookClaim(ctx context.Context, node string, now, leaseUntil time.Time, limit int) ([]*store.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []*store.Delivery
	err := s.write(ctx, func(tx *wtx) error {
		rows, err := tx.query(sqlWebhookClaim, node, micros(now), micros(leaseUntil), limit)
		out, err = scanDeliveries(rows, err)
		return err
	})
	if err != nil {
		return nil, wrap("claim webhook deliveries", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].NextAt.Equal(out[j].NextAt) {
			return out[i].NextAt.Before(out[j].NextAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

const sqlWebhookRecord = `UPDATE webhook_deliveries
SET attempts = json_insert(attempts, '$[#]', json(?2)), state = ?3,
	next_at = CASE WHEN ?3 = 'pending' THEN ?4 ELSE next_at END,
	lease_node = '', lease_until = NULL
WHERE id = ?1`

// WebhookRecord appends one attempt to a delivery and sets its state.
func (s *Store) WebhookRecord(ctx context.Context, p *store.WebhookRecordParams) error {
	switch p.State {
	case store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
	default:
		return spool.Errorf(spool.CodeInvalid, "webhook delivery %s: unknown state %q", p.ID, p.State)
	}
	a := p.Attempt
	a.At = a.At.UTC()
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("sqlite: record webhook attempt: %w", err)
	}
	next := p.NextAt
	if next.IsZero() {
		next = a.At
	}
	err = s.write(ctx, func(tx *wtx) error {
		res, err := tx.exec(sqlWebhookRecord, p.ID, string(b), p.State, micros(next))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return spool.Errorf(spool.CodeNotFound, "webhook delivery %s not found", p.ID)
		}
		return nil
	})
	return wrap("record webhook attempt", err)
}

const sqlWebhookList = `SELECT ` + deliveryColumns + ` FROM webhook_deliveries WHERE run_id = ? ORDER BY created_at, id`

// WebhookList returns a run's deliveries, oldest first, with their attempts.
func (s *Store) WebhookList(ctx context.Context, runID string) ([]*store.Delivery, error) {
	out, err := scanDeliveries(s.queryRead(ctx, sqlWebhookList, runID))
	return out, wrap("list webhook deliveries", err)
}

func scanDeliveries(rows *sql.Rows, err error) ([]*store.Delivery, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Delivery
	for rows.Next() {
		var (
			d               store.Delivery
			attempts        []byte
			created, nextAt int64
		)
		if err := rows.Scan(&d.ID, &d.RunID, &d.Event, &d.URL, &d.State, &attempts, &created, &nextAt); err != nil {
			return nil, err
		}
		d.CreatedAt, d.NextAt = fromMicros(created), fromMicros(nextAt)
		if err := json.Unmarshal(attempts, &d.Attempts); err != nil {
			return nil, fmt.Errorf("delivery %s: decode attempts: %w", d.ID, err)
		}
		if d.Attempts == nil {
			d.Attempts = []store.DeliveryAttempt{}
		}
		for i := range d.Attempts {
			d.Attempts[i].At = d.Attempts[i].At.UTC()
		}
		out = append(out, &d)
	}
	return out, rows.Err()
}
