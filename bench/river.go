package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

// riverSetting is River's fetch configuration (docs/benchmarks.md).
type riverSetting struct {
	name              string
	fetchCooldown     time.Duration
	fetchPollInterval time.Duration
}

var (
	riverDefault = riverSetting{"default", river.FetchCooldownDefault, river.FetchPollIntervalDefault}
	riverTuned   = riverSetting{"tuned", time.Millisecond, 50 * time.Millisecond}
)

// settingInsertOnly labels rows whose River client works no jobs, where fetch settings
// play no part.
const settingInsertOnly = "insert-only"

// riverSystem runs the workloads on River v0.49.0 with one setting.
type riverSystem struct {
	set     riverSetting
	workers int
}

func (s *riverSystem) name() string    { return "river " + s.set.name }
func (s *riverSystem) setting() string { return s.set.name }

type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type latencyArgs struct {
	Seq int `json:"seq"`
}

func (latencyArgs) Kind() string { return "latency" }

// riverDB is a fresh, migrated River database with its driver.
type riverDB[TTx any] struct {
	driver riverdriver.Driver[TTx]
	schema string // PostgreSQL only
	db     *database
	close  func()
}

// onRiver opens a fresh River database of b's kind, runs the workload for that driver, and
// closes the database.
func onRiver[T any](ctx context.Context, b *backend,
	onSQLite func(*riverDB[*sql.Tx]) (T, error), onPostgres func(*riverDB[pgx.Tx]) (T, error)) (T, error) {
	var zero T
	db, err := b.fresh(ctx, "river")
	if err != nil {
		return zero, err
	}
	defer db.drop()
	if b.kind == sqliteBackend {
		sdb, err := openRiverSQLite(db.path)
		if err != nil {
			return zero, err
		}
		rdb := &riverDB[*sql.Tx]{driver: riversqlite.New(sdb), db: db, close: func() { sdb.Close() }}
		defer rdb.close()
		if err := rdb.migrate(ctx); err != nil {
			return zero, err
		}
		return onSQLite(rdb)
	}
	pcfg, err := pgxpool.ParseConfig(b.url) // pgxpool's defaults (docs/benchmarks.md)
	if err != nil {
		return zero, fmt.Errorf("parsing the PostgreSQL URL: %w", err)
	}
	pcfg.ConnConfig.RuntimeParams["application_name"] = riverAppName
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return zero, fmt.Errorf("connecting River to PostgreSQL: %w", err)
	}
	rdb := &riverDB[pgx.Tx]{driver: riverpgxv5.New(pool), schema: db.schema, db: db, close: pool.Close}
	defer rdb.close()
	if err := rdb.migrate(ctx); err != nil {
		return zero, err
	}
	return onPostgres(rdb)
}

// migrate runs River's migrations on the empty database, then lets it settle.
func (d *riverDB[TTx]) migrate(ctx context.Context) error {
	m, err := rivermigrate.New(d.driver, &rivermigrate.Config{Schema: d.schema, Logger: discardLogger()})
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return d.db.settle(ctx)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// client builds a River client; with working it works the default queue with s.workers
// workers at s's fetch setting, else it only inserts.
func riverClient[TTx any](s *riverSystem, d *riverDB[TTx], workers *river.Workers, working bool) (*river.Client[TTx], error) {
	cfg := &river.Config{Logger: discardLogger(), Schema: d.schema, Workers: workers}
	if working {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: s.workers}}
		cfg.FetchCooldown = s.set.fetchCooldown
		cfg.FetchPollInterval = s.set.fetchPollInterval
	}
	c, err := river.NewClient(d.driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the River client: %w", err)
	}
	return c, nil
}

func noopWorkers() *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, river.WorkFunc(func(context.Context, *river.Job[noopArgs]) error { return nil }))
	return w
}

func (s *riverSystem) insertOne(ctx context.Context, b *backend, n int) (float64, error) {
	return onRiver(ctx, b,
		func(d *riverDB[*sql.Tx]) (float64, error) { return riverInsertOne(ctx, s, d, n) },
		func(d *riverDB[pgx.Tx]) (float64, error) { return riverInsertOne(ctx, s, d, n) })
}

func riverInsertOne[TTx any](ctx context.Context, s *riverSystem, d *riverDB[TTx], n int) (float64, error) {
	c, err := riverClient(s, d, noopWorkers(), false)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := c.Insert(ctx, noopArgs{}, nil); err != nil {
			return 0, fmt.Errorf("river insert %d: %w", i, err)
		}
	}
	return rate(n, time.Since(start)), nil
}

