package queue

import (
	"context"
	"strings"

	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/internal/store/postgres"
	"github.com/spool-run/spool/internal/store/sqlite"
)

// openStore opens a postgres:// URL with the PostgreSQL driver and anything else as a
// SQLite file.
func openStore(ctx context.Context, db string) (store.Store, error) {
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		return postgres.Open(ctx, db)
	}
	return sqlite.Open(ctx, strings.TrimPrefix(db, "sqlite://"))
}
