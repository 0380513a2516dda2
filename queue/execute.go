package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

var (
	errCancelled = errors.New("run cancelled")
	errTimeout   = errors.New("run timed out")
)

// execution is one attempt of a run on this node. It is the handler's reporter.
type execution struct {
	e      *Engine
	run    *spool.Run
	cancel context.CancelCauseFunc

	mu   sync.Mutex
	seq  int64
	done bool
	// Stored output is tracked in spans, oldest first, so the oldest can be dropped from the
	// store once the run's output passes MaxOutputBytes.
	outputSpans []outputSpan
	outputBytes int
	dropMarked  bool
	logBytes    int
	logCapped   bool
	prog        spool.Progress
	reported    bool // the handler reported progress
}

func (x *execution) nextEvent(t spool.EventType) *spool.Event {
	x.seq++
	return &spool.Event{RunID: x.run.ID, Seq: x.seq, Type: t, Time: x.e.now()}
}

func (x *execution) emit(ev *spool.Event) {
	x.e.events.add(ev)
	x.e.broker.publish(ev)
}

func (x *execution) output(text string) { x.chunk(spool.EventOutput, text) }
func (x *execution) log(text string)    { x.chunk(spool.EventLog, text) }

// outputSpan is a run of consecutive output events: the last one's seq and their size.
type outputSpan struct {
	through int64
	bytes   int
}

func (x *execution) chunk(t spool.EventType, text string) {
	x.mu.Lock()
	if x.done {
		x.mu.Unlock()
		return
	}
	limit := x.e.cfg.MaxOutputBytes
	if t == spool.EventLog {
		// Logs are capped by keeping their beginning.
		x.logBytes += len(text)
		if x.logBytes > limit {
			if !x.logCapped {
				x.logCapped = true
				ev := x.nextEvent(spool.EventLog)
				ev.Text = fmt.Sprintf("spool: log output beyond %d bytes is not kept\n", limit)
				x.emit(ev)
			}
			x.mu.Unlock()
			return
		}
	}
	ev := x.nextEvent(t)
	ev.Text = text
	x.emit(ev)
	if t == spool.EventOutput {
		x.keepOutput(ev.Seq, len(text))
	}
	x.mu.Unlock()
	if t == spool.EventOutput && x.e.cfg.OnOutput != nil {
		x.e.cfg.OnOutput(x.run.ID, text)
	}
}

// keepOutput accounts for a stored output event and drops the oldest output from the store
// once the run's output passes MaxOutputBytes, with one marker event saying so. Live
// subscribers have already seen what is dropped.
func (x *execution) keepOutput(seq int64, size int) {
	limit := x.e.cfg.MaxOutputBytes
	grain := limit / 1024 // spans of at least this size keep the bookkeeping small
	if n := len(x.outputSpans); n > 0 && x.outputSpans[n-1].bytes < grain {
		x.outputSpans[n-1].through = seq
		x.outputSpans[n-1].bytes += size
	} else {
		x.outputSpans = append(x.outputSpans, outputSpan{through: seq, bytes: size})
	}
	x.outputBytes += size
	if x.outputBytes <= limit {
		return
	}
	var through int64
	for x.outputBytes > limit && len(x.outputSpans) > 1 {
		through = x.outputSpans[0].through
		x.outputBytes -= x.outputSpans[0].bytes
		x.outputSpans = x.outputSpans[1:]
	}
	if through == 0 {
		return
	}
	x.e.events.dropOutput(x.run.ID, through)
	if !x.dropMarked {
		x.dropMarked = true
		ev := x.nextEvent(spool.EventLog)
		ev.Text = fmt.Sprintf("spool: output beyond %d bytes: the oldest output is dropped from the store\n", limit)
		x.emit(ev)
	}
}

func (x *execution) progressUpdate(u ProgressUpdate) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done {
		return
	}
	if u.Percentage != nil {
		x.prog.Percentage = min(max(*u.Percentage, 0), 100)
	}
	if u.Message != nil {
		x.prog.CurrentStep = *u.Message
	}
	if u.StepsCompleted != nil {
		x.prog.StepsCompleted = *u.StepsCompleted
	}
	if u.StepsTotal != nil {
		x.prog.StepsTotal = *u.StepsTotal
	}
	x.reported = true
	if u.Percentage == nil && x.prog.StepsTotal > 0 {
		x.prog.Percentage = min(100, 100*float64(x.prog.StepsCompleted)/float64(x.prog.StepsTotal))
	}
	p := x.prog
	ev := x.nextEvent(spool.EventProgress)
	ev.Progress = &p
	x.emit(ev)
}

