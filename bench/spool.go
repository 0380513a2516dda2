package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// spoolSystem runs the workloads on Spool's engine (package queue), in this process.
type spoolSystem struct {
	workers int
	// cpuProfile, when set, receives a CPU profile of the first timed work-rate drain.
	cpuProfile string
	profiled   map[string]bool // by backend
}

func (s *spoolSystem) name() string    { return "spool" }
func (s *spoolSystem) setting() string { return "" }

func noop(context.Context, *spool.Run) (any, error) { return nil, nil }

// newEngine opens a Spool engine on db with 100 (or s.workers) workers and no queue limit.
func (s *spoolSystem) newEngine(ctx context.Context, db *database, tweak func(*queue.Config)) (*queue.Engine, error) {
	cfg := queue.Config{DB: db.spoolDB(), Limits: spool.Limits{Global: s.workers}, MaxQueueSize: -1}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := queue.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("opening spool: %w", err)
	}
	e.Register("noop", queue.HandlerFunc(noop))
	if err := db.settle(ctx); err != nil {
		_ = e.Stop(ctx)
		return nil, err
	}
	return e, nil
}

func (s *spoolSystem) insertOne(ctx context.Context, b *backend, n int) (float64, error) {
	db, err := b.fresh(ctx, "spool")
	if err != nil {
		return 0, err
	}
	defer db.drop()
	e, err := s.newEngine(ctx, db, nil) // not started: a client that does not work runs
	if err != nil {
		return 0, err
	}
	defer e.Stop(context.WithoutCancel(ctx))
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, _, err := e.Submit(ctx, &spool.SubmitRequest{Recipe: "noop"}); err != nil {
			return 0, fmt.Errorf("submit %d: %w", i, err)
		}
	}
	return rate(n, time.Since(start)), nil
}

func (s *spoolSystem) insertBatch(ctx context.Context, b *backend, n int) (float64, error) {
	db, err := b.fresh(ctx, "spool")
	if err != nil {
		return 0, err
	}
	defer db.drop()
	e, err := s.newEngine(ctx, db, nil)
	if err != nil {
		return 0, err
	}
	defer e.Stop(context.WithoutCancel(ctx))
	start := time.Now()
	if err := submitNoops(ctx, e, n, nil); err != nil {
		return 0, err
	}
	return rate(n, time.Since(start)), nil
}

// submitNoops submits n noop runs in batches of 1,000 with SubmitMany; each request is
// shaped by shape when it is set.
func submitNoops(ctx context.Context, e *queue.Engine, n int, shape func(*spool.SubmitRequest)) error {
	reqs := make([]*spool.SubmitRequest, 0, batchSize)
	for i := 0; i < n; i++ {
		r := &spool.SubmitRequest{Recipe: "noop"}
		if shape != nil {
			shape(r)
		}
		reqs = append(reqs, r)
		if len(reqs) == batchSize || i == n-1 {
			if _, err := e.SubmitMany(ctx, reqs); err != nil {
				return fmt.Errorf("submitting a batch: %w", err)
			}
			reqs = reqs[:0]
		}
	}
	return nil
}

// completionCounter closes done when the n-th run completes, and remembers the first run
// that did not succeed.
type completionCounter struct {
	n      int64
	seen   atomic.Int64
	done   chan struct{}
	failed atomic.Pointer[spool.Run]
}

func newCompletionCounter(n int) *completionCounter {
	return &completionCounter{n: int64(n), done: make(chan struct{})}
}

// onComplete is queue.Config.OnComplete: it runs after the finishing transaction committed.
func (c *completionCounter) onComplete(r *spool.Run) {
	if r.State != spool.StateSucceeded {
		c.failed.CompareAndSwap(nil, r)
	}
	if c.seen.Add(1) == c.n {
		close(c.done)
	}
}

func (c *completionCounter) wait(ctx context.Context) error {
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("%d of %d runs completed: %w", c.seen.Load(), c.n, ctx.Err())
	}
	if r := c.failed.Load(); r != nil {
		return fmt.Errorf("run %s ended %s: %s", r.ID, r.State, r.Error)
	}
	return nil
}

func (s *spoolSystem) workRate(ctx context.Context, b *backend, n int) (drainResult, error) {
	return s.drain(ctx, b, n, nil)
}

// drainResult is the outcome of one timed drain.
type drainResult struct {
	rate float64 // runs per second
	cpu  float64 // microseconds of this process's CPU per run (0 where not measured)
}

// cpuClock measures this process's CPU time over a drain of n runs.
type cpuClock struct{ start time.Duration }

func startCPUClock() cpuClock { return cpuClock{processCPU()} }

func (c cpuClock) perRun(n int) float64 {
	return float64(processCPU()-c.start) / float64(time.Microsecond) / float64(n)
}

