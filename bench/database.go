package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, for River
)

// Backend names.
const (
	sqliteBackend   = "sqlite"
	postgresBackend = "postgres"
)

// backend hands out fresh databases of one kind. Every repetition of every system gets an
// empty one: a new SQLite file, or a PostgreSQL schema dropped and created again.
type backend struct {
	kind  string
	dir   string        // SQLite: parent of the per-repetition directories
	url   string        // PostgreSQL: the server's URL
	admin *pgxpool.Pool // PostgreSQL: resets schemas, vacuums, checkpoints
	// waits samples pg_stat_activity during the work-rate drains (-pgwaits).
	waits bool
}

func newSQLiteBackend(dir string) (*backend, error) {
	d, err := os.MkdirTemp(dir, "spool-bench-")
	if err != nil {
		return nil, fmt.Errorf("creating the SQLite directory: %w", err)
	}
	if onTmpfs(d) {
		progress("bench: warning: %s is a tmpfs, where fsync is free; pass -dir on a disk for real SQLite figures", dir)
	}
	return &backend{kind: sqliteBackend, dir: d}, nil
}

// newPostgresBackend connects to the server at rawURL and checks that it answers.
func newPostgresBackend(ctx context.Context, rawURL string) (*backend, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing the PostgreSQL URL: %w", err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", redact(rawURL), err)
	}
	return &backend{kind: postgresBackend, url: rawURL, admin: pool}, nil
}

func (b *backend) close() {
	if b.admin != nil {
		// Leave no bench schema behind in a shared database.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, s := range []string{"bench_spool", "bench_river"} {
			_, _ = b.admin.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{s}.Sanitize()+` CASCADE`)
		}
		b.admin.Close()
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// database is one fresh database for one repetition of one system.
type database struct {
	b      *backend
	path   string // SQLite file
	schema string // PostgreSQL schema
}

// fresh returns an empty database for the system called owner ("spool" or "river").
func (b *backend) fresh(ctx context.Context, owner string) (*database, error) {
	if b.kind == sqliteBackend {
		dir, err := os.MkdirTemp(b.dir, owner+"-")
		if err != nil {
			return nil, err
		}
		return &database{b: b, path: filepath.Join(dir, owner+".db")}, nil
	}
	schema := "bench_" + owner
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := b.admin.Exec(ctx, `DROP SCHEMA IF EXISTS `+q+` CASCADE`); err != nil {
		return nil, fmt.Errorf("dropping schema %s: %w", schema, err)
	}
	if _, err := b.admin.Exec(ctx, `CREATE SCHEMA `+q); err != nil {
		return nil, fmt.Errorf("creating schema %s: %w", schema, err)
	}
	return &database{b: b, schema: schema}, nil
}

// spoolDB is what queue.Config.DB takes: the file, or the URL with the schema as search_path.
func (d *database) spoolDB() string {
	if d.path != "" {
		return d.path
	}
	u, err := url.Parse(d.b.url)
	if err != nil {
		return d.b.url // checked when the backend was created
	}
	q := u.Query()
	q.Set("search_path", d.schema)
	q.Set("application_name", spoolAppName)
	u.RawQuery = q.Encode()
	return u.String()
}

// settle is run once the system has created its tables and before anything is measured:
// on PostgreSQL VACUUM ANALYZE of the schema's tables and a CHECKPOINT (docs/benchmarks.md);
// SQLite files are new and need nothing.
func (d *database) settle(ctx context.Context) error {
	if d.schema == "" {
		return nil
	}
	rows, err := d.b.admin.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1`, d.schema)
	if err != nil {
		return fmt.Errorf("listing tables of %s: %w", d.schema, err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("listing tables of %s: %w", d.schema, err)
	}
	for _, t := range tables {
		if _, err := d.b.admin.Exec(ctx, `VACUUM ANALYZE `+pgx.Identifier{d.schema, t}.Sanitize()); err != nil {
			return fmt.Errorf("vacuuming %s.%s: %w", d.schema, t, err)
		}
	}
	if _, err := d.b.admin.Exec(ctx, `CHECKPOINT`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// drop removes the database (the SQLite directory; a PostgreSQL schema is dropped by the
// next fresh or by close).
func (d *database) drop() {
	if d.path != "" {
		_ = os.RemoveAll(filepath.Dir(d.path))
	}
}

// openRiverSQLite opens a SQLite file the way docs/benchmarks.md configures River: WAL,
// synchronous=FULL, a 5 s busy timeout and a single connection.
func openRiverSQLite(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	var sync int
	if err := db.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if sync != 2 {
		db.Close()
		return nil, errors.New("River's SQLite did not get synchronous=FULL")
	}
	return db, nil
}

// redact hides a password in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
