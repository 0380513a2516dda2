// Package store is the storage seam: the interface every database driver implements and the
// engine uses. Drivers live in subpackages (sqlite, postgres) and all pass storetest.
//
// Rules every driver follows:
//   - Every state change is one statement or transaction guarded by the expected current state.
//   - Errors are *spool.Error where callers branch on them: spool.ErrNotFound for a missing
//     run, a conflict (spool.CodeConflict with State set) for a run in the wrong state,
//     spool.CodeQueueFull when MaxQueued is exceeded.
//   - Times are stored with at least microsecond precision and returned in UTC.
package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spool-run/spool"
)

// Store is a database driver.
type Store interface {
	// DatabaseName returns "sqlite" or "postgres".
	DatabaseName() string
	// Close releases the database. The store is unusable afterwards.
	Close() error

	// RunInsert stores a new run in state queued (or scheduled when RunAt is in the future),
	// with its first status event (seq 1), in one transaction. When IdemKey is set and a run
	// with the same key exists, it returns that run and existed=true and creates nothing; a
	// unique index decides races. When MaxQueued > 0 and the queued+paused count is already
	// at MaxQueued, it returns a spool.CodeQueueFull error and stores nothing.
	RunInsert(ctx context.Context, p *RunInsertParams) (run *spool.Run, existed bool, err error)
	// RunInsertMany inserts many runs in one transaction (no queue-size check). Runs whose
	// IdemKey already exists are returned as the existing run.
	RunInsertMany(ctx context.Context, ps []*RunInsertParams) ([]*spool.Run, error)
	// RunGet returns one run, or spool.ErrNotFound.
	RunGet(ctx context.Context, id string) (*spool.Run, error)
	// RunList returns runs newest first, and the total count when asked.
	RunList(ctx context.Context, p *spool.ListParams) (runs []*spool.Run, total int64, err error)
	// RunClaim moves up to Max queued runs whose AvailableAt has come to running on Node,
	// honouring priority then submit order and every concurrency limit (counting all running
	// runs in the database, whichever node holds them), one running run per session, and a
	// session's runs in submit order. A run that cannot start never blocks runs of other
	// groups. It sets started_at, node, lease_until, attempt+1 and writes a status event.
	RunClaim(ctx context.Context, p *RunClaimParams) ([]*ClaimedRun, error)
	// RunFinishMany appends events, then applies each finish whose run is still running on
	// p.Node with p.Attempt, all in one transaction. It returns the runs it changed (nil for
	// finishes whose guard did not hold). Terminal finishes enqueue webhook deliveries.
	RunFinishMany(ctx context.Context, events []*spool.Event, ps []*RunFinishParams) ([]*spool.Run, error)
	// RunCancel cancels a queued, scheduled or paused run at once (writing its status and
	// cancelled events), or marks a running run cancel_requested_at. A terminal run gives a
	// conflict error carrying its state.
	RunCancel(ctx context.Context, id string, now time.Time) (*spool.Run, error)
	// RunPause holds a queued or scheduled run; RunResume releases it to its original place
	// (scheduled again if its run_at is still ahead).
	RunPause(ctx context.Context, id string, now time.Time) (*spool.Run, error)
	RunResume(ctx context.Context, id string, now time.Time) (*spool.Run, error)
	// RunDelete deletes a terminal run with its events and deliveries; active runs conflict.
	RunDelete(ctx context.Context, id string) error
	// RunClear deletes terminal runs completed before OlderThan (all of them when zero). With
	// All it first cancels active runs (running ones are only marked cancel-requested and are
	// deleted once they end). It returns how many runs it deleted.
	RunClear(ctx context.Context, p *RunClearParams) (int64, error)
	// RunStats counts runs by state and reports average wait and duration.
	RunStats(ctx context.Context, workspace string) (*spool.Stats, error)
	// RunRescue handles runs left running by dead nodes: those whose lease expired before
	// Now (or, with AllRunning, every running run). Each is re-queued (keeping its place) when
	// attempt <= max_retries, else it fails with spool.CodeInterrupted. It returns the runs.
	RunRescue(ctx context.Context, p *RunRescueParams) ([]*spool.Run, error)
	// RunHeartbeat extends the lease of the given runs held by node and returns the ids among
	// them that have a cancel requested.
	RunHeartbeat(ctx context.Context, node string, ids []string, leaseUntil time.Time) (cancelRequested []string, err error)
	// RunPromote moves scheduled runs whose run_at has come to queued, returning how many.
	RunPromote(ctx context.Context, now time.Time) (int, error)
	// RunNextWake returns the earliest future time at which a scheduled run falls due or a
	// backing-off queued run becomes available; ok is false when there is none.
	RunNextWake(ctx context.Context, now time.Time) (t time.Time, ok bool, err error)
	// RunCancelRequested lists ids of runs held by node that have a cancel requested.
	RunCancelRequested(ctx context.Context, node string) ([]string, error)

	// EventAppend stores events in one transaction. Progress events also update the run's
	// progress column.
	EventAppend(ctx context.Context, events []*spool.Event) error
	// EventList returns a run's events with seq > afterSeq in order, at most limit (0 = all).
	EventList(ctx context.Context, runID string, afterSeq int64, limit int) ([]*spool.Event, error)
	// EventDropOutput deletes a run's output events with seq <= throughSeq (the oldest
	// output of a run past its output cap); other events are kept.
	EventDropOutput(ctx context.Context, runID string, throughSeq int64) error

	// WebhookClaim leases up to limit deliveries that are due, for node, until leaseUntil.
	WebhookClaim(ctx context.Context, node string, now, leaseUntil time.Time, limit int) ([]*Delivery, error)
	// WebhookRecord stores one attempt's outcome: the delivery is done (delivered or given
	// up) or due again at NextAt.
	WebhookRecord(ctx context.Context, p *WebhookRecordParams) error
	// WebhookList returns a run's deliveries with their attempts.
	WebhookList(ctx context.Context, runID string) ([]*Delivery, error)

	// LimitsGet returns the cluster-wide concurrency limits; LimitsSet replaces them and
	// reports whether they changed.
	LimitsGet(ctx context.Context) (spool.Limits, error)
	LimitsSet(ctx context.Context, l spool.Limits) (changed bool, err error)

	// NodeHeartbeat records that a node is alive; NodeList lists nodes seen recently.
	NodeHeartbeat(ctx context.Context, n *Node) error
	NodeList(ctx context.Context) ([]*Node, error)

	// Schedules, rate-limit buckets and holds (see time.go).
	TimeStore
}

