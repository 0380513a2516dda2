package store

import (
	"math"
	"sort"
	"strings"
	"time"
)

// tokenEpsilon absorbs floating-point error: a bucket refilled to 0.9999999999 by its
// NextAt holds a token.
const tokenEpsilon = 1e-9

// RateFor returns the rate of one agent, workspace or recipe: its own, else its kind's
// default ("agent:*"), and whether there is one.
func RateFor(rates map[string]Rate, kind, name string) (Rate, bool) {
	if r, ok := rates[RateKey(kind, name)]; ok && r.Limit > 0 && r.Per > 0 {
		return r, true
	}
	if r, ok := rates[RateKey(kind, "*")]; ok && r.Limit > 0 && r.Per > 0 {
		return r, true
	}
	return Rate{}, false
}

// rateOfKey returns the rate that applies to a bucket key: RateFor of its kind and name,
// without building keys.
func rateOfKey(rates map[string]Rate, key string) (Rate, bool) {
	kind, _, ok := strings.Cut(key, ":")
	if !ok || len(rates) == 0 {
		return Rate{}, false
	}
	if r, ok := rates[key]; ok && r.Limit > 0 && r.Per > 0 {
		return r, true
	}
	if r, ok := rates[defaultKey(kind)]; ok && r.Limit > 0 && r.Per > 0 {
		return r, true
	}
	return Rate{}, false
}

// defaultKey is RateKey(kind, "*"), constant for the known kinds.
func defaultKey(kind string) string {
	switch kind {
	case RateAgent:
		return RateAgent + ":*"
	case RateWorkspace:
		return RateWorkspace + ":*"
	case RateRecipe:
		return RateRecipe + ":*"
	}
	return RateKey(kind, "*")
}

// TokensAt returns the tokens of a bucket of rate r that held tokens at updated, refilled
// until now and capped at the capacity.
func (r Rate) TokensAt(tokens float64, updated, now time.Time) float64 {
	if now.After(updated) {
		tokens += float64(now.Sub(updated)) / float64(r.Interval())
	}
	return math.Min(tokens, r.Capacity())
}

// NextToken returns when a bucket holding tokens at now holds one token (now if it does).
func (r Rate) NextToken(tokens float64, now time.Time) time.Time {
	if tokens >= 1-tokenEpsilon {
		return now
	}
	d := time.Duration(math.Ceil((1 - tokens) * float64(r.Interval())))
	return now.Add(d.Truncate(time.Microsecond) + time.Microsecond)
}

// FullAt returns when a bucket holding tokens at now is full again.
func (r Rate) FullAt(tokens float64, now time.Time) time.Time {
	return now.Add(time.Duration(math.Max(r.Capacity()-tokens, 0) * float64(r.Interval())))
}

// BucketRow is a stored bucket as drivers read and write it.
type BucketRow struct {
	Key       string
	Tokens    float64
	UpdatedAt time.Time
	// FullAt at or before now means the bucket is full, whatever Tokens says.
	FullAt    time.Time
	HeldUntil *time.Time
}

// Buckets applies rate limits and holds during one claim: drivers load the stored buckets
// that are not full or are held (or keep them in a BucketCache and start from its Claim),
// ask Admit for each candidate run in claim order, and write back Dirty. Every driver
// shares it, so limits mean the same on SQLite and PostgreSQL.
type Buckets struct {
	rates  map[string]Rate
	now    time.Time
	tokens map[string]float64   // buckets not full, at now
	held   map[string]time.Time // holds in force
	local  map[string]bool      // holds known to the node only (RunClaimParams.HeldAgents)
	dirty  map[string]bool
	// cache, when set (BucketCache.Claim), holds the stored rows: they are read when needed
	// rather than loaded, and tokens memoizes those read.
	cache *BucketCache
}

// NewBuckets starts the bucket accounting of one claim at now.
func NewBuckets(rates map[string]Rate, now time.Time) *Buckets {
	return &Buckets{rates: rates, now: now, tokens: map[string]float64{}, held: map[string]time.Time{},
		local: map[string]bool{}, dirty: map[string]bool{}}
}

// Load adds a stored bucket.
func (b *Buckets) Load(row BucketRow) {
	if row.HeldUntil != nil && row.HeldUntil.After(b.now) {
		b.held[row.Key] = *row.HeldUntil
	}
	r, ok := rateOfKey(b.rates, row.Key)
	if !ok || !row.FullAt.After(b.now) {
		return
	}
	b.tokens[row.Key] = r.TokensAt(row.Tokens, row.UpdatedAt, b.now)
}

// HoldLocal blocks key during this claim: a hold the node knows of and times itself
// (RunClaimParams.HeldAgents). It does not count for NextAt.
func (b *Buckets) HoldLocal(key string) { b.local[key] = true }

func (b *Buckets) tokensOf(key string, r Rate) float64 {
	if t, ok := b.tokens[key]; ok {
		return t
	}
	if b.cache != nil {
		if t, ok := b.lazyTokens(key, r); ok {
			b.tokens[key] = t
			return t
		}
	}
	return r.Capacity()
}

