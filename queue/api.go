package queue

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/ids"
	"github.com/spool-run/spool/internal/store"
)

// Submit validates req, applies the recipe's and the server's defaults and stores a new run.
// With an idempotency key that matches an existing run it returns that run and existed=true.
func (e *Engine) Submit(ctx context.Context, req *spool.SubmitRequest) (run *spool.Run, existed bool, err error) {
	p, err := e.resolve(ctx, req)
	if err != nil {
		return nil, false, err
	}
	if e.cfg.MaxQueueSize > 0 && e.queuedApprox.Load()+1 >= int64(e.cfg.MaxQueueSize)*9/10 {
		p.MaxQueued = e.cfg.MaxQueueSize // near the limit: count exactly in the transaction
	}
	run, existed, err = e.store.RunInsert(ctx, p)
	if err != nil {
		return nil, false, err
	}
	if !existed {
		e.submitted(run)
	}
	return run, existed, nil
}

// SubmitMany stores many runs in one transaction. The queue-size limit is checked once for
// the whole batch.
func (e *Engine) SubmitMany(ctx context.Context, reqs []*spool.SubmitRequest) ([]*spool.Run, error) {
	ps := make([]*store.RunInsertParams, len(reqs))
	for i, req := range reqs {
		p, err := e.resolve(ctx, req)
		if err != nil {
			var se *spool.Error
			if errors.As(err, &se) {
				for j := range se.Fields {
					se.Fields[j].Field = "runs[" + strconv.Itoa(i) + "]." + se.Fields[j].Field
				}
			}
			return nil, err
		}
		ps[i] = p
	}
	if e.cfg.MaxQueueSize > 0 && e.queuedApprox.Load()+int64(len(ps)) > int64(e.cfg.MaxQueueSize) {
		st, err := e.store.RunStats(ctx, "")
		if err != nil {
			return nil, err
		}
		e.queuedApprox.Store(st.Queued + st.Paused)
		if st.Queued+st.Paused+int64(len(ps)) > int64(e.cfg.MaxQueueSize) {
			return nil, &spool.Error{Code: spool.CodeQueueFull, RetryAfter: 5,
				Message: "the queue is full (max_queue_size " + strconv.Itoa(e.cfg.MaxQueueSize) + "); retry later"}
		}
	}
	runs, err := e.store.RunInsertMany(ctx, ps)
	if err != nil {
		return nil, err
	}
	for i, r := range runs {
		if r.ID == ps[i].ID {
			e.submitted(r)
		}
	}
	return runs, nil
}

func (e *Engine) submitted(run *spool.Run) {
	if run.State == spool.StateQueued {
		e.queuedApprox.Add(1)
		e.signal()
	} else if run.State == spool.StateScheduled && run.RunAt != nil {
		e.noteWake(*run.RunAt)
	}
	if e.cfg.OnSubmit != nil {
		e.cfg.OnSubmit(run)
	}
}