// progress implements reporter.
func (x *execution) progress(u ProgressUpdate) { x.progressUpdate(u) }

func (e *Engine) startExecution(cr *store.ClaimedRun) {
	run := cr.Run
	x := &execution{e: e, run: run, seq: cr.LastSeq, prog: run.Progress}
	ctx, cancel := context.WithCancelCause(e.runCtx)
	x.cancel = cancel
	e.mu.Lock()
	e.active[run.ID] = x
	e.mu.Unlock()
	e.running.Add(1)
	e.execs.Add(1)
	// The claim stored the running status event; tell live subscribers.
	e.broker.publish(&spool.Event{RunID: run.ID, Seq: cr.LastSeq, Type: spool.EventStatus,
		Time: e.now(), Status: spool.StateRunning, Attempt: run.Attempt})
	if e.cfg.OnStart != nil {
		e.cfg.OnStart(run)
	}
	go func() {
		defer e.execs.Done()
		defer cancel(nil)
		e.execute(ctx, x)
	}()
}

type outcome struct {
	value any
	err   error
}

func (e *Engine) execute(ctx context.Context, x *execution) {
	run := x.run
	rec, ok := e.Recipe(run.Recipe)
	var out outcome
	if !ok || rec.Handler == nil {
		out.err = Permanent(CodedError(spool.CodeUnknownRecipe, fmt.Errorf("no handler registered for recipe %q on node %s", run.Recipe, e.cfg.Node)))
	} else {
		timeout := e.cfg.DefaultTimeout
		if run.TimeoutSec > 0 {
			timeout = time.Duration(run.TimeoutSec) * time.Second
		}
		tctx, tcancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
		defer tcancel()
		result := make(chan outcome, 1)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					result <- outcome{err: Permanent(CodedError(spool.CodePanic,
						fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())))}
				}
			}()
			v, err := rec.Handler.Work(withReporter(tctx, x), cloneRun(run))
			result <- outcome{v, err}
		}()
		select {
		case out = <-result:
		case <-tctx.Done():
			grace := time.NewTimer(e.cfg.CancelGrace)
			select {
			case out = <-result:
			case <-grace.C:
				out = outcome{err: fmt.Errorf("handler did not return within %s of being stopped; abandoned", e.cfg.CancelGrace)}
			}
			grace.Stop()
		}
		if cause := context.Cause(tctx); cause != nil {
			out.err = cause // cancel, timeout or shutdown decide the outcome, not the handler
			if out.err == context.Canceled {
				out.err = errCancelled
			}
		}
	}
	e.finish(x, out)
}

