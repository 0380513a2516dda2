package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// writer owns the only write connection. Callers hand it functions; it runs the functions
// that arrived while the previous transaction was committing in one transaction, each
// inside its own savepoint, so one fsync commits them all and a failing function rolls back
// only its own changes.
type writer struct {
	conn     *sql.Conn
	stmts    map[string]*sql.Stmt
	jobs     chan *writeJob
	quit     chan struct{}
	done     chan struct{}
	maxBatch int
	// optimized is when PRAGMA optimize last ran.
	optimized time.Time
	// cache is what claims read, kept in step with the writes (claimCache).
	cache claimCache
}

// optimizeEvery is how often the writer runs PRAGMA optimize.
const optimizeEvery = time.Hour

type writeJob struct {
	ctx  context.Context
	fn   func(*wtx) error
	err  error
	done chan error
}

func newWriter(conn *sql.Conn, maxBatch int) *writer {
	w := &writer{
		conn:      conn,
		stmts:     map[string]*sql.Stmt{},
		jobs:      make(chan *writeJob),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		maxBatch:  maxBatch,
		optimized: time.Now(),
	}
	go w.loop()
	return w
}

// write runs fn in a write transaction and returns once that transaction committed (nil) or
// failed. fn must only touch the database through tx and may be part of a larger
// transaction; when it returns an error, its changes are rolled back. A fn that has not
// started when ctx ends is skipped; one that started is waited for.
func (s *Store) write(ctx context.Context, fn func(tx *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.w.jobs <- j:
	case <-s.w.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-j.done
}

func (w *writer) loop() {
	defer close(w.done)
	batch := make([]*writeJob, 0, w.maxBatch)
	for {
		select {
		case j := <-w.jobs:
			batch = append(batch[:0], j)
		case <-w.quit:
			return
		}
	gather:
		for len(batch) < w.maxBatch {
			select {
			case j := <-w.jobs:
				batch = append(batch, j)
			default:
				break gather
			}
		}
		w.run(batch)
		clear(batch)
		if time.Since(w.optimized) > optimizeEvery {
			// Refresh the planner's statistics now and then (bounded by analysis_limit).
			_, _ = w.conn.ExecContext(context.Background(), "PRAGMA optimize")
			w.optimized = time.Now()
		}
	}
}

// run executes one batch in one transaction and reports to every job.
func (w *writer) run(batch []*writeJob) {
	live := make([]*writeJob, 0, len(batch))
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.done <- err
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	tx := &wtx{w: w}
	if _, err := tx.exec("BEGIN IMMEDIATE"); err != nil {
		for _, j := range live {
			j.done <- fmt.Errorf("sqlite: begin: %w", err)
		}
		return
	}
	multi := len(live) > 1
	var abort error
	for _, j := range live {
		if multi {
			if _, err := tx.exec("SAVEPOINT w"); err != nil {
				abort = fmt.Errorf("sqlite: savepoint: %w", err)
				break
			}
		}
		j.err = call(tx, j.fn)
		if j.err == nil {
			j.err = tx.flushStats()
		}
		tx.statsForget()
		if j.err != nil {
			w.cache.undo() // its changes are rolled back below
		}
		if !multi {
			break
		}
		if j.err != nil {
			if _, err := tx.exec("ROLLBACK TO w"); err != nil {
				abort = fmt.Errorf("sqlite: rollback to savepoint after %v: %w", j.err, err)
				break
			}
		}
		if _, err := tx.exec("RELEASE w"); err != nil {
			abort = fmt.Errorf("sqlite: release savepoint: %w", err)
			break
		}
	}
	switch {
	case abort != nil || (!multi && live[0].err != nil):
		_, _ = tx.exec("ROLLBACK")
	default:
		if _, err := tx.exec("COMMIT"); err != nil {
			_, _ = tx.exec("ROLLBACK")
			abort = fmt.Errorf("sqlite: commit: %w", err)
		}
	}
	if abort != nil {
		w.cache.undo()
	}
	w.cache.committed()
	for _, j := range live {
		if j.err == nil && abort != nil {
			j.err = abort
		}
		j.done <- j.err
	}
}

// call runs fn, turning a panic into an error so the writer survives it.
func call(tx *wtx, fn func(*wtx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlite: panic in write transaction: %v", r)
		}
	}()
	return fn(tx)
}

func (w *writer) close() error {
	select {
	case <-w.quit:
		return nil
	default:
	}
	close(w.quit)
	<-w.done
	var errs []error
	for _, st := range w.stmts {
		errs = append(errs, st.Close())
	}
	w.stmts = nil
	_, _ = w.conn.ExecContext(context.Background(), "PRAGMA optimize")
	errs = append(errs, w.conn.Close())
	return errors.Join(errs...)
}

// wtx is the write transaction a write function runs in. Its statements are prepared once
// on the write connection and reused.
type wtx struct {
	w     *writer
	stats map[statsKey]*statsDelta // run_stats changes not yet written
}

func (t *wtx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := t.w.stmts[query]; ok {
		return st, nil
	}
	st, err := t.w.conn.PrepareContext(context.Background(), query)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", firstLine(query), err)
	}
	t.w.stmts[query] = st
	return st, nil
}

func (t *wtx) exec(query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(context.Background(), args...)
}

func (t *wtx) query(query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(context.Background(), args...)
}

func (t *wtx) queryRow(query string, args ...any) scanner {
	st, err := t.stmt(query)
	if err != nil {
		return errScanner{err}
	}
	return st.QueryRowContext(context.Background(), args...)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

type errScanner struct{ err error }

func (e errScanner) Scan(...any) error { return e.err }

func firstLine(q string) string {
	for i, c := range q {
		if c == '\n' {
			return q[:i]
		}
	}
	return q
}
