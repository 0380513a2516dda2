// Package sqlite is Spool's embedded storage driver: one database file, owned by one process.
//
// The file is opened in WAL mode with synchronous=FULL, so a committed run survives a power
// loss. All writes go through a single connection driven by one goroutine that groups the
// writes arriving while the previous transaction commits into the next transaction (group
// commit): many concurrent submits, claims and completions share one fsync. Reads use a
// separate pool and never wait for writes.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/spool-run/spool/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store is the SQLite driver. It is safe for concurrent use.
type Store struct {
	path string
	lock *os.File

	wdb *sql.DB // exactly one connection, owned by the writer goroutine
	rdb *sql.DB // read pool
	w   *writer

	rmu   sync.Mutex
	rstmt map[string]*sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

type options struct {
	readConns int
	maxBatch  int
}

// Option configures [Open].
type Option func(*options)

// WithReadConns sets the size of the read connection pool (default: max(4, GOMAXPROCS)).
func WithReadConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.readConns = n
		}
	}
}

// WithMaxBatch bounds how many write operations share one transaction (default 256).
func WithMaxBatch(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxBatch = n
		}
	}
}

// Open opens (creating it and its parent directories when missing) the database at path,
// takes the process lock on path+".lock" and applies pending migrations. A database whose
// lock is held by another process is refused.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{readConns: max(4, runtime.GOMAXPROCS(0)), maxBatch: 256}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite: open %q: want a file path", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
		}
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, lock: lock, rstmt: map[string]*sql.Stmt{}}
	if err := s.open(ctx, o); err != nil {
		s.closeAll()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context, o options) error {
	var err error
	// The writer: one connection, BEGIN IMMEDIATE so a transaction takes the write lock up
	// front. busy_timeout only matters when an outside tool holds the file. Its page cache
	// is 8 MB: at every commit SQLite truncates the cache to the database size, and when
	// pages past the end are cached it walks the cache's whole hash table. With 64 MB that
	// walk was 17% of all CPU in a drain; at 8 MB the drain is about a fifth faster, and a
	// drain behind 1,000,000 queued runs keeps about 90% of the empty-queue rate.
	s.wdb, err = sql.Open("sqlite", dsn(s.path,
		"_pragma=busy_timeout(10000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(FULL)",
		"_pragma=foreign_keys(1)",
		"_pragma=temp_store(MEMORY)",
		"_pragma=cache_size(-8192)",
		"_pragma=journal_size_limit(67108864)",
		"_pragma=analysis_limit(1000)",
		"_txlock=immediate",
	))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close()
		return fmt.Errorf("sqlite: migrate %s: %w", s.path, err)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA optimize=0x10002"); err != nil {
		conn.Close()
		return fmt.Errorf("sqlite: optimize %s: %w", s.path, err)
	}

	s.rdb, err = sql.Open("sqlite", dsn(s.path,
		"_pragma=busy_timeout(10000)",
		"_pragma=foreign_keys(1)",
		"_pragma=temp_store(MEMORY)",
		"_pragma=cache_size(-16384)",
		"_pragma=query_only(1)",
	))
	if err != nil {
		conn.Close()
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	s.rdb.SetMaxOpenConns(o.readConns)
	s.rdb.SetMaxIdleConns(o.readConns)
	s.rdb.SetConnMaxIdleTime(0)
	s.rdb.SetConnMaxLifetime(0)

	s.w = newWriter(conn, o.maxBatch)
	return nil
}

func dsn(path string, params ...string) string {
	// A plain file name followed by the driver's parameters: modernc strips the query
	// before opening the file.
	return path + "?" + strings.Join(params, "&")
}

// DatabaseName returns "sqlite".
func (s *Store) DatabaseName() string { return "sqlite" }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close stops the writer, closes the database and releases the process lock.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.closeAll() })
	return s.closeErr
}

func (s *Store) closeAll() error {
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.close())
	}
	s.rmu.Lock()
	for _, st := range s.rstmt {
		errs = append(errs, st.Close())
	}
	s.rstmt = nil
	s.rmu.Unlock()
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.lock != nil {
		errs = append(errs, syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN), s.lock.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, err)
	}
	return nil
}

// lockFile takes an exclusive flock on path+".lock" and writes our pid into it.
func lockFile(path string) (*os.File, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open lock file %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := "unknown"
			if b, rerr := os.ReadFile(name); rerr == nil {
				if n, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					pid = strconv.Itoa(n)
				}
			}
			return nil, fmt.Errorf("database %s is in use by another spool process (pid %s)", path, pid)
		}
		return nil, fmt.Errorf("sqlite: lock %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// readStmt returns a statement prepared on the read pool, preparing it on first use.
func (s *Store) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.rstmt == nil {
		return nil, errClosed
	}
	if st, ok := s.rstmt[query]; ok {
		return st, nil
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.rstmt[query] = st
	return st, nil
}

// queryRead runs a prepared read query.
func (s *Store) queryRead(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRowRead runs a prepared read query that returns one row.
func (s *Store) queryRowRead(ctx context.Context, query string, args ...any) scanner {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		return errScanner{err}
	}
	return st.QueryRowContext(ctx, args...)
}

var errClosed = errors.New("sqlite: store is closed")
