package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store/postgres/pgtest"
	"github.com/spool-run/spool/queue"
)

// scheduleChild runs one node of TestScheduleExactlyOncePerTick when the environment asks:
// it works runs of recipe "tick", logging each execution, until SIGTERM.
func scheduleChild() bool {
	db := os.Getenv("SPOOL_SCHED_DB")
	if db == "" {
		return false
	}
	node := os.Getenv("SPOOL_SCHED_NODE")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, node+":", err)
		os.Exit(1)
	}
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		fail(err)
	}
	e, err := queue.New(queue.Config{DB: db, Node: node, Lease: time.Second, Heartbeat: 250 * time.Millisecond,
		PollInterval: 200 * time.Millisecond})
	if err != nil {
		fail(err)
	}
	e.Register("tick", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		_, err := pool.Exec(ctx, `INSERT INTO tick_log (run_id, node, scheduled_for, started_at)
			VALUES ($1, $2, $3, clock_timestamp())`, r.ID, node, r.ScheduledFor)
		return nil, err
	}))
	if err := e.Start(ctx); err != nil {
		fail(err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(sctx); err != nil {
		fail(err)
	}
	pool.Close()
	return true
}

// TestScheduleExactlyOncePerTick runs three nodes on one PostgreSQL schema with a schedule
// firing every second, kills one of them after a few ticks, and checks that every tick
// started exactly one run, on time, with none missing.
func TestScheduleExactlyOncePerTick(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-time multi-process schedule test skipped in -short mode")
	}
	db, _ := pgtest.Schema(t)
	ctx := context.Background()
	setup, err := queue.New(queue.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	setup.Register("tick", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) { return nil, nil }))
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE tick_log (run_id text NOT NULL, node text NOT NULL,
		scheduled_for timestamptz NOT NULL, started_at timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}

	nodes := make([]*exec.Cmd, 3)
	for i := range nodes {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SPOOL_SCHED_DB="+db, fmt.Sprintf("SPOOL_SCHED_NODE=node%d", i))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("node %d: %q %v", i, line, err)
		}
		nodes[i] = cmd
	}

	// A retry lets the run that node0 holds when it dies be re-run elsewhere (the lease rule).
	sc, err := setup.CreateSchedule(ctx, &queue.ScheduleRequest{Name: "every-second", Recipe: "tick",
		Cron: "* * * * * *", Catchup: "all", MaxRetries: intp(2)})
	if err != nil {
		t.Fatal(err)
	}
	if err := setup.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	first := *sc.NextAt
	const tickCount = 10

	ticksSeen := func() int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM runs WHERE schedule_id = $1`, sc.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for ticksSeen() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d ticks fired in 30s", ticksSeen())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := nodes[0].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nodes[0].Wait()
	for ticksSeen() < tickCount {
		if time.Now().After(deadline) {
			t.Fatalf("only %d ticks fired in 30s", ticksSeen())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, `UPDATE schedules SET paused = true WHERE id = $1`, sc.ID); err != nil {
		t.Fatal(err)
	}

	// Every run ends (a run node0 held when it died is rescued by the lease rule).
	deadline = time.Now().Add(30 * time.Second)
	for {
		var active int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM runs WHERE schedule_id = $1 AND state NOT IN ('succeeded', 'failed', 'cancelled')`, sc.ID).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if active == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs still active", active)
		}
		time.Sleep(50 * time.Millisecond)
	}

	rows, err := conn.Query(ctx, `SELECT scheduled_for, created_at, state,
		(SELECT count(*) FROM tick_log l WHERE l.run_id = r.id)
		FROM runs r WHERE schedule_id = $1 ORDER BY scheduled_for`, sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var (
			tick, created time.Time
			state         string
			executions    int
		)
		if err := rows.Scan(&tick, &created, &state, &executions); err != nil {
			t.Fatal(err)
		}
		if want := first.Add(time.Duration(i) * time.Second); !tick.Equal(want) {
			t.Fatalf("run %d is for tick %s, want %s: a tick is missing or doubled", i, tick.UTC(), want)
		}
		if late := created.Sub(tick); late < 0 || late > 3*time.Second {
			t.Errorf("tick %s started its run %s after it", tick.UTC(), late)
		}
		if state != "succeeded" || executions < 1 {
			t.Errorf("tick %s: run %s after %d executions", tick.UTC(), state, executions)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i < tickCount {
		t.Errorf("%d ticks started runs, want at least %d", i, tickCount)
	}

	for _, n := range nodes[1:] {
		n.Process.Signal(syscall.SIGTERM)
		if err := n.Wait(); err != nil {
			t.Errorf("node did not stop cleanly: %v", err)
		}
	}
}