// Listener is implemented by drivers that can wake other nodes (PostgreSQL). The driver
// sends notifications itself inside the transactions that change runs.
type Listener interface {
	// Listen delivers notifications until ctx ends, then closes the channel.
	Listen(ctx context.Context) (<-chan Notification, error)
}

// Notification topics.
const (
	TopicSubmit = "submit" // runs became claimable
	TopicFinish = "finish" // a run ended: slots freed (Payload: run id)
	TopicCancel = "cancel" // a cancel was requested (Payload: run id)
	TopicEvent  = "event"  // events were stored (Payload: run id)
	// TopicSchedule: a schedule was created, changed or deleted (Payload: schedule id).
	TopicSchedule = "schedule"
)

// Notification is one wake-up from another node.
type Notification struct {
	Topic   string
	Payload string
}

// RunInsertParams is a fully resolved new run: defaults applied, input validated.
type RunInsertParams struct {
	ID               string
	Recipe           string
	Agent            string
	Workspace        string
	SessionID        string
	Priority         spool.Priority
	Input            json.RawMessage
	Config           json.RawMessage
	Metadata         map[string]any
	MaxRetries       int
	TimeoutSec       int
	RetryOf          string
	IdempotencyScope string
	// IdemKey is the unique key (scope and key combined), empty for none.
	IdemKey        string
	IdempotencyKey string
	WebhookURL     string
	WebhookEvents  []string
	ScheduleID     string
	ScheduledFor   *time.Time
	CreatedAt      time.Time
	// RunAt, when after CreatedAt, stores the run as scheduled.
	RunAt *time.Time
	// MaxQueued refuses the insert when queued+paused runs number MaxQueued or more; 0 = no check.
	MaxQueued int
}

