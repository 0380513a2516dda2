package store

import (
	"reflect"
	"slices"
	"strings"
	"time"
)

// BucketCache keeps a driver's stored buckets in memory across claims, for a driver whose
// one writer makes every change to them (SQLite): the driver puts each row it reads or
// writes, and each claim's [Buckets] (from Claim) reads the rows it needs instead of
// loading them all.
//
// The cache also works out which buckets are empty or held (its view), so that a claim
// need not visit every bucket. A bucket left alone only refills and its hold only ends, so
// once empty or held it stays so until a time the view computes, and once not, it stays
// not: the view is worked out again only for a new rates map, a claim earlier than the
// last one, and the buckets that may have a token again or that a write changed. A rates
// map is taken as unchanged while claims pass the same map (the engine builds a new map
// for every change).
type BucketCache struct {
	rows map[string]*BucketRow
	view bucketView
	// version counts the changes to what Blocked reports.
	version uint64
}

// bucketView is which stored buckets are empty or held from `from` on, for one rates map.
type bucketView struct {
	ok      bool
	rates   map[string]Rate
	from    time.Time
	blocked map[string]*viewEntry
	order   []*viewEntry // by at
	names   map[string]map[string]bool
}

// viewEntry is a bucket that is empty or held. Until at, it stays so; and at any time
// while it is, NextAt counts it for at or later.
type viewEntry struct {
	key string
	at  time.Time
}

// NewBucketCache returns an empty cache.
func NewBucketCache() *BucketCache { return &BucketCache{rows: map[string]*BucketRow{}} }

// Get returns the stored row of key.
func (c *BucketCache) Get(key string) (BucketRow, bool) {
	if r := c.rows[key]; r != nil {
		return *r, true
	}
	return BucketRow{}, false
}

// Put records a row as the database now stores it (times at the database's precision).
func (c *BucketCache) Put(row BucketRow) {
	if row.HeldUntil != nil {
		h := *row.HeldUntil
		row.HeldUntil = &h
	}
	c.rows[row.Key] = &row
	if c.view.ok {
		c.reevaluate(row.Key)
	}
}

// Claim starts the bucket accounting of one claim at now, as NewBuckets and a Load of every
// stored row would. The Buckets reads the cache: it serves until the next Claim.
func (c *BucketCache) Claim(rates map[string]Rate, now time.Time) *Buckets {
	c.refresh(rates, now)
	b := NewBuckets(rates, now)
	b.cache = c
	return b
}

// Blocked reports whether the stored bucket of kind and name is empty or held at the last
// Claim's now (as Buckets.Blocked lists it, without the node's own holds).
func (c *BucketCache) Blocked(kind, name string) bool { return c.view.names[kind][name] }

// Version changes whenever what Blocked reports may have: callers that keep what they
// derive from Blocked keep it as long as Version stays the same.
func (c *BucketCache) Version() uint64 { return c.version }

// EachBlocked calls fn with each name of kind whose stored bucket is empty or held at the
// last Claim's now.
func (c *BucketCache) EachBlocked(kind string, fn func(name string)) {
	for name := range c.view.names[kind] {
		fn(name)
	}
}

func (c *BucketCache) refresh(rates map[string]Rate, now time.Time) {
	v := &c.view
	if !v.ok || !sameRates(v.rates, rates) || now.Before(v.from) {
		c.rebuild(rates, now)
		return
	}
	v.from = now
	// The first buckets may have a token again: work them out anew.
	n := 0
	for n < len(v.order) && !v.order[n].at.After(now) {
		n++
	}
	if n == 0 {
		return
	}
	due := make([]string, n)
	for i, e := range v.order[:n] {
		due[i] = e.key
	}
	for _, key := range due {
		c.reevaluate(key)
	}
}

