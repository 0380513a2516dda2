// Package queue is Spool's embeddable engine: it stores runs, schedules them by priority under
// concurrency limits, executes them with registered handlers, streams their events and
// recovers from crashes. The HTTP server is one user of it; any Go program can embed it.
//
//	e, err := queue.New(queue.Config{DB: "./.spool/spool.db"})
//	e.Register("hello", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
//		queue.Output(ctx, "hi\n")
//		return map[string]string{"greeting": "hi"}, nil
//	}))
//	err = e.Start(ctx)
//	run, _, err := e.Submit(ctx, &spool.SubmitRequest{Recipe: "hello"})
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxConcurrent  = 10
	DefaultMaxQueueSize   = 10000
	DefaultTimeout        = time.Hour
	DefaultRetention      = 168 * time.Hour
	DefaultCancelGrace    = 10 * time.Second
	DefaultLease          = 10 * time.Second
	DefaultHeartbeat      = 3 * time.Second
	DefaultMaxOutputBytes = 16 << 20
	DefaultWorkspace      = "default"
	// MaxTimeout is the largest timeout or delay accepted.
	MaxTimeout = 30 * 24 * time.Hour
)

// Config configures an Engine. The zero value of each field means its default.
type Config struct {
	// DB is a SQLite file path (default ./.spool/spool.db) or a postgres:// URL.
	DB string
	// Node names this process in leases and logs (default host-pid-random).
	Node string
	// Limits are the concurrency limits (Global defaults to 10; -1 means unlimited).
	Limits spool.Limits
	// AgentRates and WorkspaceRates are rate limits by agent or workspace name; the name "*"
	// applies to every agent (workspace) without a rate of its own. A recipe's Rate limits
	// the runs of that recipe. Every node of a cluster should be given the same rates: the
	// buckets are shared through the database, the rates are not.
	AgentRates, WorkspaceRates map[string]Rate
	// MaxQueueSize refuses submits beyond this many queued+paused runs (default 10000; -1 = no limit).
	MaxQueueSize int
	// DefaultTimeout bounds an attempt when neither the submit nor the recipe says (default 1h).
	DefaultTimeout time.Duration
	// Retention is how long terminal runs are kept (default 168h; -1 keeps them forever).
	Retention time.Duration
	// Workers is how many runs this node executes at once: -1 (default, also 0 when
	// APIOnly is false) follows the global limit; APIOnly disables execution.
	Workers int
	// APIOnly makes the engine serve submits and reads without executing runs.
	APIOnly bool
	// CancelGrace is how long a cancelled handler may take to return before it is abandoned.
	CancelGrace time.Duration
	// ShutdownGrace is how long Stop lets running runs finish before cancelling them
	// (default: until Stop's context ends).
	ShutdownGrace time.Duration
	// Lease and Heartbeat set how long a running run is leased and how often leases renew.
	Lease, Heartbeat time.Duration
	// PollInterval is the fallback poll for work from other nodes (default 1s on PostgreSQL;
	// a single SQLite node needs none).
	PollInterval time.Duration
	// MaxOutputBytes caps the stored output of one run (default 16 MiB).
	MaxOutputBytes int
	// RetryBackoff returns the delay before retry number attempt (default: exponential from
	// 1s, capped at 5m, with jitter).
	RetryBackoff func(attempt int) time.Duration
	// ValidateWebhookURL checks webhook URLs at submit (the server installs the SSRF guard).
	ValidateWebhookURL func(ctx context.Context, url string) error
	// Now is the clock (default time.Now). Every due time (run_at, retry back-off, schedule
	// ticks, rate-limit tokens, holds) is read from it. The engine sleeps in real time until
	// the due time it computes; a test that moves its own clock calls [Engine.Wake].
	Now func() time.Time
	// Logger receives the engine's logs (default: discard).
	Logger *slog.Logger

	// OnSubmit, OnStart, OnOutput and OnComplete are called after the fact; they must not block.
	OnSubmit   func(run *spool.Run)
	OnStart    func(run *spool.Run)
	OnOutput   func(runID, chunk string)
	OnComplete func(run *spool.Run)
}