// heldUntil returns the stored hold of key in force.
func (b *Buckets) heldUntil(key string) (time.Time, bool) {
	if h, ok := b.held[key]; ok {
		return h, true
	}
	if b.cache != nil {
		return b.lazyHeld(key)
	}
	return time.Time{}, false
}

// blocked reports whether key is held or its bucket is empty.
func (b *Buckets) blocked(key string) bool {
	if _, ok := b.heldUntil(key); ok || b.local[key] {
		return true
	}
	r, ok := rateOfKey(b.rates, key)
	return ok && b.tokensOf(key, r) < 1-tokenEpsilon
}

// Admit reports whether a run of agent, workspace and recipe may start now, and if so takes
// a token from each of its buckets.
func (b *Buckets) Admit(agent, workspace, recipe string) bool {
	if len(b.rates) == 0 && len(b.held) == 0 && len(b.local) == 0 && (b.cache == nil || len(b.cache.view.blocked) == 0) {
		return true // nothing limits or holds any run
	}
	keys := [3]string{RateKey(RateAgent, agent), RateKey(RateWorkspace, workspace), RateKey(RateRecipe, recipe)}
	for _, key := range keys {
		if b.blocked(key) {
			return false
		}
	}
	for _, key := range keys {
		if r, ok := rateOfKey(b.rates, key); ok {
			b.tokens[key] = b.tokensOf(key, r) - 1
			b.dirty[key] = true
		}
	}
	return true
}

// Blocked lists the names of kind whose bucket is empty or held, sorted. Drivers keep the
// blocked names in a BucketCache; this is the reference the cache is tested against.
func (b *Buckets) Blocked(kind string) []string {
	out := []string{}
	for _, key := range b.candidates(true) {
		if k, name, ok := strings.Cut(key, ":"); ok && k == kind && name != "*" && b.blocked(key) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// EachEmptied calls fn with the kind and name of every bucket that Admit took tokens from
// and that is now empty: what Blocked adds to what it reported before those Admits.
func (b *Buckets) EachEmptied(fn func(kind, name string)) {
	for key := range b.dirty {
		if kind, name, ok := strings.Cut(key, ":"); ok && name != "*" && b.blocked(key) {
			fn(kind, name)
		}
	}
}

// candidates lists, once each, the keys that may be held or empty: held or with tokens
// loaded, the view's of a BucketCache, and with local the node's own holds.
func (b *Buckets) candidates(local bool) []string {
	n := len(b.held) + len(b.tokens)
	if local {
		n += len(b.local)
	}
	if b.cache != nil {
		n += len(b.cache.view.order)
	}
	out := make([]string, 0, n)
	seen := make(map[string]bool, n)
	add := func(key string) {
		if !seen[key] {
			seen[key] = true
			out = append(out, key)
		}
	}
	for key := range b.held {
		add(key)
	}
	if local {
		for key := range b.local {
			add(key)
		}
	}
	for key := range b.tokens {
		add(key)
	}
	if b.cache != nil {
		for _, e := range b.cache.view.order {
			add(e.key)
		}
	}
	return out
}

// Dirty returns the buckets that Admit changed, to store: tokens at now and when each is
// full again.
func (b *Buckets) Dirty() []BucketRow {
	out := make([]BucketRow, 0, len(b.dirty))
	for key := range b.dirty {
		r, _ := rateOfKey(b.rates, key)
		t := b.tokens[key]
		out = append(out, BucketRow{Key: key, Tokens: t, UpdatedAt: b.now, FullAt: r.FullAt(t, b.now)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// NextAt returns the earliest time at which an empty or held bucket has a token again;
// zero when none is empty or held.
func (b *Buckets) NextAt() time.Time {
	if b.cache != nil {
		return b.nextAtCached()
	}
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for key, t := range b.tokens {
		if t < 1-tokenEpsilon {
			r, _ := rateOfKey(b.rates, key)
			at := r.NextToken(t, b.now)
			if h, ok := b.held[key]; ok && h.After(at) {
				at = h
			}
			consider(at)
		}
	}
	for key, h := range b.held {
		if t, ok := b.tokens[key]; ok && t < 1-tokenEpsilon {
			continue // counted above
		}
		consider(h)
	}
	return next
}

// States describes the buckets that are empty or held, for stats.
func (b *Buckets) States() []*RateState {
	var out []*RateState
	for _, key := range b.candidates(false) {
		_, held := b.heldUntil(key)
		r, ok := rateOfKey(b.rates, key)
		if !held && !(ok && b.tokensOf(key, r) < 1-tokenEpsilon) {
			continue
		}
		st := &RateState{Key: key, NextAt: b.now}
		if ok {
			st.Tokens = b.tokensOf(key, r)
			st.NextAt = r.NextToken(st.Tokens, b.now)
		} else {
			st.Tokens = 1
		}
		if h, held := b.heldUntil(key); held {
			h := h
			st.HeldUntil = &h
			if h.After(st.NextAt) {
				st.NextAt = h
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
