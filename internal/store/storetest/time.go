package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// Schedules, rate-limit buckets and holds (store.TimeStore), and the rate limits RunClaim
// applies. Listed in Exercise.

func (f *fixture) addSchedule(name string, mods ...func(*store.ScheduleUpsertParams)) *store.Schedule {
	f.t.Helper()
	p := &store.ScheduleUpsertParams{
		Schedule: store.Schedule{ID: "sch_" + ulid.Make().String(), Name: name, Workspace: "default", Recipe: "echo",
			Source: store.SourceAPI, Cron: "* * * * *", Catchup: "none", Overlap: "allow"},
		NextAt: f.now.Truncate(time.Minute).Add(time.Minute),
		Now:    f.now,
	}
	for _, m := range mods {
		m(p)
	}
	sc, created, err := f.s.ScheduleUpsert(f.ctx, p)
	if err != nil {
		f.t.Fatalf("ScheduleUpsert(%s): %v", name, err)
	}
	if !created {
		f.t.Fatalf("ScheduleUpsert(%s): created = false for a new schedule", name)
	}
	return sc
}

// tickRun is the insert of a schedule's run for tick.
func (f *fixture) tickRun(sc *store.Schedule, tick time.Time) *store.RunInsertParams {
	t := tick
	return &store.RunInsertParams{ID: newID(), Recipe: sc.Recipe, Agent: sc.Recipe, Workspace: sc.Workspace,
		Priority: spool.PriorityNormal, Input: json.RawMessage(`{}`), CreatedAt: f.now,
		ScheduleID: sc.ID, ScheduledFor: &t}
}

func (f *fixture) insertIn(agent, workspace, recipe string) *spool.Run {
	f.t.Helper()
	r, _, err := f.s.RunInsert(f.ctx, &store.RunInsertParams{ID: newID(), Recipe: recipe, Agent: agent,
		Workspace: workspace, Priority: spool.PriorityNormal, Input: json.RawMessage(`{}`), CreatedAt: f.now})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) claimRated(now time.Time, max int, rates map[string]store.Rate) ([]*store.ClaimedRun, time.Time) {
	f.t.Helper()
	var res store.ClaimResult
	got, err := f.s.RunClaim(f.ctx, &store.RunClaimParams{Node: node, Now: now, LeaseUntil: now.Add(time.Hour),
		Max: max, Rates: rates, Result: &res})
	if err != nil {
		f.t.Fatalf("RunClaim: %v", err)
	}
	return got, res.NextAt
}

