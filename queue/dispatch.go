package queue

import (
	"context"
	"time"

	"github.com/spool-run/spool/internal/store"
)

// dispatchLoop claims runs while slots are free and sleeps until something can change that:
// a submit, a finish, a notification from another node, the next due time of a delayed or
// backing-off run, or the next token of an empty rate-limit bucket. Due times come from
// the engine's clock (Config.Now); the sleep is in real time.
func (e *Engine) dispatchLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	poll := e.store.DatabaseName() != "sqlite"
	for {
		if ctx.Err() != nil || e.isStopping() {
			return
		}
		e.promoteDue(ctx)
		claimedAll := e.claim(ctx)

		// Sleep until woken, the next due time, or the fallback poll.
		wait := time.Hour
		if poll {
			wait = e.cfg.PollInterval
		}
		now := e.now()
		for _, n := range []int64{e.nextWake.Load(), e.rateWake.Load()} {
			if n != 0 {
				wait = min(wait, max(time.Unix(0, n).Sub(now), 0))
			}
		}
		if h := e.nextHeldRelease(); !h.IsZero() {
			wait = min(wait, max(h.Sub(now), 0))
		}
		if claimedAll {
			continue // there may be more to claim right away
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		e.gatherFinishes(ctx)
	}
}

// gatherFinishes waits up to a millisecond when only a few slots are free while many runs
// are running, so that one claim transaction starts several runs instead of one each: a
// claim costs about the same for one run as for a hundred.
func (e *Engine) gatherFinishes(ctx context.Context) {
	running := int(e.running.Load())
	free := e.freeSlots()
	if free <= 0 || running == 0 || free >= min(16, e.slots/4) {
		return
	}
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// promoteDue moves due scheduled runs to queued when the earliest known due time has come,
// and refreshes that time from the database.
func (e *Engine) promoteDue(ctx context.Context) {
	n := e.nextWake.Load()
	forced := e.forceCheck.Swap(false)
	if !forced && (n == 0 || time.Unix(0, n).After(e.now())) {
		return
	}
	e.nextWake.Store(0)
	now := e.now()
	if _, err := e.store.RunPromote(ctx, now); err != nil {
		e.log.Error("promoting scheduled runs", "err", err)
		e.nextWake.Store(now.Add(time.Second).UnixNano())
		return
	}
	e.refreshNextWake(ctx)
}

func (e *Engine) refreshNextWake(ctx context.Context) {
	t, ok, err := e.store.RunNextWake(ctx, e.now())
	if err != nil {
		e.log.Error("reading next due time", "err", err)
		return
	}
	if ok {
		e.noteWake(t)
	}
}

// claim starts as many runs as there are free slots; it reports whether it filled them all.
func (e *Engine) claim(ctx context.Context) bool {
	free := e.freeSlots()
	if free <= 0 {
		return false
	}
	now := e.now()
	var res store.ClaimResult
	// The claim runs to completion even when the loop is being stopped, so runs it moved to
	// running are always executed (and so finished or re-queued).
	claimed, err := e.store.RunClaim(context.WithoutCancel(ctx), &store.RunClaimParams{
		Node:       e.cfg.Node,
		Now:        now,
		LeaseUntil: now.Add(e.cfg.Lease),
		Max:        free,
		Limits:     e.Limits(),
		HeldAgents: e.heldAgents(now),
		Finishing:  e.finishingIDs(),
		Rates:      e.rateMap(),
		Result:     &res,
	})
	if err == nil {
		// Runs skipped for an empty bucket or a stored hold can start at res.NextAt.
		var n int64
		if !res.NextAt.IsZero() {
			n = res.NextAt.UnixNano()
		}
		e.rateWake.Store(n)
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("claiming runs", "err", err)
		}
		return false
	}
	if len(claimed) > 0 {
		e.queuedApprox.Add(-int64(len(claimed)))
	}
	for _, cr := range claimed {
		e.startExecution(cr)
	}
	return len(claimed) == free
}

// freeSlots is how many runs the node may start now. A finishing run's slot is free, but
// when the finisher falls more than a full set of slots behind, claims wait for it, so
// the outcomes waiting to be stored stay bounded.
func (e *Engine) freeSlots() int {
	return e.slots - int(e.running.Load()) - max(int(e.finishingN.Load())-e.slots, 0)
}

func (e *Engine) finishingIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.finishing) == 0 {
		return nil
	}
	ids := make([]string, 0, len(e.finishing))
	for id := range e.finishing {
		ids = append(ids, id)
	}
	return ids
}

// hold stops agent from starting runs until t (provider back-off).
func (e *Engine) hold(agent string, until time.Time) {
	e.mu.Lock()
	if until.After(e.held[agent]) {
		e.held[agent] = until
	}
	e.mu.Unlock()
	e.signal()
}

func (e *Engine) heldAgents(now time.Time) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for a, t := range e.held {
		if t.After(now) {
			out = append(out, a)
		} else {
			delete(e.held, a)
		}
	}
	return out
}

func (e *Engine) nextHeldRelease() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	var next time.Time
	for _, t := range e.held {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// notifyLoop reacts to other nodes' notifications (PostgreSQL).
func (e *Engine) notifyLoop(ctx context.Context, ch <-chan store.Notification) {
	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-ch:
			if !ok {
				return
			}
			switch n.Topic {
			case store.TopicSubmit:
				e.signal()
				e.refreshNextWake(ctx)
			case store.TopicFinish:
				e.signal()
				e.wakeWaiters(n.Payload)
				e.broker.poke(n.Payload)
			case store.TopicCancel:
				e.cancelLocal(n.Payload, errCancelled)
			case store.TopicEvent:
				e.broker.poke(n.Payload)
			case store.TopicSchedule:
				e.signalSchedules()
			}
		}
	}
}