// resolve validates a submit and turns it into insert parameters.
func (e *Engine) resolve(ctx context.Context, req *spool.SubmitRequest) (*store.RunInsertParams, error) {
	if req == nil {
		return nil, spool.Invalid("body", "a submit request is required")
	}
	name := strings.TrimSpace(req.Recipe)
	if name == "" {
		return nil, spool.Invalid("recipe_name", "is required")
	}
	rec, ok := e.Recipe(name)
	if !ok {
		return nil, &spool.Error{Code: spool.CodeUnknownRecipe, Fields: []spool.FieldError{{Field: "recipe_name", Reason: "unknown recipe"}},
			Message: "unknown recipe " + strconv.Quote(name) + "; recipes: " + strings.Join(e.RecipeNames(), ", ")}
	}
	now := e.now()
	p := &store.RunInsertParams{
		ID:             ids.NewRun(),
		Recipe:         name,
		Agent:          req.Agent,
		Workspace:      req.Workspace,
		SessionID:      req.SessionID,
		Priority:       spool.PriorityNormal,
		Input:          req.Input,
		Config:         req.Config,
		Metadata:       req.Metadata,
		RetryOf:        req.RetryOf,
		IdempotencyKey: req.IdempotencyKey,
		WebhookURL:     req.WebhookURL,
		WebhookEvents:  req.WebhookEvents,
		ScheduleID:     req.ScheduleID,
		ScheduledFor:   req.ScheduledFor,
		CreatedAt:      now,
		TimeoutSec:     req.TimeoutSec,
	}
	if p.Agent == "" {
		p.Agent = name
	}
	if p.Workspace == "" {
		p.Workspace = DefaultWorkspace
	}
	if err := checkName("agent", p.Agent); err != nil {
		return nil, err
	}
	if err := checkName("workspace", p.Workspace); err != nil {
		return nil, err
	}
	if len(p.SessionID) > 200 {
		return nil, spool.Invalid("session_id", "longer than 200 characters")
	}
	if len(p.IdempotencyKey) > 200 {
		return nil, spool.Invalid("idempotency_key", "longer than 200 characters")
	}
	if len(p.Input) == 0 {
		p.Input = json.RawMessage("null")
	}
	switch {
	case req.Priority != nil:
		if !req.Priority.Valid() {
			return nil, spool.Invalid("priority", "must be one of urgent, high, normal, low")
		}
		p.Priority = *req.Priority
	case rec.Priority != nil:
		p.Priority = *rec.Priority
	}
	if req.TimeoutSec < 0 || time.Duration(req.TimeoutSec)*time.Second > MaxTimeout {
		return nil, spool.Invalid("timeout", "must be between 0 and 2592000 seconds (30 days)")
	}
	if p.TimeoutSec == 0 {
		p.TimeoutSec = rec.TimeoutSec
	}
	switch {
	case req.MaxRetries != nil:
		if *req.MaxRetries < 0 || *req.MaxRetries > 100 {
			return nil, spool.Invalid("max_retries", "must be between 0 and 100")
		}
		p.MaxRetries = *req.MaxRetries
	case rec.MaxRetries != nil:
		p.MaxRetries = *rec.MaxRetries
	}
	scope := req.IdempotencyScope
	if scope == "" {
		scope = rec.IdempotencyScope
	}
	switch scope {
	case "":
		scope = spool.ScopeGlobal
	case spool.ScopeGlobal, spool.ScopeSession, spool.ScopeNone:
	default:
		return nil, spool.Invalid("idempotency_scope", "must be one of none, session, global")
	}
	if p.IdempotencyKey != "" {
		p.IdempotencyScope = scope
		p.IdemKey = store.IdemKey(p.Workspace, p.SessionID, scope, p.IdempotencyKey)
	}
	if p.WebhookURL == "" {
		p.WebhookURL = rec.WebhookURL
	}
	if len(p.WebhookEvents) == 0 {
		p.WebhookEvents = rec.WebhookEvents
	}
	for _, ev := range p.WebhookEvents {
		switch ev {
		case "completed", "succeeded", "failed", "cancelled", "timeout":
		default:
			return nil, spool.Invalid("webhook_events", "unknown event "+strconv.Quote(ev)+" (want completed, failed, cancelled, timeout)")
		}
	}
	if p.WebhookURL != "" && e.cfg.ValidateWebhookURL != nil {
		if err := e.cfg.ValidateWebhookURL(ctx, p.WebhookURL); err != nil {
			return nil, spool.Invalid("webhook_url", err.Error())
		}
	}
	if req.RunAt != nil && req.Delay != 0 {
		return nil, spool.Invalid("run_at", "give run_at or delay, not both")
	}
	if req.Delay < 0 || time.Duration(req.Delay) > MaxTimeout {
		return nil, spool.Invalid("delay", "must be between 0s and 720h")
	}
	if req.Delay > 0 {
		t := now.Add(time.Duration(req.Delay))
		p.RunAt = &t
	}
	if req.RunAt != nil {
		if req.RunAt.Sub(now) > MaxTimeout {
			return nil, spool.Invalid("run_at", "more than 30 days ahead")
		}
		if req.RunAt.After(now) {
			t := req.RunAt.UTC()
			p.RunAt = &t
		}
	}
	if rec.ValidateInput != nil {
		if err := rec.ValidateInput(p.Input); err != nil {
			var se *spool.Error
			if errors.As(err, &se) {
				return nil, se
			}
			return nil, spool.Invalid("input", err.Error())
		}
	}
	return p, nil
}