// drain pre-inserts n runs (after prefill, when set, has filled the database), then times
// from Start until the n-th completion is persisted.
func (s *spoolSystem) drain(ctx context.Context, b *backend, n int, prefill func(context.Context, *queue.Engine) error) (drainResult, error) {
	db, err := b.fresh(ctx, "spool")
	if err != nil {
		return drainResult{}, err
	}
	defer db.drop()
	c := newCompletionCounter(n)
	e, err := s.newEngine(ctx, db, func(cfg *queue.Config) { cfg.OnComplete = c.onComplete })
	if err != nil {
		return drainResult{}, err
	}
	defer e.Stop(context.WithoutCancel(ctx))
	if prefill != nil {
		if err := prefill(ctx, e); err != nil {
			return drainResult{}, err
		}
	}
	if err := submitNoops(ctx, e, n, nil); err != nil {
		return drainResult{}, err
	}
	return s.timeDrain(ctx, b, e, c, b.kind)
}

// drainBehindScheduled is the work rate while scheduled runs wait: scheduled runs due in
// an hour are stored first, then n runs to drain.
func (s *spoolSystem) drainBehindScheduled(ctx context.Context, b *backend, n, scheduled int) (drainResult, error) {
	return s.drain(ctx, b, n, func(ctx context.Context, e *queue.Engine) error {
		return submitNoops(ctx, e, scheduled, func(r *spool.SubmitRequest) { r.Delay = spool.Duration(time.Hour) })
	})
}

// drainBehindRateLimited is the work rate while rate-limited agents wait: agents agents
// limited to one run an hour, each with perAgent urgent runs queued ahead of the work, have
// spent their token before the work is inserted, so every claim passes their backlog by.
func (s *spoolSystem) drainBehindRateLimited(ctx context.Context, b *backend, n, agents, perAgent int) (drainResult, error) {
	db, err := b.fresh(ctx, "spool")
	if err != nil {
		return drainResult{}, err
	}
	defer db.drop()
	rates := make(map[string]queue.Rate, agents)
	agent := func(i int) string { return fmt.Sprintf("limited%04d", i%agents) }
	for i := range agents {
		rates[agent(i)] = queue.Rate{Limit: 1, Per: time.Hour}
	}
	var limited atomic.Int64
	spent := make(chan struct{})
	c := newCompletionCounter(n)
	tweak := func(cfg *queue.Config) {
		cfg.AgentRates = rates
		cfg.OnComplete = func(r *spool.Run) {
			if r.Recipe != "limited" {
				c.onComplete(r)
			} else if limited.Add(1) == int64(agents) {
				close(spent)
			}
		}
	}
	open := func() (*queue.Engine, error) {
		e, err := s.newEngine(ctx, db, tweak)
		if err == nil {
			e.Register("limited", queue.HandlerFunc(noop))
		}
		return e, err
	}

	// The background: each agent's first run spends its token; the others wait.
	e, err := open()
	if err != nil {
		return drainResult{}, err
	}
	urgent := spool.PriorityUrgent
	reqs := make([]*spool.SubmitRequest, 0, batchSize)
	for i := 0; i < agents*perAgent; i++ {
		reqs = append(reqs, &spool.SubmitRequest{Recipe: "limited", Agent: agent(i), Priority: &urgent})
		if len(reqs) == batchSize || i == agents*perAgent-1 {
			if _, err := e.SubmitMany(ctx, reqs); err != nil {
				_ = e.Stop(ctx)
				return drainResult{}, fmt.Errorf("submitting rate-limited runs: %w", err)
			}
			reqs = reqs[:0]
		}
	}
	err = e.Start(ctx)
	if err == nil {
		select {
		case <-spent:
		case <-ctx.Done():
			err = fmt.Errorf("%d of %d rate-limited agents started a run: %w", limited.Load(), agents, ctx.Err())
		}
	}
	if serr := e.Stop(ctx); err == nil {
		err = serr
	}
	if err != nil {
		return drainResult{}, err
	}

	// The work, drained past the waiting backlog.
	if e, err = open(); err != nil {
		return drainResult{}, err
	}
	defer e.Stop(context.WithoutCancel(ctx))
	if err := submitNoops(ctx, e, n, nil); err != nil {
		return drainResult{}, err
	}
	r, err := s.timeDrain(ctx, b, e, c, b.kind)
	if err == nil && limited.Load() != int64(agents) {
		err = fmt.Errorf("%d rate-limited runs ran, want %d (one per agent)", limited.Load(), agents)
	}
	return r, err
}

