package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/internal/store/sqlite"
	"github.com/spool-run/spool/internal/store/storetest"
)

func TestMain(m *testing.M) {
	if path := os.Getenv("SPOOL_SQLITE_TEST_CHILD"); path != "" {
		childMain(path)
		return
	}
	code := m.Run()
	sqlite.CloseLarge()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// openTemp opens a fresh database in t.TempDir() and closes it at the end of the test.
func openTemp(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "spool.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Exercise(context.Background(), t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestOpenLocked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "x.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	_, err = sqlite.Open(ctx, path)
	want := fmt.Sprintf("database %s is in use by another spool process (pid %d)", path, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("second Open: %v\nwant error %q", err, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Released on Close.
	s2, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// childMain is the other process of TestOtherProcess: it opens the database, stores a run,
// says so, and waits to be killed.
func childMain(path string) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	if _, _, err := s.RunInsert(ctx, &store.RunInsertParams{ID: "run_child", Recipe: "r", Agent: "r", Workspace: "default", CreatedAt: time.Now()}); err != nil {
		fmt.Println("insert:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // until killed
	os.Exit(0)
}

// TestOtherProcess checks the lock against a real second process, and that a run accepted
// by a process killed with SIGKILL is there when the database is opened again.
func TestOtherProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_SQLITE_TEST_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe() // kept open: the child waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child said %q, %v", line, err)
	}

	_, err = sqlite.Open(ctx, path)
	want := fmt.Sprintf("database %s is in use by another spool process (pid %d)", path, cmd.Process.Pid)
	if err == nil || err.Error() != want {
		t.Fatalf("Open while the child holds the database: %v\nwant %q", err, want)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after the child died: %v", err)
	}
	defer s.Close()
	r, err := s.RunGet(ctx, "run_child")
	if err != nil || r.State != spool.StateQueued {
		t.Fatalf("the child's run after SIGKILL: %v, %v", r, err)
	}
}

func TestOpenRefusesNonFilePaths(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := sqlite.Open(context.Background(), p); err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", p)
		}
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := s.RunInsert(ctx, &store.RunInsertParams{ID: "run_keep", Recipe: "r", Agent: "r", Workspace: "default", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s, err = sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		got, err := s.RunGet(ctx, r.ID)
		if err != nil || got.ID != r.ID {
			t.Fatalf("run after reopen: %v, %v", got, err)
		}
		versions, err := sqlite.AppliedMigrations(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(versions) == 0 || versions[0] != 1 {
			t.Fatalf("applied migrations %v", versions)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlite.ExecWrite(ctx, s, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer spool succeeded")
	}
	if !strings.Contains(err.Error(), "schema version 9999") {
		t.Fatalf("error %v, want it to name the schema version", err)
	}
	// The refused Open released the lock.
	f, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("lock still held after a refused Open: %v", err)
	}
}

// TestEventAutoSeq checks the SQLite extension: an event with Seq 0 gets the next number.
func TestEventAutoSeq(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTemp(t)
	r, _, err := s.RunInsert(ctx, &store.RunInsertParams{ID: "run_a", Recipe: "r", Agent: "r", Workspace: "default", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	evs := []*spool.Event{{RunID: r.ID, Type: spool.EventLog, Text: "a"}, {RunID: r.ID, Type: spool.EventLog, Text: "b"}}
	if err := s.EventAppend(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if evs[0].Seq != 2 || evs[1].Seq != 3 {
		t.Fatalf("seqs %d %d, want 2 3", evs[0].Seq, evs[1].Seq)
	}
	// A duplicate seq is ignored rather than failing the batch.
	dup := []*spool.Event{{RunID: r.ID, Seq: 3, Type: spool.EventLog, Text: "dup"}, {RunID: r.ID, Seq: 4, Type: spool.EventLog, Text: "c"}}
	if err := s.EventAppend(ctx, dup); err != nil {
		t.Fatal(err)
	}
	got, err := s.EventList(ctx, r.ID, 0, 0)
	if err != nil || len(got) != 4 || got[2].Text != "b" || got[3].Text != "c" {
		t.Fatalf("events %+v, %v", got, err)
	}
}

// TestGroupCommit checks that concurrent writes share transactions and that one failing
// write does not undo the others in its batch.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTemp(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			p := &store.RunInsertParams{ID: fmt.Sprintf("run_%03d", i), Recipe: "r", Agent: "r", Workspace: "default", CreatedAt: time.Now()}
			if i%10 == 0 {
				p.ID = "run_000" // duplicates of one id fail alone
			}
			_, _, errs[i] = s.RunInsert(ctx, p)
		})
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if !strings.Contains(err.Error(), "already exists") {
				t.Fatalf("insert %d: %v", i, err)
			}
		}
	}
	_, total, err := s.RunList(ctx, &spool.ListParams{WithTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	if failed != n/10-1 && failed != n/10 {
		t.Fatalf("%d inserts failed, want %d duplicates", failed, n/10-1)
	}
	if total != int64(n-failed) {
		t.Fatalf("%d runs stored with %d failures of %d", total, failed, n)
	}
}

func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "spool.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RunInsert(context.Background(), &store.RunInsertParams{ID: "run_x", Recipe: "r", Agent: "r", Workspace: "w"}); err == nil {
		t.Fatal("insert after Close succeeded")
	}
}
