package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// modelRun is what the claim model knows of a run.
type modelRun struct {
	id        string
	seq       int64
	priority  spool.Priority
	agent     string
	workspace string
	session   string
	state     spool.State
}

// modelClaim is the claim rule written plainly: walk queued runs by priority then submit
// order and take each one whose agent, workspace and the whole node have room, whose session
// has no running run and no earlier queued run, up to max.
func modelClaim(runs []*modelRun, lim spool.Limits, max int) []*modelRun {
	running := 0
	byAgent, byWS := map[string]int{}, map[string]int{}
	busy := map[string]bool{}
	for _, r := range runs {
		if r.state == spool.StateRunning {
			running++
			byAgent[r.agent]++
			byWS[r.workspace]++
			if r.session != "" {
				busy[r.workspace+"/"+r.session] = true
			}
		}
	}
	queued := slices.DeleteFunc(slices.Clone(runs), func(r *modelRun) bool { return r.state != spool.StateQueued })
	slices.SortFunc(queued, func(a, b *modelRun) int {
		if a.priority != b.priority {
			return int(b.priority) - int(a.priority)
		}
		return int(a.seq - b.seq)
	})
	agentLimit := func(a string) int {
		if n := lim.Agents[a]; n > 0 {
			return n
		}
		return lim.PerAgent
	}
	var out []*modelRun
	for _, r := range queued {
		if len(out) == max || (lim.Global > 0 && running >= lim.Global) {
			break
		}
		if l := agentLimit(r.agent); l > 0 && byAgent[r.agent] >= l {
			continue
		}
		if lim.PerWorkspace > 0 && byWS[r.workspace] >= lim.PerWorkspace {
			continue
		}
		key := r.workspace + "/" + r.session
		if r.session != "" {
			if busy[key] {
				continue
			}
			earlier := slices.ContainsFunc(runs, func(e *modelRun) bool {
				return e.state == spool.StateQueued && e.workspace == r.workspace && e.session == r.session && e.seq < r.seq
			})
			if earlier {
				continue
			}
			busy[key] = true
		}
		running++
		byAgent[r.agent]++
		byWS[r.workspace]++
		out = append(out, r)
	}
	return out
}

// testClaimMatchesModel claims again and again from a random queue under random limits and
// checks every claim against modelClaim, behind a large backlog of a full agent and without.
func testClaimMatchesModel(t *testing.T, f *fixture) {
	for _, backlog := range []int{0, 2500} {
		for seed := range uint64(2) {
			t.Run(fmt.Sprintf("backlog%d/seed%d", backlog, seed), func(t *testing.T) {
				claimModelRound(t, f.fresh(t), backlog, seed)
			})
		}
	}
}

func claimModelRound(t *testing.T, f *fixture, backlog int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(backlog)))
	const ws = "m"
	var runs []*modelRun
	byID := map[string]*modelRun{}
	add := func(ps []*store.RunInsertParams) {
		t.Helper()
		got, err := f.s.RunInsertMany(f.ctx, ps)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range got {
			m := &modelRun{id: r.ID, seq: r.Seq, priority: ps[i].Priority, agent: ps[i].Agent,
				workspace: ps[i].Workspace, session: ps[i].SessionID, state: spool.StateQueued}
			runs = append(runs, m)
			byID[m.id] = m
		}
	}
	lim := spool.Limits{
		Global:       []int{0, 40}[rng.IntN(2)],
		PerAgent:     []int{0, 3 + rng.IntN(12)}[rng.IntN(2)],
		PerWorkspace: []int{0, 25}[rng.IntN(2)],
		Agents:       map[string]int{ws + "-a1": 20, ws + "-full": 1},
	}
	if backlog > 0 {
		// One run of the full agent runs; its backlog waits, urgent.
		add([]*store.RunInsertParams{f.params(withAgent(ws+"-full"), withWorkspace(ws+"-w0"))})
		byID[f.claimOne().ID].state = spool.StateRunning
		var ps []*store.RunInsertParams
		for range backlog {
			ps = append(ps, f.params(withAgent(ws+"-full"), withWorkspace(ws+"-w0"), withPriority(spool.PriorityUrgent)))
		}
		add(ps)
	}
	newRuns := func(n int) {
		var ps []*store.RunInsertParams
		for range n {
			session := ""
			if rng.IntN(3) == 0 {
				session = fmt.Sprint("s", rng.IntN(4))
			}
			agent, wsi, prio := rng.IntN(4), rng.IntN(2), spool.Priority(rng.IntN(4))
			if agent == 0 && wsi == 0 && rng.IntN(5) > 0 {
				prio = spool.PriorityUrgent // one group leads the queue by far
			}
			ps = append(ps, f.params(
				withAgent(fmt.Sprint(ws, "-a", agent)),
				withWorkspace(fmt.Sprint(ws, "-w", wsi)),
				withPriority(prio),
				withSession(session)))
		}
		add(ps)
	}
	newRuns(300)
	for round := range 20 {
		max := 1 + rng.IntN(40)
		var wantIDs []string
		for _, m := range modelClaim(runs, lim, max) {
			wantIDs = append(wantIDs, m.id)
		}
		got := f.claim(claimMax(max), claimLimits(lim))
		equalIDs(t, fmt.Sprintf("round %d, max %d, limits %+v", round, max, lim), claimedIDs(got), wantIDs)
		for _, c := range got {
			byID[c.ID].state = spool.StateRunning
		}
		// Finish about half of the running runs (never the full agent's), in one call.
		var done []*store.RunFinishParams
		for _, r := range runs {
			if r.state == spool.StateRunning && r.agent != ws+"-full" && rng.IntN(2) == 0 {
				done = append(done, &store.RunFinishParams{ID: r.id, Node: node, Attempt: 1, State: spool.StateSucceeded, Now: f.now})
				r.state = spool.StateSucceeded
			}
		}
		for i, r := range f.finish(nil, done...) {
			if r == nil {
				t.Fatalf("finish of %s: guard did not hold", done[i].ID)
			}
		}
		if round%5 == 4 {
			newRuns(50)
		}
	}
}