func testScheduleUpsertGetList(t *testing.T, f *fixture) {
	prio := spool.PriorityHigh
	retries := 2
	sc := f.addSchedule("nightly", func(p *store.ScheduleUpsertParams) {
		p.Cron, p.Timezone, p.Catchup, p.Overlap = "30 2 * * *", "Europe/Berlin", "last", "skip"
		p.Input, p.Config = json.RawMessage(`{"q":1}`), json.RawMessage(`{"model":"m"}`)
		p.Metadata, p.Priority, p.Agent, p.TimeoutSec, p.MaxRetries = map[string]any{"team": "a"}, &prio, "bot", 60, &retries
	})
	got, err := f.s.ScheduleGet(f.ctx, "default", sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "nightly" || got.Cron != "30 2 * * *" || got.Timezone != "Europe/Berlin" || got.Catchup != "last" ||
		got.Overlap != "skip" || string(got.Input) != `{"q":1}` || string(got.Config) != `{"model":"m"}` ||
		got.Metadata["team"] != "a" || *got.Priority != prio || got.Agent != "bot" || got.TimeoutSec != 60 ||
		*got.MaxRetries != 2 || got.Paused || got.Source != store.SourceAPI || got.LastAt != nil ||
		!got.CreatedAt.Equal(f.now) || got.NextAt == nil {
		t.Fatalf("get = %+v", got)
	}
	// By name, in its workspace only.
	if byName, err := f.s.ScheduleGet(f.ctx, "default", "nightly"); err != nil || byName.ID != sc.ID {
		t.Fatalf("get by name: %v %v", byName, err)
	}
	_, err = f.s.ScheduleGet(f.ctx, "other", "nightly")
	wantCode(t, err, spool.CodeNotFound)
	_, err = f.s.ScheduleGet(f.ctx, "default", "sch_missing")
	wantCode(t, err, spool.CodeNotFound)

	// IfAbsent refuses an existing name; the same name in another workspace is another schedule.
	_, _, err = f.s.ScheduleUpsert(f.ctx, &store.ScheduleUpsertParams{Schedule: store.Schedule{ID: "sch_" + ulid.Make().String(),
		Name: "nightly", Workspace: "default", Recipe: "echo", Source: store.SourceAPI, Every: "1h", Catchup: "none", Overlap: "allow"},
		NextAt: f.now.Add(time.Hour), IfAbsent: true, Now: f.now})
	wantCode(t, err, spool.CodeConflict)
	f.addSchedule("nightly", func(p *store.ScheduleUpsertParams) { p.Workspace = "team" })
	f.addSchedule("a-first", func(p *store.ScheduleUpsertParams) { p.Source = store.SourceRecipe })

	all, err := f.s.ScheduleList(f.ctx, &store.ScheduleListParams{})
	if err != nil || len(all) != 3 || all[0].Name != "a-first" || all[1].Name != "nightly" || all[2].Workspace != "team" {
		t.Fatalf("list = %v %v", names(all), err)
	}
	recipes, err := f.s.ScheduleList(f.ctx, &store.ScheduleListParams{Source: store.SourceRecipe})
	if err != nil || len(recipes) != 1 || recipes[0].Name != "a-first" {
		t.Fatalf("list recipe schedules = %v %v", names(recipes), err)
	}
	team, err := f.s.ScheduleList(f.ctx, &store.ScheduleListParams{Workspace: "team"})
	if err != nil || len(team) != 1 {
		t.Fatalf("list team = %v %v", names(team), err)
	}
	// A schedule of another source cannot be replaced.
	_, _, err = f.s.ScheduleUpsert(f.ctx, &store.ScheduleUpsertParams{Schedule: store.Schedule{ID: "sch_" + ulid.Make().String(),
		Name: "a-first", Workspace: "default", Recipe: "echo", Source: store.SourceAPI, Every: "1h", Catchup: "none", Overlap: "allow"},
		NextAt: f.now.Add(time.Hour), Now: f.now})
	wantCode(t, err, spool.CodeConflict)
}

func names(scs []*store.Schedule) []string {
	out := make([]string, len(scs))
	for i, s := range scs {
		out[i] = s.Workspace + "/" + s.Name
	}
	return out
}

// Replacing a schedule keeps its id and its next tick unless its timing changed.
func testScheduleUpsertKeepsNextTick(t *testing.T, f *fixture) {
	sc := f.addSchedule("s", func(p *store.ScheduleUpsertParams) { p.Source = store.SourceRecipe })
	later := f.now.Add(time.Hour)
	replace := func(mod func(*store.ScheduleUpsertParams)) *store.Schedule {
		p := &store.ScheduleUpsertParams{Schedule: *sc, NextAt: f.now.Add(24 * time.Hour), Now: later}
		p.ID = "sch_" + ulid.Make().String()
		mod(p)
		got, created, err := f.s.ScheduleUpsert(f.ctx, p)
		if err != nil || created {
			t.Fatalf("replace: created %v, %v", created, err)
		}
		return got
	}
	got := replace(func(p *store.ScheduleUpsertParams) {})
	if got.ID != sc.ID || !got.NextAt.Equal(*sc.NextAt) || !got.UpdatedAt.Equal(sc.UpdatedAt) {
		t.Errorf("unchanged replace: id %s next %v updated %v", got.ID, got.NextAt, got.UpdatedAt)
	}
	got = replace(func(p *store.ScheduleUpsertParams) { p.Input = json.RawMessage(`{"v":2}`) })
	if !got.NextAt.Equal(*sc.NextAt) || !got.UpdatedAt.Equal(later) || string(got.Input) != `{"v":2}` {
		t.Errorf("input change: next %v updated %v input %s", got.NextAt, got.UpdatedAt, got.Input)
	}
	got = replace(func(p *store.ScheduleUpsertParams) { p.Cron = "0 * * * *" })
	if !got.NextAt.Equal(f.now.Add(24*time.Hour)) || got.Cron != "0 * * * *" {
		t.Errorf("timing change: next %v", got.NextAt)
	}
}

func testSchedulePauseResumeDelete(t *testing.T, f *fixture) {
	sc := f.addSchedule("s")
	p, err := f.s.ScheduleSetPaused(f.ctx, sc.ID, true, f.now.Add(time.Hour), f.now)
	if err != nil || !p.Paused || !p.NextAt.Equal(*sc.NextAt) {
		t.Fatalf("pause: %+v %v", p, err)
	}
	if due, err := f.s.ScheduleDue(f.ctx, f.now.Add(time.Hour), 10); err != nil || len(due) != 0 {
		t.Fatalf("a paused schedule is due: %v %v", names(due), err)
	}
	if _, ok, err := f.s.ScheduleNextWake(f.ctx); err != nil || ok {
		t.Fatalf("a paused schedule has a next wake: %v %v", ok, err)
	}
	resumeAt := f.now.Add(2 * time.Hour)
	r, err := f.s.ScheduleSetPaused(f.ctx, sc.ID, false, resumeAt, f.now)
	if err != nil || r.Paused || !r.NextAt.Equal(resumeAt) {
		t.Fatalf("resume: %+v %v", r, err)
	}
	// Resuming an active schedule changes nothing.
	if r, err := f.s.ScheduleSetPaused(f.ctx, sc.ID, false, f.now.Add(5*time.Hour), f.now); err != nil || !r.NextAt.Equal(resumeAt) {
		t.Fatalf("resume again: %+v %v", r, err)
	}
	_, err = f.s.ScheduleSetPaused(f.ctx, "sch_missing", true, f.now, f.now)
	wantCode(t, err, spool.CodeNotFound)
	if err := f.s.ScheduleDelete(f.ctx, sc.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.ScheduleGet(f.ctx, "default", sc.ID)
	wantCode(t, err, spool.CodeNotFound)
	wantCode(t, f.s.ScheduleDelete(f.ctx, sc.ID), spool.CodeNotFound)
}

func testScheduleDueAndNextWake(t *testing.T, f *fixture) {
	if _, ok, err := f.s.ScheduleNextWake(f.ctx); err != nil || ok {
		t.Fatalf("next wake without schedules: %v %v", ok, err)
	}
	a := f.addSchedule("a", func(p *store.ScheduleUpsertParams) { p.NextAt = f.now.Add(2 * time.Minute) })
	b := f.addSchedule("b", func(p *store.ScheduleUpsertParams) { p.NextAt = f.now.Add(time.Minute) })
	wake, ok, err := f.s.ScheduleNextWake(f.ctx)
	if err != nil || !ok || !wake.Equal(*b.NextAt) {
		t.Fatalf("next wake = %v %v %v, want %v", wake, ok, err, b.NextAt)
	}
	due, err := f.s.ScheduleDue(f.ctx, f.now, 10)
	if err != nil || len(due) != 0 {
		t.Fatalf("due now: %v %v", names(due), err)
	}
	due, err = f.s.ScheduleDue(f.ctx, *a.NextAt, 10)
	if err != nil || len(due) != 2 || due[0].ID != b.ID {
		t.Fatalf("due at a's tick: %v %v, want b then a", names(due), err)
	}
	if due, _ = f.s.ScheduleDue(f.ctx, *a.NextAt, 1); len(due) != 1 {
		t.Fatalf("limit 1: %d", len(due))
	}
}

func testScheduleFire(t *testing.T, f *fixture) {
	sc := f.addSchedule("s")
	tick := *sc.NextAt
	next := tick.Add(time.Minute)
	p := &store.ScheduleFireParams{ID: sc.ID, ExpectNextAt: tick, NextAt: next, Now: tick,
		Runs: []*store.RunInsertParams{f.tickRun(sc, tick)}}
	res, err := f.s.ScheduleFire(f.ctx, p)
	if err != nil || !res.Fired || len(res.Runs) != 1 || res.Skipped != 0 {
		t.Fatalf("fire: %+v %v", res, err)
	}
	r := res.Runs[0]
	if r.ScheduleID != sc.ID || !r.ScheduledFor.Equal(tick) || r.State != spool.StateQueued {
		t.Fatalf("run = %+v", r)
	}
	if !res.Schedule.NextAt.Equal(next) || res.Schedule.LastRunID != r.ID || !res.Schedule.LastAt.Equal(tick) {
		t.Fatalf("schedule after fire = %+v", res.Schedule)
	}
	// The same expected tick again: another node fired it; nothing changes.
	p.Runs = []*store.RunInsertParams{f.tickRun(sc, tick)}
	res, err = f.s.ScheduleFire(f.ctx, p)
	if err != nil || res.Fired || len(res.Runs) != 0 {
		t.Fatalf("second fire of one tick: %+v %v", res, err)
	}
	// A run for a tick that has one already is skipped by the unique key, the others start.
	res, err = f.s.ScheduleFire(f.ctx, &store.ScheduleFireParams{ID: sc.ID, ExpectNextAt: next, NextAt: next.Add(2 * time.Minute),
		Now: next, Runs: []*store.RunInsertParams{f.tickRun(sc, tick), f.tickRun(sc, next), f.tickRun(sc, next.Add(time.Minute))}})
	if err != nil || !res.Fired || len(res.Runs) != 2 || res.Skipped != 1 {
		t.Fatalf("catch-up fire: %+v %v", res, err)
	}
	if !res.Schedule.LastAt.Equal(next.Add(time.Minute)) {
		t.Errorf("last tick = %v", res.Schedule.LastAt)
	}
	// A plain insert with a tick that exists fails too: the key is a unique index.
	if _, _, err := f.s.RunInsert(f.ctx, f.tickRun(sc, tick)); err == nil {
		t.Error("inserted a second run for one tick")
	}
	// Paused or deleted: not fired.
	if _, err := f.s.ScheduleSetPaused(f.ctx, sc.ID, true, time.Time{}, f.now); err != nil {
		t.Fatal(err)
	}
	res, err = f.s.ScheduleFire(f.ctx, &store.ScheduleFireParams{ID: sc.ID, ExpectNextAt: next.Add(2 * time.Minute),
		NextAt: next.Add(3 * time.Minute), Now: next, Runs: []*store.RunInsertParams{f.tickRun(sc, next.Add(2*time.Minute))}})
	if err != nil || res.Fired {
		t.Fatalf("fire of a paused schedule: %+v %v", res, err)
	}
}

// Many stores fire the same tick at once: exactly one run starts.
func testScheduleFireRace(t *testing.T, f *fixture) {
	sc := f.addSchedule("s")
	tick := *sc.NextAt
	var wg sync.WaitGroup
	results := make([]*store.ScheduleFireResult, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = f.s.ScheduleFire(f.ctx, &store.ScheduleFireParams{ID: sc.ID, ExpectNextAt: tick,
				NextAt: tick.Add(time.Minute), Now: tick, Runs: []*store.RunInsertParams{f.tickRun(sc, tick)}})
		})
	}
	wg.Wait()
	fired, runs := 0, 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("fire %d: %v", i, errs[i])
		}
		if r.Fired {
			fired++
		}
		runs += len(r.Runs)
	}
	if fired != 1 || runs != 1 {
		t.Fatalf("%d fires took the tick and %d runs started, want 1 and 1", fired, runs)
	}
}

