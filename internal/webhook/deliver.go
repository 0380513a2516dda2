// Package webhook delivers run events to webhook URLs: durably (deliveries are rows in the
// store, leased while in flight), with retries and backoff, signed with Standard Webhooks
// headers, and guarded against server-side request forgery.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultRetryBase    = 5 * time.Second
	DefaultRetryMax     = 10 * time.Minute
	DefaultRetryWindow  = 24 * time.Hour
	DefaultPollInterval = 5 * time.Second
	DefaultConcurrency  = 8
)

// Outcomes of one attempt, as counted by Config.OnAttempt and the metrics.
const (
	OutcomeDelivered = "delivered" // the receiver answered 2xx
	OutcomeRetry     = "retry"     // the attempt failed; the delivery is due again later
	OutcomeFailed    = "failed"    // the attempt failed and the delivery was given up
)

// Config configures a [Deliverer].
type Config struct {
	// Store holds the deliveries (required).
	Store store.Store
	// Node names this process in delivery leases (required).
	Node string
	// Secret is the decoded signing key (see [ParseSecret]); nil sends unsigned requests.
	Secret []byte
	// Guard checks targets when connecting (default: private targets refused).
	Guard *Guard
	// Timeout bounds one attempt, from connect to the end of the answer (default 10s).
	Timeout time.Duration
	// RetryBase is the delay before the first retry; each later one doubles it, with
	// jitter, up to RetryMax (defaults 5s and 10m).
	RetryBase, RetryMax time.Duration
	// RetryWindow is how long after a delivery was queued it is retried before it is
	// given up (default 24h).
	RetryWindow time.Duration
	// PollInterval is how often the store is checked for due deliveries when nothing wakes
	// the deliverer (default 5s).
	PollInterval time.Duration
	// Concurrency is how many deliveries are in flight at once (default 8).
	Concurrency int
	// Logger receives delivery logs (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnAttempt is called after every attempt with its outcome; it must not block.
	OnAttempt func(outcome string)
}

// Payload is the JSON body of a webhook request.
type Payload struct {
	Event           string          `json:"event"`
	JobID           string          `json:"job_id"`
	RunID           string          `json:"run_id"`
	Status          spool.State     `json:"status"`
	Result          json.RawMessage `json:"result"`
	Error           *string         `json:"error"`
	ErrorCode       *string         `json:"error_code"`
	CompletedAt     *time.Time      `json:"completed_at"`
	DurationSeconds *float64        `json:"duration_seconds"`
}

// NewPayload builds the payload of event for run.
func NewPayload(event string, run *spool.Run) *Payload {
	p := &Payload{Event: event, JobID: run.ID, RunID: run.ID, Status: run.State,
		Result: run.Result, CompletedAt: run.CompletedAt}
	if len(p.Result) == 0 {
		p.Result = json.RawMessage("null")
	}
	if run.Error != "" && run.State != spool.StateSucceeded {
		p.Error = &run.Error
	}
	if run.ErrorCode != "" && run.State != spool.StateSucceeded {
		p.ErrorCode = &run.ErrorCode
	}
	if run.CompletedAt != nil {
		p.DurationSeconds = run.DurationSeconds(*run.CompletedAt)
	}
	return p
}

// Deliverer is the delivery loop. Create it with [New], then Start and Stop it.
type Deliverer struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger

	wake    chan struct{}
	nextDue atomic.Int64 // unix nanos of the earliest retry this process scheduled; 0 none

	mu       sync.Mutex
	started  bool
	cancel   context.CancelFunc
	loopDone chan struct{}
	inflight sync.WaitGroup
}

