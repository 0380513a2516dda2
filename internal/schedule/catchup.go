package schedule

import (
	"fmt"
	"time"
)

// Catchup says what to do with ticks that passed while no node could fire them.
type Catchup string

// The catch-up policies.
const (
	// CatchupNone fires the latest passed tick only when it is at most Grace late, and
	// otherwise waits for the next tick. The default.
	CatchupNone Catchup = "none"
	// CatchupLast fires the latest passed tick, however late, once.
	CatchupLast Catchup = "last"
	// CatchupAll fires every passed tick, oldest first, at most MaxBatch per pass.
	CatchupAll Catchup = "all"
)

// Overlap says whether a tick starts a run while the schedule's previous run is active.
type Overlap string

// The overlap policies.
const (
	OverlapAllow Overlap = "allow" // start the run anyway (the default)
	OverlapSkip  Overlap = "skip"  // skip the tick while a run of the schedule is active
)

// Grace is how late a tick may fire under CatchupNone: the scheduler waking a little late
// (a busy node, a failover) is not an outage.
const Grace = time.Minute

// MaxBatch bounds the ticks fired in one pass under CatchupAll; the rest fire in the
// following passes, so no tick is lost and no transaction grows without bound.
const MaxBatch = 1000

// ParseCatchup reads a catch-up policy; "" is CatchupNone.
func ParseCatchup(s string) (Catchup, error) {
	switch Catchup(s) {
	case "":
		return CatchupNone, nil
	case CatchupNone, CatchupLast, CatchupAll:
		return Catchup(s), nil
	}
	return "", fmt.Errorf("catchup: unknown policy %q (want none, last or all)", s)
}

// ParseOverlap reads an overlap policy; "" is OverlapAllow.
func ParseOverlap(s string) (Overlap, error) {
	switch Overlap(s) {
	case "":
		return OverlapAllow, nil
	case OverlapAllow, OverlapSkip:
		return Overlap(s), nil
	}
	return "", fmt.Errorf("overlap: unknown policy %q (want allow or skip)", s)
}

// Plan is what to do for a schedule at one moment.
type Plan struct {
	// Fire lists the ticks to start runs for, oldest first.
	Fire []time.Time
	// Missed reports that passed ticks were dropped by the policy.
	Missed bool
	// Next is the schedule's next tick after this pass (it is not after now when a
	// CatchupAll pass stopped at MaxBatch), zero when the schedule never fires again.
	Next time.Time
}

// Due plans a pass at now for a schedule whose earliest unfired tick is next (a fire time
// of s). Ticks in [next, now] have passed; policy decides which of them fire.
func Due(s *Spec, next, now time.Time, policy Catchup) Plan {
	if next.IsZero() || next.After(now) {
		return Plan{Next: next}
	}
	if policy == CatchupAll {
		var p Plan
		t := next
		for !t.IsZero() && !t.After(now) && len(p.Fire) < MaxBatch {
			p.Fire = append(p.Fire, t)
			t = s.Next(t)
		}
		p.Next = t
		return p
	}
	p := Plan{Next: s.Next(now)}
	latest, ok := s.Latest(next, now)
	if !ok {
		latest = next // next is not a tick of s (its spec changed): treat it as one
	}
	p.Missed = latest.After(next)
	if policy == CatchupLast || now.Sub(latest) <= Grace {
		p.Fire = []time.Time{latest}
	} else {
		p.Missed = true
	}
	return p
}