// Engine runs the queue. Create it with [New], add handlers with [Engine.Register], then
// [Engine.Start] it; [Engine.Stop] stops it and closes the database.
type Engine struct {
	cfg   Config
	store store.Store
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	recipes  map[string]*Recipe
	handlers map[string]*Recipe // registered with Register/RegisterRecipe; kept by SetRecipes
	active   map[string]*execution
	// finishing holds the runs whose handler returned and whose finish is being stored:
	// their slots are free again (see store.RunClaimParams.Finishing).
	finishing map[string]struct{}
	held      map[string]time.Time // agent -> held until
	waiters   map[string][]chan struct{}
	limits    spool.Limits
	rates     map[string]store.Rate // by bucket key
	synced    bool                  // recipe schedules stored since the last recipe change
	started   bool
	stopping  bool
	closed    bool

	slots        int
	running      atomic.Int64 // executions holding a slot
	finishingN   atomic.Int64 // len(finishing)
	queuedApprox atomic.Int64
	nextWake     atomic.Int64 // unix nanos of the earliest known scheduled/backoff time; 0 none
	rateWake     atomic.Int64 // unix nanos when an empty rate-limit bucket refills; 0 none
	forceCheck   atomic.Bool  // Wake was called: promote due runs whatever nextWake says

	wake      chan struct{}
	schedWake chan struct{}
	events    *eventWriter
	broker    *broker
	finisher  *finisher

	runCtx       context.Context // parent of every execution
	runCancel    context.CancelCauseFunc
	stopLoops    context.CancelFunc
	stopDispatch context.CancelFunc
	dispatchDone chan struct{}
	loops        sync.WaitGroup
	execs        sync.WaitGroup
	stopOnce     sync.Once
	stopErr      error
}

var errShutdown = errors.New("node shutting down")

