package queue

import (
	"context"
	"errors"

	"github.com/spool-run/spool/internal/store"
)

func openStore(ctx context.Context, db string) (store.Store, error) { return nil, errors.New("todo") }