func testScheduleFireOverlapSkip(t *testing.T, f *fixture) {
	sc := f.addSchedule("s", func(p *store.ScheduleUpsertParams) { p.Overlap = "skip" })
	tick := *sc.NextAt
	fire := func(ticks ...time.Time) *store.ScheduleFireResult {
		t.Helper()
		var runs []*store.RunInsertParams
		for _, tk := range ticks {
			runs = append(runs, f.tickRun(sc, tk))
		}
		cur, err := f.s.ScheduleGet(f.ctx, "default", sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.s.ScheduleFire(f.ctx, &store.ScheduleFireParams{ID: sc.ID, ExpectNextAt: *cur.NextAt,
			NextAt: ticks[len(ticks)-1].Add(time.Minute), Now: ticks[len(ticks)-1], Runs: runs, SkipIfActive: true})
		if err != nil || !res.Fired {
			t.Fatalf("fire: %+v %v", res, err)
		}
		return res
	}
	// Two ticks at once: the first starts, the second is skipped (the first is active).
	res := fire(tick, tick.Add(time.Minute))
	if len(res.Runs) != 1 || !res.Runs[0].ScheduledFor.Equal(tick) || res.Skipped != 1 {
		t.Fatalf("first fire: %d runs, %d skipped", len(res.Runs), res.Skipped)
	}
	if res = fire(tick.Add(2 * time.Minute)); len(res.Runs) != 0 || res.Skipped != 1 {
		t.Fatalf("fire while active: %d runs, %d skipped", len(res.Runs), res.Skipped)
	}
	if _, err := f.s.RunCancel(f.ctx, res.Schedule.LastRunID, f.now); err != nil {
		t.Fatal(err)
	}
	if res = fire(tick.Add(3 * time.Minute)); len(res.Runs) != 1 {
		t.Fatalf("fire after the run ended: %d runs", len(res.Runs))
	}
}

func testScheduleTrigger(t *testing.T, f *fixture) {
	sc := f.addSchedule("s", func(p *store.ScheduleUpsertParams) { p.Overlap = "skip" })
	if _, err := f.s.ScheduleSetPaused(f.ctx, sc.ID, true, time.Time{}, f.now); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		at := f.now.Add(time.Duration(i) * time.Second)
		res, err := f.s.ScheduleFire(f.ctx, &store.ScheduleFireParams{ID: sc.ID, Trigger: true, Now: at,
			Runs: []*store.RunInsertParams{f.tickRun(sc, at)}})
		if err != nil || !res.Fired || len(res.Runs) != 1 {
			t.Fatalf("trigger %d of a paused schedule with an active run: %+v %v", i, res, err)
		}
		if !res.Schedule.NextAt.Equal(*sc.NextAt) || !res.Schedule.Paused {
			t.Errorf("trigger changed the schedule: %+v", res.Schedule)
		}
	}
	_, err := f.s.ScheduleFire(f.ctx, &store.ScheduleFireParams{ID: "sch_missing", Trigger: true, Now: f.now,
		Runs: []*store.RunInsertParams{f.tickRun(sc, f.now.Add(time.Hour))}})
	wantCode(t, err, spool.CodeNotFound)
}

