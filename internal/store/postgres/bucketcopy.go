package postgres

import (
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool/internal/store"
)

// bucketCopy is a node's copy of rate_buckets for its full claims. Every change to
// rate_buckets increments rate_version in its transaction (a trigger does it, migration
// 0004); claims and holds change the buckets under the claim lock, and claims read both
// under it. So while rate_version has not moved, the copy is what the table holds, and a
// claim reads one number instead of every bucket. The copy
// is a store.BucketCache, which also keeps which buckets are empty or held between claims,
// so a claim behind 1,000 rate-limited agents does not visit them all either.
type bucketCopy struct {
	mu      sync.Mutex // held for a whole claim
	rows    *store.BucketCache
	version int64 // rate_version.n that rows match; meaningless while rows is nil
}

// queueRead queues on b the read of rate_version and, when it differs from the copy's (or
// there is no copy), of every bucket. Once b has run, call loaded.
func (c *bucketCopy) queueRead(b *pgx.Batch) *bucketRead {
	r := &bucketRead{have: c.rows != nil, known: c.version}
	b.Queue(`SELECT n FROM rate_version`).QueryRow(func(row pgx.Row) error { return row.Scan(&r.version) })
	b.Queue(`SELECT key, tokens, updated_at, full_at, held_until FROM rate_buckets
		WHERE NOT $1 OR $2 <> (SELECT n FROM rate_version)`, r.have, r.known).Query(func(rows pgx.Rows) error {
		r.rows = r.rows[:0]
		for rows.Next() {
			var row store.BucketRow
			if err := rows.Scan(&row.Key, &row.Tokens, &row.UpdatedAt, &row.FullAt, &row.HeldUntil); err != nil {
				return err
			}
			r.rows = append(r.rows, row)
		}
		return rows.Err()
	})
	return r
}

// bucketRead is a queued read of the buckets.
type bucketRead struct {
	have           bool
	known, version int64
	rows           []store.BucketRow
}

// claim brings the copy up to date with r and starts a claim's accounting on it.
func (c *bucketCopy) claim(r *bucketRead, p *store.RunClaimParams) *store.Buckets {
	if !r.have || r.version != r.known {
		rows := store.NewBucketCache()
		for _, row := range r.rows {
			rows.Put(row)
		}
		c.rows, c.version = rows, r.version
	}
	bk := c.rows.Claim(p.Rates, p.Now)
	for _, a := range p.HeldAgents {
		bk.HoldLocal(store.RateKey(store.RateAgent, a))
	}
	return bk
}

// stored records the buckets a committed claim wrote, and the version its write made.
func (c *bucketCopy) stored(rows []store.BucketRow, version int64) {
	if c.rows == nil || len(rows) == 0 {
		return
	}
	for _, r := range rows {
		old, _ := c.rows.Get(r.Key)
		c.rows.Put(store.BucketRow{Key: r.Key, Tokens: r.Tokens, UpdatedAt: dbTime(r.UpdatedAt),
			FullAt: dbTime(r.FullAt), HeldUntil: old.HeldUntil})
	}
	c.version = version
}

// drop forgets the copy: the next claim reads every bucket.
func (c *bucketCopy) drop() { c.rows = nil }

// dbTime is t as a timestamptz column stores it: microseconds, UTC.
func dbTime(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }
