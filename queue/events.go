package queue

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// eventBatchWindow is how long the writer gathers events before one transaction stores them.
const eventBatchWindow = 5 * time.Millisecond

// eventWriter stores events in batches, so a token stream does not cost one transaction
// per token.
type eventWriter struct {
	e       *Engine
	mu      sync.Mutex
	pending []*spool.Event
	drops   map[string]int64 // run id -> drop its output events through this seq
	kick    chan struct{}
	// flushMu orders flushes and finishes: a run's events are stored no later than the
	// transaction that ends it.
	flushMu sync.Mutex
}

func newEventWriter(e *Engine) *eventWriter {
	return &eventWriter{e: e, kick: make(chan struct{}, 1)}
}

func (w *eventWriter) add(ev *spool.Event) {
	w.mu.Lock()
	w.pending = append(w.pending, ev)
	n := len(w.pending)
	w.mu.Unlock()
	if n == 1 || n >= 512 {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// dropOutput asks for a run's output events through seq to be deleted once stored.
func (w *eventWriter) dropOutput(runID string, seq int64) {
	w.mu.Lock()
	w.dropLocked(runID, seq)
	w.mu.Unlock()
}

func (w *eventWriter) dropLocked(runID string, seq int64) {
	if w.drops == nil {
		w.drops = map[string]int64{}
	}
	w.drops[runID] = max(w.drops[runID], seq)
}

// applyDrops deletes the output named by drops, taken with the events that hold it: those
// events are stored by now. Drops asked for after that snapshot wait for the next write.
func (w *eventWriter) applyDrops(ctx context.Context, drops map[string]int64) {
	for runID, seq := range drops {
		if err := w.e.store.EventDropOutput(ctx, runID, seq); err != nil {
			w.e.log.Error("dropping old output", "run", runID, "err", err)
		}
	}
}

// take returns the pending events and the output drops asked for so far. A drop is asked
// for after the event it names was added, so every event a drop names is in this snapshot
// or was in an earlier one.
func (w *eventWriter) take() ([]*spool.Event, map[string]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, d := w.pending, w.drops
	w.pending, w.drops = nil, nil
	return p, d
}

func (w *eventWriter) loop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			w.flush(context.WithoutCancel(ctx))
			return
		case <-w.kick:
		}
		timer.Reset(eventBatchWindow)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		w.flush(context.WithoutCancel(ctx))
	}
}

// flush stores every pending event now.
func (w *eventWriter) flush(ctx context.Context) {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	evs, drops := w.take()
	if len(evs) == 0 {
		w.applyDrops(context.WithoutCancel(ctx), drops) // what they name was stored earlier
		return
	}
	// A reader that hangs up must not lose the batch: store it whatever the caller's context.
	if err := w.e.store.EventAppend(context.WithoutCancel(ctx), evs); err != nil {
		w.e.log.Error("storing events; keeping them for the next flush", "err", err, "count", len(evs))
		w.mu.Lock()
		w.pending = append(evs, w.pending...)
		for runID, seq := range drops {
			w.dropLocked(runID, seq)
		}
		w.mu.Unlock()
		return
	}
	w.applyDrops(context.WithoutCancel(ctx), drops)
}

// finisher ends attempts in batches: concurrent finishes share one transaction.
type finisher struct {
	e       *Engine
	ch      chan *finishReq
	stopped chan struct{} // closed when the loop has ended
}

type finishReq struct {
	p      *store.RunFinishParams
	events []*spool.Event
	done   chan *spool.Run
}

func newFinisher(e *Engine) *finisher {
	return &finisher{e: e, ch: make(chan *finishReq, 1024), stopped: make(chan struct{})}
}

// finish stores the outcome and returns the updated run, or nil when the run was no longer
// this node's (its lease expired and another node took it over).
func (f *finisher) finish(p *store.RunFinishParams, events []*spool.Event) *spool.Run {
	req := &finishReq{p: p, events: events, done: make(chan *spool.Run, 1)}
	select {
	case f.ch <- req:
	case <-f.stopped:
		// A handler abandoned at shutdown that returned late: record it directly (the
		// store may already be closed, in which case the outcome is lost like a crash's).
		f.commit(context.Background(), []*finishReq{req})
		return <-req.done
	}
	select {
	case r := <-req.done:
		return r
	case <-f.stopped:
		select {
		case r := <-req.done:
			return r
		default:
			return nil
		}
	}
}

