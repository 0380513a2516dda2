package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/internal/store/postgres/pgtest"
)

// blockedAgents returns rates that block n agents (one run an hour, and the token spent)
// and the held agents' names.
func blockedRates(n int) (map[string]store.Rate, []string) {
	rates := map[string]store.Rate{}
	var names []string
	for i := range n {
		name := fmt.Sprintf("limited%02d", i)
		rates[store.RateKey(store.RateAgent, name)] = store.Rate{Limit: 1, Per: time.Hour}
		names = append(names, name)
	}
	return rates, names
}

// Behind the urgent backlogs of many rate-limited agents, a claim reads the heads of the
// other groups (the node's list of queued groups): it starts their runs in claim order,
// sees a group this node submitted to at once, and a group another node submitted to once
// the list is read again.
func TestClaimBehindManyBlockedGroups(t *testing.T) {
	t.Parallel()
	u, _ := pgtest.Schema(t)
	a, b := openStore(t, u), openStore(t, u)
	ctx := context.Background()
	const agents = 20
	rates, limited := blockedRates(agents)
	urgent := spool.PriorityUrgent
	var ps []*store.RunInsertParams
	for i := range agents * 5 {
		ps = append(ps, params(fmt.Sprintf("run_lim_%03d", i), func(p *store.RunInsertParams) {
			p.Agent, p.Priority = limited[i%agents], urgent
		}))
	}
	if _, err := a.RunInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	claim := func(max int) []*store.ClaimedRun {
		t.Helper()
		crs, err := a.RunClaim(ctx, &store.RunClaimParams{Node: "n1", Now: t0.Add(time.Second),
			LeaseUntil: t0.Add(time.Hour), Max: max, Rates: rates})
		if err != nil {
			t.Fatal(err)
		}
		return crs
	}
	// Each limited agent spends its token on its first run.
	if got := len(claim(1000)); got != agents {
		t.Fatalf("first claim started %d runs, want one per limited agent (%d)", got, agents)
	}

	// Two open groups, with runs of mixed priority: they start in claim order.
	ps = nil
	for i := range 6 {
		ps = append(ps, params(fmt.Sprintf("run_open_%03d", i), func(p *store.RunInsertParams) {
			p.Agent = []string{"alpha", "beta"}[i%2]
			p.Priority = spool.Priority(i % 3)
		}))
	}
	if _, err := a.RunInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	crs := claim(4)
	var got []string
	for _, cr := range crs {
		got = append(got, cr.ID)
	}
	want := []string{"run_open_002", "run_open_005", "run_open_001", "run_open_004"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claimed %v, want %v (claim order across the open groups)", got, want)
	}

	// A group this node submitted to is read by the very next claim.
	insert(t, a, params("run_local_new", func(p *store.RunInsertParams) { p.Agent = "gamma" }))
	found := false
	for _, cr := range claim(10) {
		found = found || cr.ID == "run_local_new"
	}
	if !found {
		t.Fatal("a run of a group this node just submitted to did not start")
	}

	// A group another node submitted to is read once the list is taken again.
	insert(t, b, params("run_remote_new", func(p *store.RunInsertParams) { p.Agent = "delta" }))
	deadline := time.Now().Add(5 * time.Second)
	for {
		crs := claim(10)
		if len(crs) == 1 && crs[0].ID == "run_remote_new" {
			break
		}
		if len(crs) > 0 {
			t.Fatalf("claimed %d runs (first %s), want only run_remote_new", len(crs), crs[0].ID)
		}
		if time.Now().After(deadline) {
			t.Fatal("a run another node submitted to a new group never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The limited agents' backlogs are still waiting.
	if crs := claim(1000); len(crs) != 0 {
		t.Fatalf("claimed %d more runs, want none (only rate-limited runs are left)", len(crs))
	}
}

// A node keeps its copy of the buckets between claims only while no node wrote them: tokens
// another node took, and holds it stored, count at this node's next claim.
func TestClaimSeesOtherNodesBuckets(t *testing.T) {
	t.Parallel()
	u, _ := pgtest.Schema(t)
	a, b := openStore(t, u), openStore(t, u)
	ctx := context.Background()
	rates := map[string]store.Rate{store.RateKey(store.RateAgent, "x"): {Limit: 3, Per: time.Hour, Burst: 3}}
	var ps []*store.RunInsertParams
	for i := range 10 {
		ps = append(ps, params(fmt.Sprintf("run_x_%02d", i), func(p *store.RunInsertParams) { p.Agent = "x" }))
		ps = append(ps, params(fmt.Sprintf("run_y_%02d", i), func(p *store.RunInsertParams) { p.Agent = "y" }))
	}
	if _, err := a.RunInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	// Agent x may start 3 runs an hour, whichever node starts them.
	xs := func(s store.Store, max int) int {
		t.Helper()
		crs, err := s.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: t0.Add(time.Second),
			LeaseUntil: t0.Add(time.Hour), Max: max, Rates: rates, HeldAgents: []string{"y"}})
		if err != nil {
			t.Fatal(err)
		}
		return len(crs)
	}
	if n := xs(a, 2); n != 2 {
		t.Fatalf("node a started %d runs of x, want 2", n)
	}
	if n := xs(b, 10); n != 1 {
		t.Fatalf("node b started %d runs of x, want the 1 token left", n)
	}
	if n := xs(a, 10); n != 0 {
		t.Fatalf("node a started %d more runs of x after node b took the last token, want 0", n)
	}
	// A hold node b stores stops node a's claims of that agent.
	if err := b.RateHold(ctx, store.RateKey(store.RateAgent, "y"), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	crs, err := a.RunClaim(ctx, &store.RunClaimParams{Node: "n", Now: t0.Add(time.Second),
		LeaseUntil: t0.Add(time.Hour), Max: 10, Rates: rates})
	if err != nil {
		t.Fatal(err)
	}
	if len(crs) != 0 {
		t.Fatalf("node a started %d runs (first of agent %s) while y is held and x has no token", len(crs), crs[0].Agent)
	}
}