// timeDrain starts e and returns the completions per second until c has seen all its runs.
// profile names the CPU profile taken when one is asked for.
func (s *spoolSystem) timeDrain(ctx context.Context, b *backend, e *queue.Engine, c *completionCounter, profile string) (drainResult, error) {
	stopProfile, err := s.startProfile(profile)
	if err != nil {
		return drainResult{}, err
	}
	var sampler *waitSampler
	if b.waits && b.kind == postgresBackend {
		sampler = b.startWaitSampler(ctx, spoolAppName, 10*time.Millisecond)
	}
	cpu := startCPUClock()
	start := time.Now()
	err = e.Start(ctx)
	if err == nil {
		err = c.wait(ctx)
	} else {
		err = fmt.Errorf("starting spool: %w", err)
	}
	elapsed := time.Since(start)
	res := drainResult{rate: rate(int(c.n), elapsed), cpu: cpu.perRun(int(c.n))}
	stopProfile()
	if sampler != nil {
		sampler.stop("Spool's work-rate drain")
	}
	if err != nil {
		return drainResult{}, err
	}
	return res, nil
}

// startProfile starts the CPU profile of the first drain per backend when one is asked for.
func (s *spoolSystem) startProfile(kind string) (stop func(), err error) {
	if s.cpuProfile == "" || s.profiled[kind] {
		return func() {}, nil
	}
	if s.profiled == nil {
		s.profiled = map[string]bool{}
	}
	s.profiled[kind] = true
	f, err := os.Create(profileName(s.cpuProfile, kind))
	if err != nil {
		return nil, fmt.Errorf("creating the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting the CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func (s *spoolSystem) latency(ctx context.Context, b *backend, p latencyPlan) ([]time.Duration, error) {
	db, err := b.fresh(ctx, "spool")
	if err != nil {
		return nil, err
	}
	defer db.drop()
	rec := newStartRecorder(p.count())
	e, err := s.newEngine(ctx, db, nil)
	if err != nil {
		return nil, err
	}
	defer e.Stop(context.WithoutCancel(ctx))
	e.Register("latency", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		var in struct {
			Seq int `json:"seq"`
		}
		if err := json.Unmarshal(r.Input, &in); err != nil {
			return nil, err
		}
		rec.started(in.Seq)
		return nil, nil
	}))
	if err := e.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting spool: %w", err)
	}
	return p.run(ctx, rec, func(ctx context.Context, seq int) error {
		_, _, err := e.Submit(ctx, &spool.SubmitRequest{Recipe: "latency", Input: json.RawMessage(`{"seq":` + strconv.Itoa(seq) + `}`)})
		return err
	})
}

// latencyPlan is the open-loop schedule of the latency workload.
type latencyPlan struct {
	settle   time.Duration // after the start, before the first insert
	perSec   int
	duration time.Duration
}

func (p latencyPlan) count() int { return int(float64(p.perSec) * p.duration.Seconds()) }

// run waits p.settle, then calls insert for seq 0..count-1 at their scheduled times, each
// in its own goroutine so that a slow insert delays no other (open loop), and returns per
// run the time from its insert call returning to its start.
func (p latencyPlan) run(ctx context.Context, rec *startRecorder, insert func(context.Context, int) error) ([]time.Duration, error) {
	select {
	case <-time.After(p.settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	n := p.count()
	interval := time.Second / time.Duration(p.perSec)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	begin := time.Now()
	for seq := 0; seq < n; seq++ {
		if d := time.Until(begin.Add(time.Duration(seq) * interval)); d > 0 {
			time.Sleep(d) // the schedule itself, not a wait for state
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := insert(ctx, seq); err != nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("insert %d: %w", seq, err) })
				return
			}
			rec.returned(seq)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := rec.wait(ctx); err != nil {
		return nil, err
	}
	return rec.latencies(), nil
}

// startRecorder keeps, per sequence number, when its insert returned and when its handler
// started, on the monotonic clock.
type startRecorder struct {
	base     time.Time
	ret      []atomic.Int64 // nanoseconds since base, +1 so that 0 means unset
	start    []atomic.Int64
	left     atomic.Int64
	all      chan struct{}
	dupStart atomic.Int64
}

func newStartRecorder(n int) *startRecorder {
	r := &startRecorder{base: time.Now(), ret: make([]atomic.Int64, n), start: make([]atomic.Int64, n), all: make(chan struct{})}
	r.left.Store(int64(n))
	return r
}

func (r *startRecorder) returned(seq int) { r.ret[seq].Store(int64(time.Since(r.base)) + 1) }

func (r *startRecorder) started(seq int) {
	if seq < 0 || seq >= len(r.start) {
		return
	}
	if !r.start[seq].CompareAndSwap(0, int64(time.Since(r.base))+1) {
		r.dupStart.Add(1)
		return
	}
	if r.left.Add(-1) == 0 {
		close(r.all)
	}
}

func (r *startRecorder) wait(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	select {
	case <-r.all:
	case <-ctx.Done():
		return fmt.Errorf("%d runs never started: %w", r.left.Load(), ctx.Err())
	}
	if n := r.dupStart.Load(); n > 0 {
		return errors.New("a run started twice")
	}
	return nil
}

func (r *startRecorder) latencies() []time.Duration {
	out := make([]time.Duration, len(r.start))
	for i := range r.start {
		out[i] = time.Duration(r.start[i].Load() - r.ret[i].Load())
	}
	return out
}
