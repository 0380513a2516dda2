// Package postgres is Spool's PostgreSQL storage driver: many spool nodes share one database.
//
// Every decision that must hold across nodes is made inside a transaction: claims are
// serialised by a transaction-level advisory lock so concurrency limits are counted and
// applied atomically, runs are picked with FOR UPDATE SKIP LOCKED, idempotency keys are a
// unique index, and state changes are guarded by the expected current state. Transactions
// that change runs send NOTIFY messages so other nodes wake at once instead of polling.
// See docs/postgres.md.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

var (
	_ store.Store    = (*Store)(nil)
	_ store.Listener = (*Store)(nil)
)

// Store is the PostgreSQL driver. It is safe for concurrent use, and any number of stores
// (in one process or many) may share one database schema.
type Store struct {
	pool    *pgxpool.Pool
	schema  string
	channel string // NOTIFY channel of this schema

	claimKey int64 // advisory lock serialising claims
	queueKey int64 // advisory lock serialising queue-size checks

	// groupWise counts down the full claims that read candidates group by group at once,
	// because a blocked backlog filled the scan of a recent one (see Store.candidates).
	groupWise atomic.Int32
	// groups lists the groups that have queued runs, for claims behind many blocked ones.
	groups queuedGroups
	// buckets is the node's copy of rate_buckets for full claims.
	buckets bucketCopy

	submits submitNotifier // coalesces submit notifications (notify.go)

	ctx    context.Context // ends at Close; stops listeners
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
}

type options struct {
	schema   string
	maxConns int32
}

// Option configures [Open].
type Option func(*options)

// WithSchema keeps Spool's tables in the named schema, creating it when missing, and sets
// every connection's search_path to it. Without it, the tables live in the first schema of
// the URL's search_path (usually public).
func WithSchema(name string) Option {
	return func(o *options) { o.schema = name }
}

// defaultMaxConns is the pool's size unless WithMaxConns or the URL's pool_max_conns say
// otherwise (pgxpool's own default is max(4, GOMAXPROCS)).
const defaultMaxConns = 16

// WithMaxConns bounds the connection pool (default: 16, or the URL's pool_max_conns).
func WithMaxConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxConns = int32(n)
		}
	}
}

// Open connects to the database at url (a postgres:// URL or a key=value string), applies
// pending migrations and returns the store. Several nodes may open the same database at once:
// migrations are applied once, under an advisory lock.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if o.schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{o.schema}.Sanitize()
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	} else if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "spool"
	}
	if cfg.ConnConfig.RuntimeParams["jit"] == "" {
		// Spool's queries are short; compiling them (when a poor row estimate crosses
		// jit_above_cost) costs far more than running them.
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, schema: o.schema}
	if s.schema == "" {
		var schema *string
		if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: connect: %w", err)
		}
		if schema == nil {
			pool.Close()
			return nil, errors.New("postgres: no schema of the search_path exists; create one or use WithSchema")
		}
		s.schema = *schema
	}
	s.claimKey = lockKey("claim", s.schema)
	s.queueKey = lockKey("queue", s.schema)
	s.channel = channelName(s.schema)
	if err := s.migrate(ctx, o.schema != ""); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate schema %s: %w", s.schema, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// DatabaseName returns "postgres".
func (s *Store) DatabaseName() string { return "postgres" }

// Schema returns the schema holding Spool's tables.
func (s *Store) Schema() string { return s.schema }

// Pool returns the connection pool, for tests and tools that inspect the database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops the listeners and closes the connection pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.pool.Close()
	})
	return nil
}

// lockKey derives an advisory lock key for one purpose in one schema, so that stores of
// different schemas in one database never wait for each other.
func lockKey(purpose, schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("spool." + purpose + "." + schema))
	return int64(h.Sum64())
}

// channelName is the NOTIFY channel of a schema: "spool" for public, else "spool.<schema>",
// shortened to fit PostgreSQL's 63-byte identifiers.
func channelName(schema string) string {
	if schema == "public" {
		return "spool"
	}
	name := "spool." + schema
	if len(name) > 63 {
		h := fnv.New64a()
		h.Write([]byte(schema))
		name = fmt.Sprintf("spool.%.40s.%016x", schema, h.Sum64())
	}
	return name
}

// querier is what pgx.Tx and *pgxpool.Pool have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// inTx runs fn in a transaction, retrying it when PostgreSQL aborts it for a deadlock or a
// serialisation failure. fn must not keep state from a failed try.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return retry(ctx, func() error { return pgx.BeginFunc(ctx, s.pool, fn) })
}

// retry calls fn again (up to 5 tries) while it fails with a transient error.
func retry(ctx context.Context, fn func() error) error {
	for try := 1; ; try++ {
		err := fn()
		if err == nil || try == 5 || !transient(err) || ctx.Err() != nil {
			return err
		}
	}
}

// transient reports whether err is a deadlock or serialisation failure, which a retry of
// the whole transaction resolves.
func transient(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// notFound is the error for a missing run.
func notFound(id string) error {
	return &spool.Error{Code: spool.CodeNotFound, Message: fmt.Sprintf("run %s not found", id)}
}

// conflict is the error for an action the run's state does not allow.
func conflict(id string, state spool.State, action string) error {
	return &spool.Error{
		Code:    spool.CodeConflict,
		Message: fmt.Sprintf("cannot %s run %s: it is %s", action, id, state),
		State:   state,
	}
}
