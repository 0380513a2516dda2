package queue

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/spool-run/spool/internal/store"
)

// Rate is a token-bucket rate limit: Limit runs per Per, with bursts of up to Burst runs
// (default 1: runs start evenly spaced, one every Per/Limit). A run that finds its bucket
// empty waits in queued, without consuming an attempt, and never holds up runs of other
// groups.
type Rate struct {
	Limit int
	Per   time.Duration
	Burst int
}

// ParseRate reads a rate written LIMIT/PER[:BURST]: "60/1m" is 60 runs a minute, one a
// second; "60/1m:10" lets 10 start at once. PER is a Go duration; a bare unit (s, m, h)
// means one of it ("10/s").
func ParseRate(s string) (Rate, error) {
	bad := func(why string) (Rate, error) {
		return Rate{}, fmt.Errorf("rate %q: %s (want LIMIT/PER[:BURST], such as 60/1m or 60/1m:10)", s, why)
	}
	limit, rest, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return bad("no /")
	}
	per, burst, hasBurst := strings.Cut(rest, ":")
	var r Rate
	var err error
	if r.Limit, err = strconv.Atoi(strings.TrimSpace(limit)); err != nil || r.Limit <= 0 {
		return bad("the limit must be a positive whole number")
	}
	per = strings.TrimSpace(per)
	if per == "s" || per == "m" || per == "h" {
		per = "1" + per
	}
	if r.Per, err = time.ParseDuration(per); err != nil || r.Per <= 0 {
		return bad("the period must be a positive duration such as 1s, 1m or 1h")
	}
	if hasBurst {
		if r.Burst, err = strconv.Atoi(strings.TrimSpace(burst)); err != nil || r.Burst <= 0 {
			return bad("the burst must be a positive whole number")
		}
	}
	return r, nil
}

// String writes the rate as ParseRate reads it.
func (r Rate) String() string {
	s := strconv.Itoa(r.Limit) + "/" + shortDuration(r.Per)
	if r.Burst > 1 {
		s += ":" + strconv.Itoa(r.Burst)
	}
	return s
}

// shortDuration writes 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (r Rate) store() store.Rate { return store.Rate{Limit: r.Limit, Per: r.Per, Burst: r.Burst} }

// ParseRates reads NAME=RATE pairs (the --rate-agent and --rate-workspace flags); NAME "*"
// applies to every agent or workspace without a rate of its own.
func ParseRates(pairs []string) (map[string]Rate, error) {
	out := map[string]Rate{}
	for _, p := range pairs {
		name, rate, ok := strings.Cut(p, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("rate %q: want NAME=LIMIT/PER[:BURST], such as summarize=60/1m:10 or *=100/1h", p)
		}
		r, err := ParseRate(rate)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = r
	}
	return out, nil
}

// buildRates combines the configured rates and the recipes' rates into bucket keys.
func (e *Engine) buildRates() map[string]store.Rate {
	out := map[string]store.Rate{}
	for name, r := range e.cfg.AgentRates {
		out[store.RateKey(store.RateAgent, name)] = r.store()
	}
	for name, r := range e.cfg.WorkspaceRates {
		out[store.RateKey(store.RateWorkspace, name)] = r.store()
	}
	for _, rec := range e.recipes {
		if rec.Rate != nil && rec.Rate.Limit > 0 && rec.Rate.Per > 0 {
			out[store.RateKey(store.RateRecipe, rec.Name)] = rec.Rate.store()
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Rates returns the rate limits in force, by bucket key ("agent:NAME", "workspace:NAME",
// "recipe:NAME").
func (e *Engine) Rates() map[string]Rate {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Rate, len(e.rates))
	for k, r := range e.rates {
		out[k] = Rate{Limit: r.Limit, Per: r.Per, Burst: r.Burst}
	}
	return out
}

func (e *Engine) rateMap() map[string]store.Rate {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rates
}

// holdCluster stores a provider back-off hold so that every node honours it.
func (e *Engine) holdCluster(ctx context.Context, agent string, until time.Time) {
	if err := e.store.RateHold(ctx, store.RateKey(store.RateAgent, agent), until); err != nil && ctx.Err() == nil {
		e.log.Error("storing agent hold; it holds on this node only", "agent", agent, "until", until, "err", err)
	}
}

// TimeStats is what waits on time: runs held back by rate limits and provider back-off.
type TimeStats struct {
	// RateLimited counts queued runs that wait on an empty rate-limit bucket or a held
	// agent; RateLimitedNextAt is when the next of them may start.
	RateLimited       int64      `json:"rate_limited_count"`
	RateLimitedNextAt *time.Time `json:"rate_limited_next_at"`
	// Buckets lists each empty or held bucket with the runs waiting on it.
	Buckets []*store.RateState `json:"rate_limits"`
}

// TimeStats reports the runs waiting on rate limits and holds.
func (e *Engine) TimeStats(ctx context.Context) (*TimeStats, error) {
	out := &TimeStats{Buckets: []*store.RateState{}}
	rates := maps.Clone(e.rateMap())
	states, waiting, err := e.store.RateList(ctx, rates, e.now())
	if err != nil {
		return nil, err
	}
	out.RateLimited = waiting
	for _, st := range states {
		if st.Waiting == 0 {
			continue
		}
		out.Buckets = append(out.Buckets, st)
		if at := st.NextAt; out.RateLimitedNextAt == nil || at.Before(*out.RateLimitedNextAt) {
			out.RateLimitedNextAt = &at
		}
	}
	return out, nil
}