// sameRates reports whether a and b are the same map.
func sameRates(a, b map[string]Rate) bool {
	return len(a) == len(b) && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func (c *BucketCache) rebuild(rates map[string]Rate, now time.Time) {
	c.version++
	c.view = bucketView{ok: true, rates: rates, from: now, blocked: map[string]*viewEntry{},
		names: map[string]map[string]bool{}}
	v := &c.view
	for key := range c.rows {
		if at, ok := c.blockedAt(key); ok {
			e := &viewEntry{key: key, at: at}
			v.order = append(v.order, e)
			v.blocked[key] = e
			c.name(key, true)
		}
	}
	slices.SortFunc(v.order, compareAt)
}

// reevaluate works out anew whether the bucket of key is empty or held at the view's from.
func (c *BucketCache) reevaluate(key string) {
	v := &c.view
	if e := v.blocked[key]; e != nil {
		delete(v.blocked, key)
		if i := slices.Index(v.order, e); i >= 0 {
			v.order = slices.Delete(v.order, i, i+1)
		}
	}
	at, blocked := c.blockedAt(key)
	if blocked {
		e := &viewEntry{key: key, at: at}
		i, _ := slices.BinarySearchFunc(v.order, e, compareAt)
		v.order = slices.Insert(v.order, i, e)
		v.blocked[key] = e
	}
	c.name(key, blocked)
}

func compareAt(a, b *viewEntry) int { return a.at.Compare(b.at) }

// name records whether the bucket of key is empty or held in names, as Blocked lists it.
func (c *BucketCache) name(key string, blocked bool) {
	v := &c.view
	kind, name, ok := strings.Cut(key, ":")
	if !ok || name == "*" || v.names[kind][name] == blocked {
		return
	}
	if !blocked {
		delete(v.names[kind], name)
	} else if v.names[kind] == nil {
		v.names[kind] = map[string]bool{name: true}
	} else {
		v.names[kind][name] = true
	}
	c.version++
}

// blockedAt reports whether the bucket of key is empty or held at the view's from, and if
// so the entry's at: a time until which it stays so, and before which NextAt does not
// count it for.
func (c *BucketCache) blockedAt(key string) (at time.Time, blocked bool) {
	row, v := c.rows[key], &c.view
	held := row.HeldUntil != nil && row.HeldUntil.After(v.from)
	if r, ok := rateOfKey(v.rates, key); ok && row.FullAt.After(v.from) {
		if tokens := r.TokensAt(row.Tokens, row.UpdatedAt, v.from); tokens < 1-tokenEpsilon {
			// Empty until its next token or until the row says it is full, whichever comes
			// first, and NextAt counts it for its next token.
			at = r.NextToken(tokens, v.from).Add(-viewSlack(r))
			if row.FullAt.Before(at) {
				at = row.FullAt
			}
			if held && row.HeldUntil.After(at) {
				at = *row.HeldUntil
			}
			return at, true
		}
	}
	if held {
		return *row.HeldUntil, true
	}
	return time.Time{}, false
}

// viewSlack is how much earlier than NextToken worked out at one time a bucket of rate r
// may count as holding a token, at a later time: NextToken works at microseconds and
// tokenEpsilon accepts a bucket a little short of a token (r's interval times
// tokenEpsilon, 3.6 µs for one an hour). It errs far on the safe side; a wider slack only
// works buckets out again sooner.
func viewSlack(r Rate) time.Duration { return time.Millisecond + r.Interval()/10_000_000 }

// lazyHeld and lazyTokens read the stored row of key as Load would have loaded it at b.now:
// its hold in force, and its tokens if the bucket is not full.
func (b *Buckets) lazyHeld(key string) (time.Time, bool) {
	if row := b.cache.rows[key]; row != nil && row.HeldUntil != nil && row.HeldUntil.After(b.now) {
		return *row.HeldUntil, true
	}
	return time.Time{}, false
}

func (b *Buckets) lazyTokens(key string, r Rate) (float64, bool) {
	if row := b.cache.rows[key]; row != nil && row.FullAt.After(b.now) {
		return r.TokensAt(row.Tokens, row.UpdatedAt, b.now), true
	}
	return 0, false
}

// nextAtCached is NextAt for Buckets from a BucketCache: the buckets this claim read or
// changed, and of the view's, those whose next may come first.
func (b *Buckets) nextAtCached() time.Time {
	var next time.Time
	consider := func(key string) {
		if at, ok := b.nextOf(key); ok && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	for key := range b.tokens {
		consider(key)
	}
	for _, e := range b.cache.view.order {
		if !next.IsZero() && e.at.After(next) {
			break // this one and the later ones cannot come sooner
		}
		if _, ok := b.tokens[e.key]; !ok {
			consider(e.key)
		}
	}
	return next
}

// nextOf returns when key may start runs again, as NextAt counts it; false when its bucket
// is neither empty nor held.
func (b *Buckets) nextOf(key string) (time.Time, bool) {
	h, held := b.heldUntil(key)
	if r, ok := rateOfKey(b.rates, key); ok {
		if t := b.tokensOf(key, r); t < 1-tokenEpsilon {
			at := r.NextToken(t, b.now)
			if held && h.After(at) {
				at = h
			}
			return at, true
		}
	}
	return h, held
}