// New returns a stopped Deliverer.
func New(cfg Config) *Deliverer {
	if cfg.Guard == nil {
		cfg.Guard = &Guard{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.RetryWindow <= 0 {
		cfg.RetryWindow = DefaultRetryWindow
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Deliverer{
		cfg:    cfg,
		client: NewClient(cfg.Guard, cfg.Timeout),
		log:    cfg.Logger,
		wake:   make(chan struct{}, 1),
	}
}

// NewClient returns the HTTP client webhooks use: it connects only where g allows (no
// proxy, the checked address), follows no redirects, and gives up after timeout.
func NewClient(g *Guard, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would connect on our behalf, past the guard
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Start starts the loop. It returns an error if the Deliverer is already started.
func (d *Deliverer) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return errors.New("webhook: deliverer already started")
	}
	if d.cfg.Store == nil || d.cfg.Node == "" {
		return errors.New("webhook: Config.Store and Config.Node are required")
	}
	d.started = true
	ctx, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	d.loopDone = make(chan struct{})
	go func() {
		defer close(d.loopDone)
		d.loop(ctx)
	}()
	return nil
}

// Stop stops the loop, cancels deliveries in flight (their leases expire and they are
// delivered later, by this node after a restart or by another node), and waits for them.
// It is safe to call more than once and before Start.
func (d *Deliverer) Stop() {
	d.mu.Lock()
	cancel, done := d.cancel, d.loopDone
	d.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	d.inflight.Wait()
	d.client.CloseIdleConnections()
}

// Wake makes the loop look for due deliveries now (call it when a run ends).
func (d *Deliverer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Deliverer) now() time.Time { return d.cfg.Now().UTC() }

func (d *Deliverer) loop(ctx context.Context) {
	sem := make(chan struct{}, d.cfg.Concurrency)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
		if n := d.nextDue.Load(); n != 0 && n <= d.now().UnixNano() {
			d.nextDue.CompareAndSwap(n, 0) // due now: the claim below takes it
		}
		// Claim as many due deliveries as there are free slots, until none are left.
		for ctx.Err() == nil {
			free := cap(sem) - len(sem)
			if free == 0 {
				break
			}
			now := d.now()
			batch, err := d.cfg.Store.WebhookClaim(ctx, d.cfg.Node, now, now.Add(d.lease()), free)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error("claiming webhook deliveries", "err", err)
				}
				break
			}
			for _, del := range batch {
				sem <- struct{}{}
				d.inflight.Add(1)
				go func() {
					defer func() { <-sem; d.inflight.Done(); d.Wake() }()
					d.deliver(ctx, del)
				}()
			}
			if len(batch) < free {
				break
			}
		}
		wait := d.cfg.PollInterval
		if n := d.nextDue.Load(); n != 0 {
			if until := time.Unix(0, n).Sub(d.now()); until < wait {
				wait = max(until, 0)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// lease is how long a claimed delivery stays ours: one attempt plus a margin.
func (d *Deliverer) lease() time.Duration { return 2*d.cfg.Timeout + 10*time.Second }

// noteDue remembers that a retry falls due at t, so the loop wakes for it.
func (d *Deliverer) noteDue(t time.Time) {
	n := t.UnixNano()
	for {
		cur := d.nextDue.Load()
		if cur != 0 && cur <= n {
			return
		}
		if d.nextDue.CompareAndSwap(cur, n) {
			d.Wake()
			return
		}
	}
}

// deliver makes one attempt of del and records its outcome.
func (d *Deliverer) deliver(ctx context.Context, del *store.Delivery) {
	started := d.now()
	attempt := store.DeliveryAttempt{At: started}
	permanent := false
	body, err := d.payload(ctx, del)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		attempt.Error = err.Error()
		permanent = errors.Is(err, spool.ErrNotFound)
	} else {
		code, perr := d.post(ctx, del, body, started)
		if ctx.Err() != nil {
			return // shutting down: the lease expires and the delivery is tried again
		}
		attempt.StatusCode = code
		if perr != nil {
			attempt.Error = perr.Error()
			permanent = errors.Is(perr, ErrRefused)
		}
	}
	attempt.DurationMS = d.now().Sub(started).Milliseconds()

	rec := &store.WebhookRecordParams{ID: del.ID, Attempt: attempt}
	outcome := OutcomeDelivered
	switch {
	case attempt.Error == "":
		rec.State = store.DeliveryDelivered
	case permanent:
		rec.State, outcome = store.DeliveryFailed, OutcomeFailed
	default:
		next := started.Add(d.backoff(len(del.Attempts) + 1))
		if next.After(del.CreatedAt.Add(d.cfg.RetryWindow)) {
			rec.State, outcome = store.DeliveryFailed, OutcomeFailed
		} else {
			rec.State, rec.NextAt, outcome = store.DeliveryPending, next, OutcomeRetry
		}
	}
	if err := d.cfg.Store.WebhookRecord(context.WithoutCancel(ctx), rec); err != nil {
		d.log.Error("recording webhook attempt", "delivery", del.ID, "run", del.RunID, "err", err)
		return
	}
	if rec.State == store.DeliveryPending {
		d.noteDue(rec.NextAt)
	}
	level := slog.LevelInfo
	if outcome != OutcomeDelivered {
		level = slog.LevelWarn
	}
	d.log.Log(ctx, level, "webhook attempt", "delivery", del.ID, "run", del.RunID, "event", del.Event,
		"outcome", outcome, "status_code", attempt.StatusCode, "err", attempt.Error, "attempt", len(del.Attempts)+1)
	if d.cfg.OnAttempt != nil {
		d.cfg.OnAttempt(outcome)
	}
}

// backoff is the delay after failed attempt number n (1-based): RetryBase doubled n-1
// times, at most RetryMax, with ±20% jitter.
func (d *Deliverer) backoff(n int) time.Duration {
	delay := d.cfg.RetryBase
	for i := 1; i < n && delay < d.cfg.RetryMax; i++ {
		delay *= 2
	}
	delay = min(delay, d.cfg.RetryMax)
	return time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
}

func (d *Deliverer) payload(ctx context.Context, del *store.Delivery) ([]byte, error) {
	run, err := d.cfg.Store.RunGet(ctx, del.RunID)
	if err != nil {
		return nil, fmt.Errorf("reading run %s: %w", del.RunID, err)
	}
	return json.Marshal(NewPayload(del.Event, run))
}

// post sends one attempt and returns the status code (0 without an answer).
func (d *Deliverer) post(ctx context.Context, del *store.Delivery, body []byte, now time.Time) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, del.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Spool-Webhooks/1")
	req.Header.Set(HeaderID, del.ID)
	req.Header.Set(HeaderTimestamp, fmt.Sprint(now.Unix()))
	if d.cfg.Secret != nil {
		req.Header.Set(HeaderSignature, Sign(d.cfg.Secret, del.ID, now, body))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, stripURL(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