// New opens the database, applies migrations and returns a stopped engine.
func New(cfg Config) (*Engine, error) {
	ctx := context.Background()
	if cfg.DB == "" {
		cfg.DB = "./.spool/spool.db"
	}
	st, err := openStore(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	return newEngine(cfg, st), nil
}

func newEngine(cfg Config, st store.Store) *Engine {
	if cfg.Limits.Global == 0 {
		cfg.Limits.Global = DefaultMaxConcurrent
	}
	if cfg.Limits.Global < 0 {
		cfg.Limits.Global = 0
	}
	if cfg.MaxQueueSize == 0 {
		cfg.MaxQueueSize = DefaultMaxQueueSize
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = DefaultTimeout
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.CancelGrace <= 0 {
		cfg.CancelGrace = DefaultCancelGrace
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.RetryBackoff == nil {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Node == "" {
		host, _ := os.Hostname()
		cfg.Node = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	e := &Engine{
		cfg:       cfg,
		store:     st,
		log:       cfg.Logger,
		now:       func() time.Time { return cfg.Now().UTC() },
		recipes:   map[string]*Recipe{},
		handlers:  map[string]*Recipe{},
		active:    map[string]*execution{},
		finishing: map[string]struct{}{},
		held:      map[string]time.Time{},
		waiters:   map[string][]chan struct{}{},
		limits:    cfg.Limits,
		wake:      make(chan struct{}, 1),

		schedWake: make(chan struct{}, 1),
	}
	e.rates = e.buildRates()
	e.broker = newBroker(e)
	e.events = newEventWriter(e)
	e.finisher = newFinisher(e)
	return e
}

// DefaultRetryBackoff waits 2^(attempt-1) seconds, at most 5 minutes, with ±20% jitter.
func DefaultRetryBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := time.Second << min(attempt-1, 9)
	d = min(d, 5*time.Minute)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// Node returns this engine's node id.
func (e *Engine) Node() string { return e.cfg.Node }

// Store returns the engine's database driver (for Spool's own packages).
func (e *Engine) Store() store.Store { return e.store }

// DatabaseName returns "sqlite" or "postgres".
func (e *Engine) DatabaseName() string { return e.store.DatabaseName() }

// Register makes h execute runs of recipe name, with no recipe defaults.
func (e *Engine) Register(name string, h Handler) {
	e.RegisterRecipe(&Recipe{Name: name, Handler: h})
}

// RegisterRecipe adds or replaces one recipe. It survives later calls to SetRecipes.
func (e *Engine) RegisterRecipe(r *Recipe) {
	e.mu.Lock()
	e.recipes[r.Name] = r
	e.handlers[r.Name] = r
	e.mu.Unlock()
	e.applyRecipeLimits()
}

// SetRecipes replaces the recipes loaded from files by rs (a recipe reload). Recipes added
// with Register or RegisterRecipe are kept and win over a file recipe of the same name.
func (e *Engine) SetRecipes(rs []*Recipe) {
	e.mu.Lock()
	next := make(map[string]*Recipe, len(rs)+len(e.handlers))
	for _, r := range rs {
		next[r.Name] = r
	}
	for name, r := range e.handlers {
		next[name] = r
	}
	e.recipes = next
	e.mu.Unlock()
	e.applyRecipeLimits()
}

// Recipe returns the recipe registered under name.
func (e *Engine) Recipe(name string) (*Recipe, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.recipes[name]
	return r, ok
}

// RecipeNames lists the registered recipes.
func (e *Engine) RecipeNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]string, 0, len(e.recipes))
	for n := range e.recipes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (e *Engine) applyRecipeLimits() {
	e.mu.Lock()
	e.rates = e.buildRates()
	e.synced = false
	agents := map[string]int{}
	for k, v := range e.cfg.Limits.Agents {
		agents[k] = v
	}
	for _, r := range e.recipes {
		if r.ConcurrencyMax > 0 {
			if _, set := e.cfg.Limits.Agents[r.Name]; !set {
				agents[r.Name] = r.ConcurrencyMax
			}
		}
	}
	e.limits.Agents = agents
	started := e.started && !e.stopping
	e.mu.Unlock()
	if started {
		e.signalSchedules() // store the recipes' schedules
		e.signal()
	}
}

// Limits returns the concurrency limits in force.
func (e *Engine) Limits() spool.Limits {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.limits
}

// Start recovers runs left by a crash, then starts dispatching and the background loops.
// It returns once the engine is running; errors that prevent starting are returned.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("queue: engine already started")
	}
	e.started = true
	e.mu.Unlock()

	limits := e.Limits()
	changed, err := e.store.LimitsSet(ctx, limits)
	if err != nil {
		return fmt.Errorf("storing limits: %w", err)
	}
	if changed {
		e.log.Info("concurrency limits set for the cluster", "global", limits.Global,
			"per_agent", limits.PerAgent, "per_workspace", limits.PerWorkspace)
	}

	// Crash recovery: a SQLite database belongs to this process alone, so every running run
	// was left by a dead process; on PostgreSQL only expired leases are touched.
	rescued, err := e.store.RunRescue(ctx, &store.RunRescueParams{
		Now: e.now(), AllRunning: e.store.DatabaseName() == "sqlite",
	})
	if err != nil {
		return fmt.Errorf("recovering runs: %w", err)
	}
	for _, r := range rescued {
		e.log.Warn("recovered run left running", "run", r.ID, "state", r.State, "attempt", r.Attempt)
		if r.State.IsTerminal() {
			e.completed(r)
		}
	}

	e.slots = e.cfg.Workers
	if e.slots <= 0 {
		e.slots = limits.Global
		if e.slots <= 0 {
			e.slots = 1000
		}
	}
	if e.cfg.APIOnly {
		e.slots = 0
	}

	e.runCtx, e.runCancel = context.WithCancelCause(context.WithoutCancel(ctx))
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.stopLoops = cancel
	e.goLoop(func() { e.events.loop(loopCtx) })
	e.goLoop(func() { e.finisher.loop(loopCtx) })
	e.dispatchDone = make(chan struct{})
	if e.slots > 0 {
		dctx, dcancel := context.WithCancel(loopCtx)
		e.stopDispatch = dcancel
		e.goLoop(func() {
			defer close(e.dispatchDone)
			e.dispatchLoop(dctx)
		})
	} else {
		close(e.dispatchDone)
	}
	e.goLoop(func() { e.maintainLoop(loopCtx) })
	if err := e.syncRecipeSchedules(ctx); err != nil {
		e.log.Error("storing the recipes' schedules", "err", err)
	}
	e.goLoop(func() { e.scheduleLoop(loopCtx) })
	if l, ok := e.store.(store.Listener); ok {
		ch, err := l.Listen(loopCtx)
		if err != nil {
			return fmt.Errorf("listening for notifications: %w", err)
		}
		e.goLoop(func() { e.notifyLoop(loopCtx, ch) })
	}
	e.signal()
	return nil
}

func (e *Engine) goLoop(f func()) {
	e.loops.Add(1)
	go func() {
		defer e.loops.Done()
		f()
	}()
}

// Stop stops dispatching, lets running runs finish until ShutdownGrace (or ctx) ends, then
// cancels them: each is re-queued if it has retries left, else fails as interrupted. It
// then stops the loops and closes the database. Like http.Server.Shutdown, it returns
// ctx.Err() if ctx ends first. Stop is safe to call more than once and before Start.
func (e *Engine) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() { e.stopErr = e.stop(ctx) })
	return e.stopErr
}