// Limit 60 a minute, burst 10: ten start, then one a second.
func testClaimRateLimit(t *testing.T, f *fixture) {
	rates := map[string]store.Rate{"agent:llm": {Limit: 60, Per: time.Minute, Burst: 10}}
	for i := 0; i < 30; i++ {
		f.insertIn("llm", "default", "chat")
	}
	other := f.insertIn("other", "default", "chat")
	got, next := f.claimRated(f.now, 50, rates)
	if len(got) != 11 {
		t.Fatalf("first claim started %d, want 10 of llm and 1 other", len(got))
	}
	if !slices.ContainsFunc(got, func(c *store.ClaimedRun) bool { return c.ID == other.ID }) {
		t.Error("the other agent's run did not start")
	}
	if d := next.Sub(f.now); d < time.Second || d > time.Second+time.Millisecond {
		t.Errorf("next token in %s, want 1s", d)
	}
	if got, _ := f.claimRated(f.now.Add(999*time.Millisecond), 50, rates); len(got) != 0 {
		t.Fatalf("before the next token: %d started", len(got))
	}
	if got, _ := f.claimRated(next, 50, rates); len(got) != 1 {
		t.Fatalf("at the next token: %d started, want 1", len(got))
	}
	if got, _ := f.claimRated(next.Add(5*time.Second), 50, rates); len(got) != 5 {
		t.Fatalf("5s later: %d started, want 5", len(got))
	}
	// Without the rate (it was removed), the rest start.
	if got, _ := f.claimRated(next.Add(5*time.Second), 50, nil); len(got) != 14 {
		t.Fatalf("without rates: %d started, want the other 14", len(got))
	}
	states, waiting, err := f.s.RateList(f.ctx, rates, next.Add(5*time.Second))
	if err != nil || waiting != 0 || len(states) != 1 || states[0].Key != "agent:llm" || states[0].Waiting != 0 {
		t.Fatalf("RateList = %+v %d %v", states, waiting, err)
	}
}