func checkName(field, v string) error {
	if len(v) > 200 {
		return spool.Invalid(field, "longer than 200 characters")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return spool.Invalid(field, "contains control characters")
		}
	}
	return nil
}

// Get returns one run.
func (e *Engine) Get(ctx context.Context, id string) (*spool.Run, error) {
	return e.store.RunGet(ctx, id)
}

// List returns a page of runs, newest first.
func (e *Engine) List(ctx context.Context, p spool.ListParams) (*spool.RunList, error) {
	if p.Page < 1 {
		p.Page = 1
	}
	if p.PageSize <= 0 {
		p.PageSize = 20
	}
	if p.PageSize > 1000 {
		return nil, spool.Invalid("page_size", "at most 1000")
	}
	runs, total, err := e.store.RunList(ctx, &p)
	if err != nil {
		return nil, err
	}
	if runs == nil {
		runs = []*spool.Run{}
	}
	return &spool.RunList{Runs: runs, Total: total, Page: p.Page, PageSize: p.PageSize}, nil
}

// Cancel cancels a run. A queued, scheduled or paused run ends cancelled at once; a running
// run has its context cancelled (on whichever node runs it) and ends cancelled. Cancelling
// a terminal run is a conflict error that carries the run's state.
func (e *Engine) Cancel(ctx context.Context, id string) (*spool.Run, error) {
	run, err := e.store.RunCancel(ctx, id, e.now())
	if err != nil {
		return nil, err
	}
	if run.State == spool.StateRunning {
		e.cancelLocal(id, errCancelled)
	} else if run.State.IsTerminal() {
		e.queuedApprox.Add(-1)
		e.completed(run)
	}
	return run, nil
}

// Retry creates a new run repeating a terminal one, linked by retry_of.
func (e *Engine) Retry(ctx context.Context, id string) (*spool.Run, error) {
	old, err := e.store.RunGet(ctx, id)
	if err != nil {
		return nil, err
	}
	if !old.State.IsTerminal() {
		return nil, &spool.Error{Code: spool.CodeConflict, State: old.State,
			Message: "run " + id + " is " + string(old.State) + "; only a finished run can be retried"}
	}
	prio := old.Priority
	retries := old.MaxRetries
	run, _, err := e.Submit(ctx, &spool.SubmitRequest{
		Recipe: old.Recipe, Input: old.Input, Config: old.Config, Metadata: old.Metadata,
		Priority: &prio, Agent: old.Agent, Workspace: old.Workspace, SessionID: old.SessionID,
		TimeoutSec: old.TimeoutSec, MaxRetries: &retries, WebhookURL: old.WebhookURL,
		WebhookEvents: old.WebhookEvents, RetryOf: old.ID,
	})
	return run, err
}

// Pause holds a queued or scheduled run.
func (e *Engine) Pause(ctx context.Context, id string) (*spool.Run, error) {
	run, err := e.store.RunPause(ctx, id, e.now())
	if err == nil {
		e.broker.poke(id)
	}
	return run, err
}

// Resume releases a paused run back to its original place in the queue.
func (e *Engine) Resume(ctx context.Context, id string) (*spool.Run, error) {
	run, err := e.store.RunResume(ctx, id, e.now())
	if err != nil {
		return nil, err
	}
	e.broker.poke(id)
	if run.State == spool.StateScheduled && run.RunAt != nil {
		e.noteWake(*run.RunAt)
	}
	e.signal()
	return run, nil
}

// Delete deletes a terminal run with its events.
func (e *Engine) Delete(ctx context.Context, id string) error {
	return e.store.RunDelete(ctx, id)
}

