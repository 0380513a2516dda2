package queue_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// crashChild runs the engine in a child process for TestCrashRecovery when asked by the
// environment: it submits runs, reports their ids on stdout once two are running, and
// waits to be killed. It reports whether it ran.
func crashChild() bool {
	db := os.Getenv("SPOOL_CRASH_CHILD_DB")
	if db == "" {
		return false
	}
	started := make(chan string, 10)
	hang := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		started <- r.ID
		<-ctx.Done()
		return nil, ctx.Err()
	})
	e, err := queue.New(queue.Config{DB: db, Limits: spool.Limits{Global: 2}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e.Register("hang", hang)
	if err := e.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var ids []string
	for i := 0; i < 6; i++ {
		r, _, err := e.Submit(context.Background(), &spool.SubmitRequest{Recipe: "hang", MaxRetries: intp(i % 2)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ids = append(ids, r.ID)
	}
	<-started
	<-started
	out, _ := json.Marshal(ids)
	fmt.Println(string(out))
	select {} // wait for SIGKILL
}

func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "spool.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_CRASH_CHILD_DB="+db)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("child: %v", err)
	}
	var ids []string
	if err := json.Unmarshal([]byte(line), &ids); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// Restart on the same file: every run exists, none is stuck running, and runs cut off
	// mid-execution are re-queued with retries left, else failed as interrupted.
	e, err := queue.New(queue.Config{DB: db, Limits: spool.Limits{Global: 2}})
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]*spool.Run{}
	for _, id := range ids {
		// Read before Start, straight from the database the child left.
		r, err := e.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("run %s lost: %v", id, err)
		}
		before[id] = r
	}
	e.Register("hang", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) { return "ok", nil }))
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Stop(ctx)
	}()
	running := 0
	for _, id := range ids {
		r := wait(t, e, id)
		b := before[id]
		switch {
		case b.State == spool.StateRunning && b.MaxRetries == 0:
			running++
			if r.State != spool.StateFailed || r.ErrorCode != spool.CodeInterrupted || r.Attempt != 1 {
				t.Errorf("run %s cut off without retries: %s/%s attempt %d, want failed/interrupted", id, r.State, r.ErrorCode, r.Attempt)
			}
		case b.State == spool.StateRunning:
			running++
			if r.State != spool.StateSucceeded || r.Attempt != 2 {
				t.Errorf("run %s cut off with a retry left: %s attempt %d, want succeeded on attempt 2", id, r.State, r.Attempt)
			}
		case b.State == spool.StateQueued:
			if r.State != spool.StateSucceeded || r.Attempt != 1 {
				t.Errorf("queued run %s: %s attempt %d, want succeeded on attempt 1", id, r.State, r.Attempt)
			}
		default:
			t.Errorf("run %s was %s at the crash", id, b.State)
		}
	}
	if running != 2 {
		t.Errorf("%d runs were running at the crash, want 2", running)
	}
}
