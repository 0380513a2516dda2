package postgres

import (
	"sync"
	"time"
)

// submitWindow is the shortest time between two submit notifications of one store.
const submitWindow = time.Millisecond

// submitRetry is the wait before a trailing submit notification that failed is sent again.
const submitRetry = 100 * time.Millisecond

// submitNotifier coalesces the TopicSubmit notifications of one store's submits.
//
// In PostgreSQL 15 a transaction that has sent a NOTIFY holds a database-wide lock from just
// before its commit until the commit ends, so submits that all notify commit one at a time,
// each with its own WAL flush. Instead, at most one submit per window carries the
// notification in its own transaction ([Store.claimSubmitNote]). A submit refused it commits
// without one and then calls [Store.submitSkipped], which sends a notification alone (no
// write, so no WAL flush under the lock) once the window has passed. Every submit is
// therefore followed, within about a window, by a notification sent after its commit, and
// other nodes never miss it. The submitting node wakes its own dispatcher directly.
type submitNotifier struct {
	mu      sync.Mutex
	last    time.Time // when the latest submit notification was claimed or sent alone
	pending bool      // a submit committed without a notification sent after it
	armed   bool      // a trailing notification is scheduled or being sent
}

// claimSubmitNote reports whether a submit that made runs claimable should carry the
// TopicSubmit notification in its own transaction. When it returns false, the caller must
// call submitSkipped once that transaction has committed.
func (s *Store) claimSubmitNote() bool {
	c := &s.submits
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed || now.Sub(c.last) < submitWindow {
		return false
	}
	c.last = now
	return true
}

// submitSkipped records that a submit committed claimable runs without a notification, and
// makes sure that one is sent after it: once the window since the last one has passed.
func (s *Store) submitSkipped() {
	c := &s.submits
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = true
	if !c.armed {
		c.armed = true
		time.AfterFunc(untilWindowEnds(c.last), s.sendSubmitNote)
	}
}

// sendSubmitNote sends the trailing submit notification, and schedules another when a
// submit committed without one while it was being sent (or when sending failed).
func (s *Store) sendSubmitNote() {
	c := &s.submits
	if s.ctx.Err() != nil { // closed: nobody is left to notify from this store
		return
	}
	c.mu.Lock()
	c.pending = false
	c.last = time.Now()
	c.mu.Unlock()

	var n notes
	n.runnable()
	err := n.send(s.ctx, s.pool, s.channel)

	c.mu.Lock()
	defer c.mu.Unlock()
	wait := untilWindowEnds(c.last)
	if err != nil {
		c.pending = true
		wait = submitRetry
	}
	if !c.pending || s.ctx.Err() != nil {
		c.armed = false
		return
	}
	time.AfterFunc(wait, s.sendSubmitNote)
}

// untilWindowEnds is how long until a window that began at last ends (at most a window).
func untilWindowEnds(last time.Time) time.Duration {
	return min(max(submitWindow-time.Since(last), 0), submitWindow)
}
