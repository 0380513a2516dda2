package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool/internal/store"
)

// bucketsSQL reads the buckets that matter at $1: not yet full again, or held.
const bucketsSQL = `SELECT key, tokens, updated_at, full_at, held_until FROM rate_buckets
WHERE full_at > $1 OR held_until > $1`

// loadBuckets reads the stored buckets and holds into a claim's accounting, with the
// node's own holds added.
func loadBuckets(ctx context.Context, q querier, p *store.RunClaimParams) (*store.Buckets, error) {
	var b pgx.Batch
	bk := queueBuckets(&b, p)
	if err := q.SendBatch(ctx, &b).Close(); err != nil {
		return nil, err
	}
	return bk, nil
}

// queueBuckets queues on b the read of the stored buckets and holds, into the accounting
// it returns (with the node's own holds added) once b has run.
func queueBuckets(b *pgx.Batch, p *store.RunClaimParams) *store.Buckets {
	bk := store.NewBuckets(p.Rates, p.Now)
	for _, a := range p.HeldAgents {
		bk.HoldLocal(store.RateKey(store.RateAgent, a))
	}
	b.Queue(bucketsSQL, p.Now).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var row store.BucketRow
			if err := rows.Scan(&row.Key, &row.Tokens, &row.UpdatedAt, &row.FullAt, &row.HeldUntil); err != nil {
				return err
			}
			bk.Load(row)
		}
		return rows.Err()
	})
	return bk
}

// queueStoreBuckets queues on b the write of the buckets a claim took tokens from, keeping
// their holds, and the read of rate_version after it (moved by the write's trigger), into
// *version once b has run.
func queueStoreBuckets(b *pgx.Batch, rows []store.BucketRow, version *int64) {
	if len(rows) == 0 {
		return
	}
	keys := make([]string, len(rows))
	tokens := make([]float64, len(rows))
	updated := make([]time.Time, len(rows))
	full := make([]time.Time, len(rows))
	for i, r := range rows {
		keys[i], tokens[i], updated[i], full[i] = r.Key, r.Tokens, r.UpdatedAt, r.FullAt
	}
	b.Queue(`INSERT INTO rate_buckets (key, tokens, updated_at, full_at)
		SELECT * FROM unnest($1::text[], $2::float8[], $3::timestamptz[], $4::timestamptz[])
		ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at,
			full_at = excluded.full_at`, keys, tokens, updated, full)
	b.Queue(`SELECT n FROM rate_version`).QueryRow(func(row pgx.Row) error { return row.Scan(version) })
}

// RateHold holds key until until on every node; a later hold wins.
func (s *Store) RateHold(ctx context.Context, key string, until time.Time) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Claims read buckets under the claim lock; taking it orders this hold with them.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.claimKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO rate_buckets (key, tokens, updated_at, full_at, held_until)
			VALUES ($1, 0, 'epoch', 'epoch', $2)
			ON CONFLICT (key) DO UPDATE SET held_until = greatest(rate_buckets.held_until, excluded.held_until)`,
			key, until)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: hold %s: %w", key, err)
	}
	return nil
}

// RateList returns the buckets that are empty or held at now, with the queued runs waiting
// on each and on any of them.
func (s *Store) RateList(ctx context.Context, rates map[string]store.Rate, now time.Time) ([]*store.RateState, int64, error) {
	b, err := loadBuckets(ctx, s.pool, &store.RunClaimParams{Rates: rates, Now: now})
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: list rate buckets: %w", err)
	}
	states := b.States()
	if len(states) == 0 {
		return nil, 0, nil
	}
	var (
		batch   pgx.Batch
		total   int64
		byKind  = map[string][]string{}
		columns = map[string]string{store.RateAgent: "agent", store.RateWorkspace: "workspace", store.RateRecipe: "recipe"}
	)
	for _, st := range states {
		kind, name, _ := strings.Cut(st.Key, ":")
		col := columns[kind]
		if col == "" {
			continue
		}
		byKind[kind] = append(byKind[kind], name)
		batch.Queue(`SELECT count(*) FROM runs WHERE state = 'queued' AND `+col+` = $1`,
			name).QueryRow(func(row pgx.Row) error { return row.Scan(&st.Waiting) })
	}
	batch.Queue(`SELECT count(*) FROM runs WHERE state = 'queued'
		AND (agent = ANY($1::text[]) OR workspace = ANY($2::text[]) OR recipe = ANY($3::text[]))`,
		append([]string{}, byKind[store.RateAgent]...), append([]string{}, byKind[store.RateWorkspace]...),
		append([]string{}, byKind[store.RateRecipe]...)).QueryRow(func(row pgx.Row) error { return row.Scan(&total) })
	if err := s.pool.SendBatch(ctx, &batch).Close(); err != nil {
		return nil, 0, fmt.Errorf("postgres: count runs waiting on rate limits: %w", err)
	}
	return states, total, nil
}