func testClaimRateLimitKinds(t *testing.T, f *fixture) {
	rates := map[string]store.Rate{
		"workspace:team": {Limit: 2, Per: time.Hour, Burst: 2},
		"recipe:scrape":  {Limit: 1, Per: time.Hour},
		"agent:*":        {Limit: 3, Per: time.Hour, Burst: 3},
	}
	for i := 0; i < 4; i++ {
		f.insertIn(fmt.Sprintf("a%d", i), "team", "echo")
		f.insertIn(fmt.Sprintf("b%d", i), "solo", "scrape")
		f.insertIn("c", "solo", "echo")
	}
	got, _ := f.claimRated(f.now, 50, rates)
	count := map[string]int{}
	for _, c := range got {
		switch {
		case c.Workspace == "team":
			count["team"]++
		case c.Recipe == "scrape":
			count["scrape"]++
		default:
			count["c"]++
		}
	}
	if count["team"] != 2 || count["scrape"] != 1 || count["c"] != 3 {
		t.Fatalf("started %v, want team 2 (workspace rate), scrape 1 (recipe rate), c 3 (agent default)", count)
	}
	states, waiting, err := f.s.RateList(f.ctx, rates, f.now)
	if err != nil || waiting != 6 || len(states) != 3 {
		t.Fatalf("RateList = %d states, %d waiting, %v", len(states), waiting, err)
	}
	for _, st := range states {
		want := map[string]int64{"workspace:team": 2, "recipe:scrape": 3, "agent:c": 1}[st.Key]
		if st.Waiting != want || st.Tokens >= 1 || !st.NextAt.After(f.now) {
			t.Errorf("state %+v, want %d waiting", st, want)
		}
	}
}

