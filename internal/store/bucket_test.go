package store_test

import (
	"testing"
	"time"

	"github.com/spool-run/spool/internal/store"
)

func TestBucketsBurstThenPace(t *testing.T) {
	t.Parallel()
	rates := map[string]store.Rate{"agent:llm": {Limit: 60, Per: time.Minute, Burst: 10}}
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	b := store.NewBuckets(rates, now)
	started := 0
	for i := 0; i < 100; i++ {
		if b.Admit("llm", "default", "chat") {
			started++
		}
	}
	if started != 10 {
		t.Fatalf("burst started %d, want 10", started)
	}
	if got := b.Blocked(store.RateAgent); len(got) != 1 || got[0] != "llm" {
		t.Errorf("Blocked(agent) = %v", got)
	}
	next := b.NextAt()
	if d := next.Sub(now); d < time.Second || d > time.Second+2*time.Microsecond {
		t.Errorf("next token in %s, want 1s", d)
	}
	// Store and reload at the next token's time: exactly one more run starts.
	rows := b.Dirty()
	if len(rows) != 1 || rows[0].Tokens != 0 || !rows[0].FullAt.Equal(now.Add(10*time.Second)) {
		t.Fatalf("dirty = %+v", rows)
	}
	b2 := store.NewBuckets(rates, next)
	b2.Load(rows[0])
	if !b2.Admit("llm", "default", "chat") || b2.Admit("llm", "default", "chat") {
		t.Error("want exactly one run a second after the burst")
	}
	// Other agents are not limited.
	if !b2.Admit("other", "default", "chat") {
		t.Error("an agent without a rate was refused")
	}
	// A full bucket's row (full_at passed) means capacity again.
	b3 := store.NewBuckets(rates, now.Add(time.Hour))
	b3.Load(rows[0])
	n := 0
	for b3.Admit("llm", "default", "chat") {
		n++
	}
	if n != 10 {
		t.Errorf("after an hour %d runs start, want 10", n)
	}
}

func TestBucketsDefaultsKindsAndHolds(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	rates := map[string]store.Rate{
		"agent:*":        {Limit: 1, Per: time.Second},
		"workspace:team": {Limit: 2, Per: time.Minute, Burst: 2},
		"recipe:scrape":  {Limit: 1, Per: time.Hour},
	}
	b := store.NewBuckets(rates, now)
	if !b.Admit("a", "team", "x") || b.Admit("a", "team", "x") {
		t.Error("agent default rate of 1/s with burst 1: want one run")
	}
	if !b.Admit("b", "team", "x") || b.Admit("c", "team", "x") {
		t.Error("workspace team allows a burst of 2")
	}
	if !b.Admit("d", "solo", "scrape") || b.Admit("e", "solo", "scrape") {
		t.Error("recipe scrape allows one an hour")
	}
	if got := b.Blocked(store.RateWorkspace); len(got) != 1 || got[0] != "team" {
		t.Errorf("Blocked(workspace) = %v", got)
	}
	if got := b.Blocked(store.RateRecipe); len(got) != 1 || got[0] != "scrape" {
		t.Errorf("Blocked(recipe) = %v", got)
	}

	held := now.Add(2 * time.Second)
	h := store.NewBuckets(nil, now)
	h.Load(store.BucketRow{Key: "agent:llm", HeldUntil: &held})
	h.HoldLocal("agent:local")
	if h.Admit("llm", "default", "chat") || h.Admit("local", "default", "chat") {
		t.Error("a held agent started a run")
	}
	if !h.Admit("free", "default", "chat") {
		t.Error("an agent without a hold was refused")
	}
	if !h.NextAt().Equal(held) {
		t.Errorf("NextAt = %s, want the stored hold's end %s (local holds do not count)", h.NextAt(), held)
	}
	st := h.States()
	if len(st) != 1 || st[0].Key != "agent:llm" || st[0].HeldUntil == nil || !st[0].NextAt.Equal(held) {
		t.Errorf("States = %+v", st)
	}
	if len(h.Dirty()) != 0 {
		t.Error("buckets without rates were written")
	}
}

func TestRateHelpers(t *testing.T) {
	t.Parallel()
	r := store.Rate{Limit: 60, Per: time.Minute}
	if r.Interval() != time.Second || r.Capacity() != 1 {
		t.Errorf("interval %s capacity %v", r.Interval(), r.Capacity())
	}
	now := time.Unix(0, 0)
	if got := r.TokensAt(0, now, now.Add(500*time.Millisecond)); got != 0.5 {
		t.Errorf("TokensAt half a second = %v", got)
	}
	if got := r.TokensAt(0, now, now.Add(time.Hour)); got != 1 {
		t.Errorf("TokensAt is capped at the capacity: %v", got)
	}
	if _, ok := store.RateFor(map[string]store.Rate{"agent:a": {Limit: 0, Per: time.Second}}, store.RateAgent, "a"); ok {
		t.Error("a zero limit is no rate")
	}
}
