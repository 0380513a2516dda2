package postgres_test

import (
	"context"
	"testing"

	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/internal/store/storetest"
)

// TestConformance runs the store conformance suite, each subtest on its own schema.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(context.Background(), t, func(t *testing.T) store.Store { return newStore(t) })
}