// Clear deletes terminal runs (older than p.OlderThan when set); with p.All it cancels
// active runs first. It returns how many runs it deleted.
func (e *Engine) Clear(ctx context.Context, p spool.ClearParams) (int64, error) {
	cp := &store.RunClearParams{All: p.All, Workspace: p.Workspace, Now: e.now()}
	if p.OlderThan < 0 {
		return 0, spool.Invalid("older_than", "must not be negative")
	}
	if p.OlderThan > 0 {
		cp.Before = e.now().Add(-p.OlderThan)
	}
	if p.All {
		n, err := e.store.RunClear(ctx, cp)
		// Runs executing here stop through the usual cancel path so their processes end;
		// a run already deleted by the clear is cancelled too.
		e.mu.Lock()
		var local []string
		for id := range e.active {
			local = append(local, id)
		}
		e.mu.Unlock()
		for _, id := range local {
			r, gerr := e.store.RunGet(ctx, id)
			if errors.Is(gerr, spool.ErrNotFound) || gerr == nil && r.CancelRequestedAt != nil {
				e.cancelLocal(id, errCancelled)
			}
		}
		return n, err
	}
	return e.store.RunClear(ctx, cp)
}

// Stats summarises runs (of one workspace when workspace is non-empty).
func (e *Engine) Stats(ctx context.Context, workspace string) (*spool.Stats, error) {
	st, err := e.store.RunStats(ctx, workspace)
	if err != nil {
		return nil, err
	}
	if workspace == "" {
		e.queuedApprox.Store(st.Queued + st.Paused)
	}
	st.Limits = e.Limits()
	return st, nil
}

// Events returns a run's stored events after seq afterSeq.
func (e *Engine) Events(ctx context.Context, runID string, afterSeq int64, limit int) ([]*spool.Event, error) {
	e.events.flush(ctx)
	return e.store.EventList(ctx, runID, afterSeq, limit)
}

// Webhooks lists a run's webhook deliveries with their attempts.
func (e *Engine) Webhooks(ctx context.Context, runID string) ([]*store.Delivery, error) {
	if _, err := e.store.RunGet(ctx, runID); err != nil {
		return nil, err
	}
	return e.store.WebhookList(ctx, runID)
}

// Nodes lists the nodes seen recently.
func (e *Engine) Nodes(ctx context.Context) ([]*store.Node, error) {
	return e.store.NodeList(ctx)
}

// Wait blocks until the run is terminal or ctx ends, and returns the run as last read.
func (e *Engine) Wait(ctx context.Context, id string) (*spool.Run, error) {
	for {
		ch := make(chan struct{})
		e.mu.Lock()
		e.waiters[id] = append(e.waiters[id], ch)
		e.mu.Unlock()
		run, err := e.store.RunGet(ctx, id)
		if err != nil || run.State.IsTerminal() {
			e.dropWaiter(id, ch)
			return run, err
		}
		t := time.NewTimer(e.cfg.PollInterval)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			e.dropWaiter(id, ch)
			return run, ctx.Err()
		}
		t.Stop()
		e.dropWaiter(id, ch)
	}
}

func (e *Engine) dropWaiter(id string, ch chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.waiters[id]
	if i := slices.Index(ws, ch); i >= 0 {
		ws = slices.Delete(ws, i, i+1)
	}
	if len(ws) == 0 {
		delete(e.waiters, id)
	} else {
		e.waiters[id] = ws
	}
}

// wakeWaiters wakes every Wait on id.
func (e *Engine) wakeWaiters(id string) {
	e.mu.Lock()
	ws := e.waiters[id]
	delete(e.waiters, id)
	e.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// completed runs the bookkeeping for a run that reached a terminal state.
func (e *Engine) completed(run *spool.Run) {
	e.wakeWaiters(run.ID)
	e.broker.poke(run.ID)
	if e.cfg.OnComplete != nil {
		e.cfg.OnComplete(run)
	}
}

// Ready reports whether the engine can serve: the database answers.
func (e *Engine) Ready(ctx context.Context) error {
	_, err := e.store.LimitsGet(ctx)
	return err
}
