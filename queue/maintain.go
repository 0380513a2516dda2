package queue

import (
	"context"
	"os"
	"time"

	"github.com/spool-run/spool/internal/store"
)

// maintainLoop renews leases and the node's heartbeat, rescues runs of dead nodes
// (PostgreSQL), deletes runs past their retention, and refreshes shared limits.
func (e *Engine) maintainLoop(ctx context.Context) {
	multi := e.store.DatabaseName() != "sqlite"
	host, _ := os.Hostname()
	startedAt := e.now()
	heartbeat := time.NewTicker(e.cfg.Heartbeat)
	defer heartbeat.Stop()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	e.sweep(ctx)
	e.beat(ctx, host, startedAt)
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			e.beat(ctx, host, startedAt)
			if multi {
				e.rescue(ctx)
				e.refreshLimits(ctx)
			}
		case <-sweep.C:
			e.sweep(ctx)
		}
	}
}

func (e *Engine) beat(ctx context.Context, host string, startedAt time.Time) {
	e.mu.Lock()
	ids := make([]string, 0, len(e.active))
	for id := range e.active {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	now := e.now()
	if err := e.store.NodeHeartbeat(ctx, &store.Node{ID: e.cfg.Node, Host: host, PID: os.Getpid(),
		StartedAt: startedAt, SeenAt: now, Running: len(ids)}); err != nil && ctx.Err() == nil {
		e.log.Error("node heartbeat", "err", err)
	}
	if len(ids) == 0 {
		return
	}
	cancels, err := e.store.RunHeartbeat(ctx, e.cfg.Node, ids, now.Add(e.cfg.Lease))
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("renewing leases", "err", err)
		}
		return
	}
	for _, id := range cancels {
		e.cancelLocal(id, errCancelled)
	}
}

func (e *Engine) rescue(ctx context.Context) {
	runs, err := e.store.RunRescue(ctx, &store.RunRescueParams{Now: e.now()})
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("rescuing runs of dead nodes", "err", err)
		}
		return
	}
	for _, r := range runs {
		e.log.Warn("rescued run whose node stopped renewing its lease", "run", r.ID, "state", r.State, "node", r.Node)
		if r.State.IsTerminal() {
			e.completed(r)
		}
	}
	if len(runs) > 0 {
		e.signal()
	}
}

func (e *Engine) refreshLimits(ctx context.Context) {
	l, err := e.store.LimitsGet(ctx)
	if err != nil {
		return
	}
	e.mu.Lock()
	if l.Agents == nil {
		l.Agents = e.limits.Agents
	}
	e.limits = l
	e.mu.Unlock()
}

func (e *Engine) sweep(ctx context.Context) {
	if e.cfg.Retention <= 0 {
		return
	}
	n, err := e.store.RunClear(ctx, &store.RunClearParams{Sweep: true, Before: e.now().Add(-e.cfg.Retention), Now: e.now()})
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("deleting runs past retention", "err", err)
		}
		return
	}
	if n > 0 {
		e.log.Info("deleted runs past retention", "count", n, "retention", e.cfg.Retention)
	}
}
