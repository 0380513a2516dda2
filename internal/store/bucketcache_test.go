package store_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/spool-run/spool/internal/store"
)

// TestBucketCacheMatchesLoad plays random claims, writes and holds against the rows a
// database would store, and checks that Buckets from a BucketCache decide and report
// exactly as Buckets that Load every row that matters.
func TestBucketCacheMatchesLoad(t *testing.T) {
	t.Parallel()
	for seed := range uint64(100) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			playBuckets(t, rand.New(rand.NewPCG(seed, 7)))
		})
	}
}

func playBuckets(t *testing.T, rng *rand.Rand) {
	stored := map[string]store.BucketRow{} // as the database holds them
	cache := store.NewBucketCache()
	put := func(row store.BucketRow) {
		row.UpdatedAt, row.FullAt = dbTime(row.UpdatedAt), dbTime(row.FullAt)
		if row.HeldUntil != nil {
			h := dbTime(*row.HeldUntil)
			row.HeldUntil = &h
		}
		stored[row.Key] = row
		cache.Put(row)
	}
	name := func(prefix string, n int) string { return fmt.Sprint(prefix, rng.IntN(n)) }
	randomRates := func() map[string]store.Rate {
		rates := map[string]store.Rate{}
		pers := []time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour}
		for range rng.IntN(8) {
			key := []string{store.RateKey(store.RateAgent, name("a", 8)), store.RateKey(store.RateWorkspace, name("w", 3)),
				store.RateKey(store.RateRecipe, name("r", 3)), "agent:*", "workspace:*"}[rng.IntN(5)]
			rates[key] = store.Rate{Limit: 1 + rng.IntN(5), Per: pers[rng.IntN(len(pers))], Burst: rng.IntN(4)}
		}
		return rates
	}
	rates := randomRates()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var (
		next    time.Time // the last claim's NextAt
		names   string    // what the cache's Blocked reported at the last claim
		version uint64
	)
	for step := range 400 {
		switch r := rng.IntN(100); {
		case r < 3:
			rates = randomRates()
		case r < 5:
			rates = maps(rates) // the same rates in a new map
		}
		switch r := rng.IntN(100); {
		case r < 25 && next.After(now):
			// As the engine does: claim again when the next bucket refills, give or take.
			now = next.Add(time.Duration(rng.IntN(5)-2) * time.Microsecond / time.Duration(1+rng.IntN(1000)))
		case r < 30:
			now = now.Add(-time.Duration(rng.IntN(5000)) * time.Millisecond)
		case r < 10:
		case r < 20:
			now = now.Add(time.Duration(rng.Int64N(int64(2 * time.Hour))))
		default:
			now = now.Add(time.Duration(rng.Int64N(int64(3 * time.Second))))
		}
		if rng.IntN(10) == 0 {
			key := []string{store.RateKey(store.RateAgent, name("a", 8)), store.RateKey(store.RateWorkspace, name("w", 3)), "odd"}[rng.IntN(3)]
			until := now.Add(time.Duration(rng.Int64N(int64(10*time.Second))) - 2*time.Second)
			row, ok := stored[key]
			if !ok {
				row = store.BucketRow{Key: key, UpdatedAt: time.UnixMicro(0).UTC(), FullAt: time.UnixMicro(0).UTC()}
			} else if row.HeldUntil != nil && row.HeldUntil.After(until) {
				until = *row.HeldUntil
			}
			row.HeldUntil = &until
			put(row)
		}

		// The claim: one Buckets loading what the database would return, one from the cache.
		want := store.NewBuckets(rates, now)
		for _, row := range stored {
			if row.FullAt.UnixMicro() > now.UnixMicro() || (row.HeldUntil != nil && row.HeldUntil.UnixMicro() > now.UnixMicro()) {
				want.Load(row)
			}
		}
		got := cache.Claim(rates, now)
		var blockedNow []string
		for _, kind := range []string{store.RateAgent, store.RateWorkspace, store.RateRecipe, "odd"} {
			cache.EachBlocked(kind, func(name string) { blockedNow = append(blockedNow, kind+":"+name) })
		}
		slices.Sort(blockedNow)
		if s := fmt.Sprint(blockedNow); s != names && cache.Version() == version {
			t.Fatalf("step %d: Blocked went from %s to %s, Version stayed %d", step, names, s, version)
		} else {
			names, version = s, cache.Version()
		}
		local := ""
		if rng.IntN(5) == 0 {
			local = name("a", 8)
			want.HoldLocal(store.RateKey(store.RateAgent, local))
			got.HoldLocal(store.RateKey(store.RateAgent, local))
		}
		for _, kind := range []string{store.RateAgent, store.RateWorkspace, store.RateRecipe, "odd"} {
			w, g := want.Blocked(kind), got.Blocked(kind)
			if !slices.Equal(w, g) {
				t.Fatalf("step %d: Blocked(%s) = %v, want %v", step, kind, g, w)
			}
			// The cache's own answer leaves out the node's holds.
			var c []string
			cache.EachBlocked(kind, func(name string) {
				if !cache.Blocked(kind, name) {
					t.Fatalf("step %d: EachBlocked(%s) lists %s, Blocked says no", step, kind, name)
				}
				c = append(c, name)
			})
			if kind == store.RateAgent && local != "" && !slices.Contains(c, local) {
				c = append(c, local)
			}
			slices.Sort(c)
			if !slices.Equal(w, c) {
				t.Fatalf("step %d: cache EachBlocked(%s) = %v, want %v", step, kind, c, w)
			}
		}
		if w, g := want.NextAt(), got.NextAt(); !w.Equal(g) {
			t.Fatalf("step %d: NextAt before Admit = %v, want %v", step, g, w)
		}
		for range rng.IntN(12) {
			a, w, rc := name("a", 8), name("w", 3), name("r", 3)
			if wa, ga := want.Admit(a, w, rc), got.Admit(a, w, rc); wa != ga {
				t.Logf("rates %v now %v", rates, now)
				for k, r := range stored {
					t.Logf("row %s %+v held %v", k, r, r.HeldUntil)
				}
				t.Fatalf("step %d: Admit(%s, %s, %s) = %v, want %v", step, a, w, rc, ga, wa)
			}
		}
		var we, ge []string
		want.EachEmptied(func(kind, name string) { we = append(we, kind+":"+name) })
		got.EachEmptied(func(kind, name string) { ge = append(ge, kind+":"+name) })
		slices.Sort(we)
		slices.Sort(ge)
		if !slices.Equal(we, ge) {
			t.Fatalf("step %d: EachEmptied = %v, want %v", step, ge, we)
		}
		if w, g := want.States(), got.States(); !reflect.DeepEqual(w, g) {
			t.Fatalf("step %d: States = %v, want %v", step, g, w)
		}
		dirty := want.Dirty()
		if g := got.Dirty(); !reflect.DeepEqual(dirty, g) {
			t.Fatalf("step %d: Dirty = %+v, want %+v", step, g, dirty)
		}
		for _, row := range dirty {
			row.HeldUntil = stored[row.Key].HeldUntil // writes keep the hold
			put(row)
		}
		if w, g := want.NextAt(), got.NextAt(); !w.Equal(g) {
			t.Fatalf("step %d: NextAt = %v, want %v", step, g, w)
		}
		next = want.NextAt()
	}
}

// dbTime is t as the database stores it: microseconds.
func dbTime(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }

func maps(m map[string]store.Rate) map[string]store.Rate {
	out := make(map[string]store.Rate, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
