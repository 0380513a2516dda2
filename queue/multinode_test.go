package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store/postgres/pgtest"
	"github.com/spool-run/spool/queue"
)

const (
	multiRuns     = 2000
	multiNodes    = 3
	multiPerAgent = 4
	multiAgents   = 5
	multiSessions = 50
)

// multiNodeChild runs one node of TestMultiNodeCluster when the environment asks: it submits
// its share of the runs, says so on stdout, and works runs until SIGTERM.
func multiNodeChild() bool {
	db := os.Getenv("SPOOL_MULTI_DB")
	if db == "" {
		return false
	}
	node := os.Getenv("SPOOL_MULTI_NODE")
	idx, _ := strconv.Atoi(node[len(node)-1:])
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
	e, err := queue.New(queue.Config{DB: db, Node: node,
		Limits: spool.Limits{Global: 30, PerAgent: multiPerAgent},
		Lease:  time.Second, Heartbeat: 250 * time.Millisecond, PollInterval: 200 * time.Millisecond,
		MaxQueueSize: -1,
	})
	if err != nil {
		fail(err)
	}
	e.Register("work", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		var id int64
		if err := pool.QueryRow(ctx, `INSERT INTO handler_log (run_id, node, agent, session_id, attempt, started_at)
			VALUES ($1, $2, $3, $4, $5, clock_timestamp()) RETURNING id`,
			r.ID, node, r.Agent, r.SessionID, r.Attempt).Scan(&id); err != nil {
			return nil, err
		}
		// The node the test kills holds every run it starts until then, so that it surely
		// holds some when killed: with runs of a few milliseconds, a loaded machine could
		// let them all end between the test's check and the kill.
		work := time.After(time.Duration(2+rand.IntN(10)) * time.Millisecond)
		if node == "node0" {
			work = nil
		}
		select {
		case <-work:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if _, err := pool.Exec(context.WithoutCancel(ctx), `UPDATE handler_log SET ended_at = clock_timestamp() WHERE id = $1`, id); err != nil {
			return nil, err
		}
		return nil, nil
	}))
	if err := e.Start(ctx); err != nil {
		fail(err)
	}
	var reqs []*spool.SubmitRequest
	for i := idx; i < multiRuns; i += multiNodes {
		req := &spool.SubmitRequest{Recipe: "work", Agent: fmt.Sprintf("a%d", i%multiAgents), MaxRetries: intp(3)}
		if i%2 == 0 {
			req.SessionID = fmt.Sprintf("s%d", i%multiSessions)
		}
		reqs = append(reqs, req)
	}
	for len(reqs) > 0 {
		n := min(len(reqs), 50)
		if _, err := e.SubmitMany(ctx, reqs[:n]); err != nil {
			fail(err)
		}
		reqs = reqs[n:]
	}
	fmt.Println("submitted")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(sctx); err != nil {
		fail(err)
	}
	pool.Close()
	return true
}

func TestMultiNodeCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-process cluster test skipped in -short mode")
	}
	db, _ := pgtest.Schema(t)
	ctx := context.Background()
	// Create the schema's tables before the nodes start, then the handlers' log.
	e, err := queue.New(queue.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE handler_log (id bigserial PRIMARY KEY, run_id text NOT NULL,
		node text NOT NULL, agent text NOT NULL, session_id text NOT NULL, attempt int NOT NULL,
		started_at timestamptz NOT NULL, ended_at timestamptz)`); err != nil {
		t.Fatal(err)
	}

	nodes := make([]*exec.Cmd, multiNodes)
	for i := range nodes {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SPOOL_MULTI_DB="+db, fmt.Sprintf("SPOOL_MULTI_NODE=node%d", i))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "submitted\n" {
			t.Fatalf("node %d: %q %v", i, line, err)
		}
		nodes[i] = cmd
	}

	// Kill node 0 while it holds runs.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM handler_log WHERE node = 'node0' AND ended_at IS NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node0 never held a run")
		}
	}
	if err := nodes[0].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nodes[0].Wait()
	var killedAt time.Time
	if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&killedAt); err != nil {
		t.Fatal(err)
	}

	// Every run ends, rescued by the lease rule where node0 held it.
	deadline = time.Now().Add(120 * time.Second)
	for {
		var active, total int
		if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state NOT IN ('succeeded','failed','cancelled')), count(*) FROM runs`).Scan(&active, &total); err != nil {
			t.Fatal(err)
		}
		if total != multiRuns {
			t.Fatalf("%d runs stored, want %d", total, multiRuns)
		}
		if active == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs still active", active)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var notSucceeded int
	conn.QueryRow(ctx, `SELECT count(*) FROM runs WHERE state <> 'succeeded'`).Scan(&notSucceeded)
	if notSucceeded != 0 {
		t.Errorf("%d runs did not succeed", notSucceeded)
	}

	// Killed node's runs were rescued: re-run on another node with a later attempt.
	var cut, rescued int
	if err := conn.QueryRow(ctx, `SELECT count(DISTINCT k.run_id),
		count(DISTINCT k.run_id) FILTER (WHERE EXISTS (SELECT 1 FROM handler_log o WHERE o.run_id = k.run_id
			AND o.node <> 'node0' AND o.attempt > k.attempt AND o.ended_at IS NOT NULL))
		FROM handler_log k WHERE k.node = 'node0' AND k.ended_at IS NULL`).Scan(&cut, &rescued); err != nil {
		t.Fatal(err)
	}
	if cut == 0 || rescued != cut {
		t.Errorf("node0 was cut off in %d runs; %d were rescued and re-run", cut, rescued)
	}

	// No limit was exceeded and no run ran twice at once. A killed handler's interval ends
	// at the kill.
	check := func(name, group string, limit int) {
		t.Helper()
		var worst int
		var key string
		err := conn.QueryRow(ctx, `WITH iv AS (
				SELECT `+group+` AS g, started_at AS s, coalesce(ended_at, $1) AS e FROM handler_log
			), pts AS (
				SELECT g, s AS t, 1 AS d FROM iv UNION ALL SELECT g, e, -1 FROM iv
			), run AS (
				SELECT g, sum(d) OVER (PARTITION BY g ORDER BY t, d ROWS UNBOUNDED PRECEDING) AS c FROM pts
			)
			SELECT coalesce(max(c), 0), coalesce((array_agg(g ORDER BY c DESC))[1], '') FROM run WHERE g <> ''`,
			killedAt).Scan(&worst, &key)
		if err != nil {
			t.Fatal(err)
		}
		if worst > limit {
			t.Errorf("%s %q had %d handlers at once, limit %d", name, key, worst, limit)
		}
	}
	check("agent", "agent", multiPerAgent)
	check("session", "session_id", 1)
	check("run", "run_id", 1)
	check("cluster", "'all'", 30)

	for _, n := range nodes[1:] {
		n.Process.Signal(syscall.SIGTERM)
		if err := n.Wait(); err != nil {
			t.Errorf("node did not stop cleanly: %v", err)
		}
	}
}