func (e *Engine) stop(ctx context.Context) error {
	e.mu.Lock()
	e.stopping = true
	started := e.started
	e.mu.Unlock()
	if !started {
		return e.store.Close()
	}
	// Stop claiming first, so no execution starts while we wait for the running ones.
	if e.stopDispatch != nil {
		e.stopDispatch()
	}
	<-e.dispatchDone

	done := make(chan struct{})
	go func() { e.execs.Wait(); close(done) }()
	var grace <-chan time.Time
	if e.cfg.ShutdownGrace > 0 {
		t := time.NewTimer(e.cfg.ShutdownGrace)
		defer t.Stop()
		grace = t.C
	}
	var err error
	select {
	case <-done:
	case <-grace:
		e.runCancel(errShutdown)
	case <-ctx.Done():
		err = ctx.Err()
		e.runCancel(errShutdown)
	}
	<-done // executions end within CancelGrace once cancelled
	e.stopLoops()
	e.loops.Wait()
	e.broker.closeAll()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	if cerr := e.store.Close(); err == nil {
		err = cerr
	}
	return err
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

func (e *Engine) isStopping() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

// Wake makes the dispatcher and the scheduler look at the clock and the database again at
// once: due delayed runs are queued, due schedule ticks fire and runs whose rate-limit
// token or hold has come are claimed. The engine does this by itself at every due time it
// knows of; Wake is for tests that move an injected clock (Config.Now) and for embedders
// that change the database behind the engine's back.
func (e *Engine) Wake() {
	e.forceCheck.Store(true)
	e.signal()
	e.signalSchedules()
}

// signalSchedules wakes the scheduler without blocking.
func (e *Engine) signalSchedules() {
	select {
	case e.schedWake <- struct{}{}:
	default:
	}
}

// signal wakes the dispatcher without blocking.
func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// noteWake records that something becomes due at t.
func (e *Engine) noteWake(t time.Time) {
	n := t.UnixNano()
	for {
		cur := e.nextWake.Load()
		if cur != 0 && cur <= n {
			return
		}
		if e.nextWake.CompareAndSwap(cur, n) {
			e.signal()
			return
		}
	}
}