// Claims from many stores at once never take more tokens than the bucket holds.
func testClaimRateLimitConcurrent(t *testing.T, f *fixture) {
	rates := map[string]store.Rate{"agent:llm": {Limit: 1, Per: time.Hour, Burst: 5}}
	for i := 0; i < 40; i++ {
		f.insertIn("llm", "default", "chat")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			got, err := f.s.RunClaim(f.ctx, &store.RunClaimParams{Node: node, Now: f.now, LeaseUntil: f.now.Add(time.Hour),
				Max: 3, Rates: rates})
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += len(got)
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != 5 {
		t.Fatalf("concurrent claims started %d, want the burst of 5", total)
	}
}

func testRateHold(t *testing.T, f *fixture) {
	r := f.insertIn("llm", "default", "chat")
	free := f.insertIn("free", "default", "chat")
	until := f.now.Add(2 * time.Second)
	if err := f.s.RateHold(f.ctx, "agent:llm", until); err != nil {
		t.Fatal(err)
	}
	// An earlier hold does not shorten it.
	if err := f.s.RateHold(f.ctx, "agent:llm", f.now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	got, next := f.claimRated(f.now, 10, nil)
	if len(got) != 1 || got[0].ID != free.ID || !next.Equal(until) {
		t.Fatalf("claim while held: %d runs, next %v; want only the free agent's and %v", len(got), next, until)
	}
	states, waiting, err := f.s.RateList(f.ctx, nil, f.now)
	if err != nil || waiting != 1 || len(states) != 1 || states[0].HeldUntil == nil || !states[0].HeldUntil.Equal(until) {
		t.Fatalf("RateList while held = %+v %d %v", states, waiting, err)
	}
	if got, _ := f.claimRated(until, 10, nil); len(got) != 1 || got[0].ID != r.ID {
		t.Fatalf("claim when the hold ends: %d runs", len(got))
	}
}
