package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations returns the driver's migrations in version order.
func migrations() ([]store.Migration, error) { return store.ReadMigrations(migrationFS) }

// migrate applies the migrations that schema_migrations does not list, all in one
// transaction holding an advisory lock of the schema, so that nodes starting together apply
// each migration exactly once: the others wait for the lock and then find nothing to do.
func (s *Store) migrate(ctx context.Context, createSchema bool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("migrate", s.schema)); err != nil {
			return err
		}
		if createSchema {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.schema}.Sanitize()); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		done := map[int]bool{}
		latest := 0
		for _, v := range applied {
			done[int(v)] = true
			latest = max(latest, int(v))
		}
		for _, m := range ms {
			if done[m.Version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return err
			}
		}
		if known := ms[len(ms)-1].Version; latest > known {
			return fmt.Errorf("the database has schema version %d, newer than this binary knows (%d); upgrade spool", latest, known)
		}
		return nil
	})
}
