// Package pgtest gives tests a real PostgreSQL database: [URL] finds the server, [Schema]
// makes a fresh schema per test so tests run in parallel without seeing each other.
//
// The server's URL comes from SPOOL_TEST_POSTGRES_URL, by default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. When no server answers, tests are
// skipped, unless CI=true: then they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server used when SPOOL_TEST_POSTGRES_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var (
	probeOnce sync.Once
	probeErr  error
)

// URL returns the test server's URL, after checking once per process that it answers. It
// skips the test when the server is unreachable, or fails it when CI=true.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("SPOOL_TEST_POSTGRES_URL")
	if u == "" {
		u = DefaultURL
	}
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			probeErr = err
			return
		}
		defer conn.Close(ctx)
		probeErr = conn.Ping(ctx)
	})
	if probeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is unreachable (CI=true, so this fails): %v", u, probeErr)
		}
		t.Skipf("PostgreSQL at %s is unreachable; set SPOOL_TEST_POSTGRES_URL to run this test: %v", u, probeErr)
	}
	return u
}

// Schema creates a schema spool_test_<random> that is dropped (with everything in it) when
// the test ends, and returns the server's URL with search_path set to it, and its name.
// Open a store on the returned URL, or on URL(t) with the schema as an option.
func Schema(t testing.TB) (schemaURL, schema string) {
	t.Helper()
	base := URL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema = "spool_test_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(t, base, schema), schema
}

// WithSearchPath returns u with its search_path set to schema. It works for postgres:// URLs
// (pgx sends unknown query parameters as run-time parameters).
func WithSearchPath(t testing.TB, u, schema string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "postgres" && parsed.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s is not a postgres:// URL (%v)", u, err)
	}
	q := parsed.Query()
	q.Set("search_path", schema)
	parsed.RawQuery = q.Encode()
	return fmt.Sprint(parsed)
}
