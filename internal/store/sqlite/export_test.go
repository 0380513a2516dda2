package sqlite

import "context"

// AppliedMigrations lists the versions recorded in schema_migrations.
func AppliedMigrations(ctx context.Context, s *Store) ([]int, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

// ExecWrite runs a statement in a write transaction.
func ExecWrite(ctx context.Context, s *Store, query string, args ...any) error {
	return s.write(ctx, func(tx *wtx) error {
		tx.w.cache.reset() // the statement may change what the cache holds
		_, err := tx.exec(query, args...)
		return err
	})
}