func (s *riverSystem) insertBatch(ctx context.Context, b *backend, n int) (float64, error) {
	return onRiver(ctx, b,
		func(d *riverDB[*sql.Tx]) (float64, error) { return riverInsertBatch(ctx, s, d, n) },
		func(d *riverDB[pgx.Tx]) (float64, error) { return riverInsertBatch(ctx, s, d, n) })
}

func riverInsertBatch[TTx any](ctx context.Context, s *riverSystem, d *riverDB[TTx], n int) (float64, error) {
	c, err := riverClient(s, d, noopWorkers(), false)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := riverInsertNoops(ctx, c, n); err != nil {
		return 0, err
	}
	return rate(n, time.Since(start)), nil
}

// riverInsertNoops inserts n noop jobs with InsertMany, 1,000 per call.
func riverInsertNoops[TTx any](ctx context.Context, c *river.Client[TTx], n int) error {
	params := make([]river.InsertManyParams, 0, batchSize)
	for i := 0; i < n; i++ {
		params = append(params, river.InsertManyParams{Args: noopArgs{}})
		if len(params) == batchSize || i == n-1 {
			if _, err := c.InsertMany(ctx, params); err != nil {
				return fmt.Errorf("river InsertMany: %w", err)
			}
			params = params[:0]
		}
	}
	return nil
}

func (s *riverSystem) workRate(ctx context.Context, b *backend, n int) (drainResult, error) {
	return onRiver(ctx, b,
		func(d *riverDB[*sql.Tx]) (drainResult, error) { return riverWorkRate(ctx, s, d, n) },
		func(d *riverDB[pgx.Tx]) (drainResult, error) { return riverWorkRate(ctx, s, d, n) })
}

// riverWorkRate pre-inserts n jobs, then times from Start to the n-th EventKindJobCompleted
// (sent after the completer has stored the completion).
func riverWorkRate[TTx any](ctx context.Context, s *riverSystem, d *riverDB[TTx], n int) (drainResult, error) {
	c, err := riverClient(s, d, noopWorkers(), true)
	if err != nil {
		return drainResult{}, err
	}
	events, cancel := c.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: n + 1000, // drops nothing
		Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed},
	})
	defer cancel()
	if err := riverInsertNoops(ctx, c, n); err != nil {
		return drainResult{}, err
	}
	var sampler *waitSampler
	if b := d.db.b; b.waits && b.kind == postgresBackend {
		sampler = b.startWaitSampler(ctx, riverAppName, 10*time.Millisecond)
	}
	cpu := startCPUClock()
	start := time.Now()
	if err := c.Start(ctx); err != nil {
		return drainResult{}, fmt.Errorf("starting River: %w", err)
	}
	defer c.Stop(context.WithoutCancel(ctx))
	err = awaitCompletions(ctx, events, n)
	res := drainResult{rate: rate(n, time.Since(start)), cpu: cpu.perRun(n)}
	if sampler != nil {
		sampler.stop("River's work-rate drain (" + s.set.name + ")")
	}
	if err != nil {
		return drainResult{}, err
	}
	return res, nil
}

// awaitCompletions reads n completions from events; a failed job is an error.
func awaitCompletions(ctx context.Context, events <-chan *river.Event, n int) error {
	for done := 0; done < n; {
		select {
		case ev := <-events:
			if ev.Kind != river.EventKindJobCompleted {
				return fmt.Errorf("river job %d: %s", ev.Job.ID, ev.Kind)
			}
			done++
		case <-ctx.Done():
			return fmt.Errorf("%d of %d River jobs completed: %w", done, n, ctx.Err())
		}
	}
	return nil
}

func (s *riverSystem) latency(ctx context.Context, b *backend, p latencyPlan) ([]time.Duration, error) {
	return onRiver(ctx, b,
		func(d *riverDB[*sql.Tx]) ([]time.Duration, error) { return riverLatency(ctx, s, d, p) },
		func(d *riverDB[pgx.Tx]) ([]time.Duration, error) { return riverLatency(ctx, s, d, p) })
}

func riverLatency[TTx any](ctx context.Context, s *riverSystem, d *riverDB[TTx], p latencyPlan) ([]time.Duration, error) {
	rec := newStartRecorder(p.count())
	w := river.NewWorkers()
	river.AddWorker(w, river.WorkFunc(func(_ context.Context, j *river.Job[latencyArgs]) error {
		rec.started(j.Args.Seq)
		return nil
	}))
	c, err := riverClient(s, d, w, true)
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting River: %w", err)
	}
	defer c.Stop(context.WithoutCancel(ctx))
	return p.run(ctx, rec, func(ctx context.Context, seq int) error {
		_, err := c.Insert(ctx, latencyArgs{Seq: seq}, nil)
		return err
	})
}