// RunClaimParams asks for runs to start.
type RunClaimParams struct {
	Node       string
	Now        time.Time
	LeaseUntil time.Time
	// Max is how many runs the node can start now.
	Max    int
	Limits spool.Limits
	// HeldAgents are agents that may not start runs now (provider back-off, rate limits).
	HeldAgents []string
	// Finishing lists runs of this node whose handler has returned but whose finish has not
	// committed yet. Those still running in the store do not count against the global, agent
	// and workspace limits (their slots are free), but still keep their session busy, so a
	// session's next run never starts before the previous one's outcome is stored.
	Finishing []string
	// Rates are token-bucket rate limits by key (see [RateKey]); a key whose name is "*"
	// applies to every agent (or workspace) without its own. A run starts only when every
	// bucket it falls under (its agent's, its workspace's and its recipe's) holds a token,
	// and takes one from each. Drivers that implement [TimeStore] keep the buckets in the
	// database, so they hold across nodes, and honour holds stored with RateHold. Callers
	// must not change the map after passing it: drivers may keep it between claims.
	Rates map[string]Rate
	// Result, when not nil, is filled in by the claim.
	Result *ClaimResult
}

// ClaimResult is what a claim reports beyond the runs it started.
type ClaimResult struct {
	// NextAt is the earliest time at which a bucket that was empty or held during the
	// claim has a token again; zero when none was.
	NextAt time.Time
}

// Rate is a token bucket: Limit tokens per Per, holding at most Burst (at least 1).
type Rate struct {
	Limit int
	Per   time.Duration
	Burst int
}

// Interval is the time one token takes to come back.
func (r Rate) Interval() time.Duration { return r.Per / time.Duration(max(r.Limit, 1)) }

// Capacity is the bucket's size: Burst, at least 1.
func (r Rate) Capacity() float64 { return float64(max(r.Burst, 1)) }

// Rate-limit key kinds.
const (
	RateAgent     = "agent"
	RateWorkspace = "workspace"
	RateRecipe    = "recipe"
)

// RateKey is the bucket key of one agent, workspace or recipe ("agent:NAME"); name "*" is
// the default of its kind.
func RateKey(kind, name string) string { return kind + ":" + name }

// ClaimedRun is a run that was just started, with the last event seq stored for it.
type ClaimedRun struct {
	*spool.Run
	LastSeq int64
}

// RunFinishParams ends one attempt of a running run.
type RunFinishParams struct {
	ID      string
	Node    string
	Attempt int
	// State is succeeded, failed or cancelled, or queued to retry at AvailableAt.
	State       spool.State
	Result      json.RawMessage
	Error       string
	ErrorCode   string
	Progress    *spool.Progress
	Now         time.Time
	AvailableAt time.Time
	// KeepAttempt re-queues without counting the attempt (provider back-off).
	KeepAttempt bool
}

// RunClearParams selects runs to delete.
type RunClearParams struct {
	// Sweep marks the retention sweeper's call: on a database shared by many nodes, only
	// one sweeps at a time and the others delete nothing (0, nil).
	Sweep     bool
	All       bool
	Before    time.Time // zero: no age limit
	Workspace string
	Now       time.Time
}

// RunRescueParams selects runs whose node died.
type RunRescueParams struct {
	Now        time.Time
	AllRunning bool
}

// Delivery is one webhook delivery of one run event.
type Delivery struct {
	ID       string            `json:"id"`
	RunID    string            `json:"-"`
	Event    string            `json:"event"`
	URL      string            `json:"url"`
	State    string            `json:"state"` // pending, delivered, failed
	Attempts []DeliveryAttempt `json:"attempts"`
	// CreatedAt is when the delivery was queued; NextAt when it is next due.
	CreatedAt time.Time `json:"created_at"`
	NextAt    time.Time `json:"next_at"`
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// DeliveryAttempt is one POST of a delivery.
type DeliveryAttempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// WebhookRecordParams records one attempt.
type WebhookRecordParams struct {
	ID      string
	Attempt DeliveryAttempt
	// State is the delivery's state after this attempt; NextAt applies when pending.
	State  string
	NextAt time.Time
}

// Node is one spool process.
type Node struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	SeenAt    time.Time `json:"seen_at"`
	Running   int       `json:"running"`
}

// IdemKey combines an idempotency key with its scope into the unique index's key, or ""
// when there is no deduplication. Keys never match across workspaces.
func IdemKey(workspace, sessionID, scope, key string) string {
	if key == "" || scope == spool.ScopeNone {
		return ""
	}
	if scope == spool.ScopeSession {
		return "s\x1f" + workspace + "\x1f" + sessionID + "\x1f" + key
	}
	return "g\x1f" + workspace + "\x1f" + key
}