// finish records the outcome of an attempt.
func (e *Engine) finish(x *execution, out outcome) {
	run := x.run
	now := e.now()
	x.mu.Lock()
	x.done = true
	p := &store.RunFinishParams{ID: run.ID, Node: e.cfg.Node, Attempt: run.Attempt, Now: now}
	var events []*spool.Event
	status := func(s spool.State) {
		ev := x.nextEvent(spool.EventStatus)
		ev.Status = s
		ev.Attempt = run.Attempt
		events = append(events, ev)
	}
	var backoff *BackoffError
	switch {
	case errors.Is(out.err, errCancelled):
		p.State, p.Error, p.ErrorCode = spool.StateCancelled, "cancelled", spool.CodeCancelled
		status(p.State)
		events = append(events, x.nextEvent(spool.EventCancelled))
	case errors.Is(out.err, errShutdown):
		if run.Attempt <= run.MaxRetries {
			p.State, p.AvailableAt = spool.StateQueued, now
			status(p.State)
		} else {
			p.State, p.Error, p.ErrorCode = spool.StateFailed, "node shut down while the run was running", spool.CodeInterrupted
			status(p.State)
			ev := x.nextEvent(spool.EventError)
			ev.Error, ev.ErrorCode = p.Error, p.ErrorCode
			events = append(events, ev)
		}
	case out.err == nil:
		res, err := encodeResult(out.value)
		if err != nil {
			p.State, p.Error, p.ErrorCode = spool.StateFailed, "encoding result: "+err.Error(), spool.CodeHandlerError
			status(p.State)
			ev := x.nextEvent(spool.EventError)
			ev.Error, ev.ErrorCode = p.Error, p.ErrorCode
			events = append(events, ev)
			break
		}
		p.State, p.Result = spool.StateSucceeded, res
		prog := x.prog
		prog.Percentage = 100
		if prog.StepsTotal > 0 {
			prog.StepsCompleted = prog.StepsTotal
		}
		p.Progress = &prog
		if x.reported && prog != x.prog {
			// A run that reported progress shows it reaching the end. For one that never
			// did, the run's stored progress says 100 and the events add nothing to it.
			pe := x.nextEvent(spool.EventProgress)
			pe.Progress = &prog
			events = append(events, pe)
		}
		status(p.State)
		ev := x.nextEvent(spool.EventResult)
		ev.Result = res
		events = append(events, ev)
	case errors.As(out.err, &backoff):
		p.State, p.AvailableAt, p.KeepAttempt = spool.StateQueued, now.Add(backoff.After), true
		lg := x.nextEvent(spool.EventLog)
		lg.Text = fmt.Sprintf("spool: %v; agent %s held until %s\n", out.err, run.Agent, p.AvailableAt.Format(time.RFC3339))
		events = append(events, lg)
		status(p.State)
		e.hold(run.Agent, p.AvailableAt)
	default:
		code := errorCodeOf(out.err)
		if errors.Is(out.err, errTimeout) {
			code = spool.CodeTimeout
		}
		retryable := code != spool.CodeTimeout && !IsPermanent(out.err)
		if retryable && run.Attempt <= run.MaxRetries {
			p.State = spool.StateQueued
			p.AvailableAt = now.Add(e.cfg.RetryBackoff(run.Attempt))
			p.Error, p.ErrorCode = out.err.Error(), code
			lg := x.nextEvent(spool.EventLog)
			lg.Text = fmt.Sprintf("spool: attempt %d failed: %v; retrying at %s\n", run.Attempt, out.err, p.AvailableAt.Format(time.RFC3339Nano))
			events = append(events, lg)
			status(p.State)
		} else {
			p.State, p.Error, p.ErrorCode = spool.StateFailed, out.err.Error(), code
			if code == spool.CodeTimeout {
				p.Error = fmt.Sprintf("run timed out after %s", e.timeoutOf(run))
			}
			status(p.State)
			ev := x.nextEvent(spool.EventError)
			ev.Error, ev.ErrorCode = p.Error, p.ErrorCode
			events = append(events, ev)
		}
	}
	x.mu.Unlock()

	if backoff != nil {
		// Every node holds the agent, not only this one: store the hold before the run is
		// queued again.
		hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e.holdCluster(hctx, run.Agent, p.AvailableAt)
		cancel()
	}
	// The handler is done: free its slot now, so the next runs are claimed while this
	// outcome is stored. Claims leave finishing runs out of their limit counts.
	e.mu.Lock()
	e.finishing[run.ID] = struct{}{}
	e.mu.Unlock()
	e.finishingN.Add(1)
	e.running.Add(-1)
	e.signal()
	updated := e.finisher.finish(p, events)

	e.mu.Lock()
	delete(e.active, run.ID)
	delete(e.finishing, run.ID)
	e.mu.Unlock()
	e.finishingN.Add(-1)
	for _, ev := range events {
		e.broker.publish(ev)
	}
	if updated != nil {
		if updated.State.IsTerminal() {
			e.completed(updated)
		} else {
			e.queuedApprox.Add(1)
			e.broker.poke(run.ID)
			if updated.AvailableAt.After(now) {
				e.noteWake(updated.AvailableAt)
			}
		}
	}
	e.signal()
}

func (e *Engine) timeoutOf(run *spool.Run) time.Duration {
	if run.TimeoutSec > 0 {
		return time.Duration(run.TimeoutSec) * time.Second
	}
	return e.cfg.DefaultTimeout
}

// cancelLocal cancels a run executing on this node, if it is.
func (e *Engine) cancelLocal(id string, cause error) {
	e.mu.Lock()
	x := e.active[id]
	e.mu.Unlock()
	if x != nil {
		x.cancel(cause)
	}
}

func encodeResult(v any) (json.RawMessage, error) {
	switch r := v.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		if len(r) == 0 {
			return json.RawMessage("null"), nil
		}
		if !json.Valid(r) {
			return nil, errors.New("result is not valid JSON")
		}
		return r, nil
	}
	return json.Marshal(v)
}

func cloneRun(r *spool.Run) *spool.Run {
	c := *r
	return &c
}