func (f *finisher) loop(ctx context.Context) {
	defer close(f.stopped)
	for {
		var first *finishReq
		select {
		case <-ctx.Done():
			// Finish what was handed over before the stop.
			for {
				select {
				case r := <-f.ch:
					f.commit(context.WithoutCancel(ctx), []*finishReq{r})
				default:
					return
				}
			}
		case first = <-f.ch:
		}
		batch := []*finishReq{first}
	drain:
		for len(batch) < 1000 {
			select {
			case r := <-f.ch:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		f.commit(context.WithoutCancel(ctx), batch)
	}
}

func (f *finisher) commit(ctx context.Context, batch []*finishReq) {
	w := f.e.events
	w.flushMu.Lock()
	evs, drops := w.take()
	ps := make([]*store.RunFinishParams, len(batch))
	for i, r := range batch {
		ps[i] = r.p
		evs = append(evs, r.events...)
	}
	var runs []*spool.Run
	var err error
	for try := 0; try < 10; try++ {
		runs, err = f.e.store.RunFinishMany(ctx, evs, ps)
		if err == nil || f.e.isClosed() {
			break
		}
		f.e.log.Error("recording run outcomes", "err", err, "try", try+1)
		time.Sleep(time.Duration(try+1) * 50 * time.Millisecond)
	}
	if err == nil {
		w.applyDrops(ctx, drops)
	}
	w.flushMu.Unlock()
	for i, r := range batch {
		var run *spool.Run
		if err == nil && i < len(runs) {
			run = runs[i]
		}
		r.done <- run
	}
}

// broker hands events to live subscribers from memory and tells them when to read the store.
type broker struct {
	e    *Engine
	mu   sync.Mutex
	subs map[string]map[*Subscription]struct{}
}

func newBroker(e *Engine) *broker {
	return &broker{e: e, subs: map[string]map[*Subscription]struct{}{}}
}

func (b *broker) publish(ev *spool.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs[ev.RunID] {
		select {
		case s.live <- ev:
		default:
			s.lagged = true
			s.signal()
		}
	}
}

// poke tells a run's subscribers that the store has news for them.
func (b *broker) poke(runID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs[runID] {
		s.signal()
	}
}

func (b *broker) add(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.subs[s.runID]
	if m == nil {
		m = map[*Subscription]struct{}{}
		b.subs[s.runID] = m
	}
	m[s] = struct{}{}
}

func (b *broker) remove(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs[s.runID], s)
	if len(b.subs[s.runID]) == 0 {
		delete(b.subs, s.runID)
	}
}

func (b *broker) closeAll() {
	b.mu.Lock()
	var all []*Subscription
	for _, m := range b.subs {
		for s := range m {
			all = append(all, s)
		}
	}
	b.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
}

// Subscription is a live view of one run's events. Events arrive on C in seq order, with
// none missing and none repeated; C closes after the run's terminal event, or when the
// subscription is closed.
type Subscription struct {
	// C delivers the events.
	C <-chan *spool.Event

	runID  string
	live   chan *spool.Event
	poked  chan struct{}
	lagged bool // guarded by broker.mu
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Subscription) signal() {
	select {
	case s.poked <- struct{}{}:
	default:
	}
}

// Close ends the subscription and waits for its goroutine to finish.
func (s *Subscription) Close() {
	s.cancel()
	<-s.done
}

// Subscribe streams a run's events after seq afterSeq: first the stored ones, then live ones.
// A slow reader never blocks the run: when it falls behind, the missing events are read
// from the store.
func (e *Engine) Subscribe(ctx context.Context, runID string, afterSeq int64) (*Subscription, error) {
	if _, err := e.store.RunGet(ctx, runID); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *spool.Event)
	s := &Subscription{C: out, runID: runID, live: make(chan *spool.Event, 1024),
		poked: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	e.broker.add(s)
	go func() {
		defer close(s.done)
		defer close(out)
		defer e.broker.remove(s)
		e.streamRun(ctx, s, out, afterSeq)
	}()
	return s, nil
}

func (e *Engine) streamRun(ctx context.Context, s *Subscription, out chan<- *spool.Event, last int64) {
	deliver := func(ev *spool.Event) (more bool) {
		select {
		case out <- ev:
			last = ev.Seq
			return !ev.Type.IsTerminal()
		case <-ctx.Done():
			return false
		}
	}
	catchUp := func() (more bool) {
		e.events.flush(ctx)
		evs, err := e.store.EventList(ctx, s.runID, last, 0)
		if err != nil {
			return ctx.Err() == nil
		}
		// Merge in what waits in the live buffer: events the store no longer holds (output
		// dropped past the cap) reach a subscriber that was attached when they happened.
	drain:
		for {
			select {
			case ev := <-s.live:
				if ev.Seq > last {
					evs = append(evs, ev)
				}
			default:
				break drain
			}
		}
		slices.SortStableFunc(evs, func(a, b *spool.Event) int { return cmp.Compare(a.Seq, b.Seq) })
		for _, ev := range evs {
			if ev.Seq <= last {
				continue // a duplicate of one just delivered
			}
			if !deliver(ev) {
				return false
			}
		}
		return true
	}
	// runsHere reports whether the run executes on this node: then every event reaches the
	// subscriber from memory, and the store is read only after falling behind.
	runsHere := func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		_, ok := e.active[s.runID]
		return ok
	}
	finished := func() bool {
		run, err := e.store.RunGet(ctx, s.runID)
		return err != nil || run.State.IsTerminal()
	}
	if !catchUp() {
		return
	}
	if finished() {
		catchUp()
		return
	}
	poll := time.NewTicker(e.cfg.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.live:
			if ev.Seq <= last {
				continue
			}
			e.broker.mu.Lock()
			lagged := s.lagged
			s.lagged = false
			e.broker.mu.Unlock()
			if ev.Seq == last+1 && !lagged {
				if !deliver(ev) {
					return
				}
				continue
			}
			if !catchUp() {
				return
			}
		case <-s.poked:
			e.broker.mu.Lock()
			lagged := s.lagged
			s.lagged = false
			e.broker.mu.Unlock()
			if !lagged && runsHere() {
				continue // live events from memory are complete; the store may have dropped some
			}
			if !catchUp() {
				return
			}
		case <-poll.C:
			if runsHere() {
				continue
			}
			if !catchUp() {
				return
			}
			if finished() {
				catchUp()
				return
			}
		}
	}
}
