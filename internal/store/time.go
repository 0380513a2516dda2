package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spool-run/spool"
)

// TimeStore is the storage of schedules, rate-limit buckets and agent holds, part of
// [Store]. RunClaim honours RunClaimParams.Rates and the stored holds.
type TimeStore interface {
	// ScheduleUpsert creates the schedule, or replaces the definition of the one with the
	// same workspace and name (keeping its id, pause state and history). The stored next
	// tick becomes p.NextAt when the schedule is new, when its cron, interval or time zone
	// changed, or when it has none; otherwise it stays, so ticks missed while the nodes were
	// down still follow the catch-up policy. With IfAbsent, an existing schedule is a
	// conflict error and nothing changes. Replacing a schedule of another source is a
	// conflict error too.
	ScheduleUpsert(ctx context.Context, p *ScheduleUpsertParams) (s *Schedule, created bool, err error)
	// ScheduleGet returns one schedule by id, or by name within workspace when no schedule
	// has that id; spool.CodeNotFound when there is none.
	ScheduleGet(ctx context.Context, workspace, idOrName string) (*Schedule, error)
	// ScheduleList returns schedules sorted by workspace and name.
	ScheduleList(ctx context.Context, p *ScheduleListParams) ([]*Schedule, error)
	// ScheduleDelete deletes a schedule; its runs stay and keep its id.
	ScheduleDelete(ctx context.Context, id string) error
	// ScheduleSetPaused pauses or resumes a schedule. Resuming sets the next tick to nextAt,
	// so ticks that passed while paused never fire.
	ScheduleSetPaused(ctx context.Context, id string, paused bool, nextAt time.Time, now time.Time) (*Schedule, error)
	// ScheduleDue returns up to limit schedules that are not paused and whose next tick is
	// at or before now, earliest first.
	ScheduleDue(ctx context.Context, now time.Time, limit int) ([]*Schedule, error)
	// ScheduleFire starts the runs of a schedule's due ticks and moves its next tick, in one
	// transaction, unless another node did it first (the stored next tick is no longer
	// ExpectNextAt). A unique index on (schedule_id, scheduled_for) makes sure a tick never
	// starts two runs.
	ScheduleFire(ctx context.Context, p *ScheduleFireParams) (*ScheduleFireResult, error)
	// ScheduleNextWake returns the earliest next tick of the schedules that are not paused.
	ScheduleNextWake(ctx context.Context) (t time.Time, ok bool, err error)

	// RateHold stops runs under key (an agent's, see RateKey) from starting until until, on
	// every node. A later hold wins; an earlier one changes nothing.
	RateHold(ctx context.Context, key string, until time.Time) error
	// RateList returns, for the given rates, the buckets that are empty at now or held, each
	// with how many queued runs wait on it, and how many queued runs wait on at least one.
	RateList(ctx context.Context, rates map[string]Rate, now time.Time) (states []*RateState, waiting int64, err error)
}

// Schedule sources.
const (
	SourceAPI    = "api"    // created through the API or the CLI
	SourceRecipe = "recipe" // defined in a recipe's runtime.schedules
)

// Schedule is a stored schedule: when to start runs, and the run to start. Its JSON form is
// the HTTP API's.
type Schedule struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Workspace string `json:"workspace"`
	Recipe    string `json:"recipe_name"`
	// Source is SourceAPI or SourceRecipe.
	Source string `json:"source"`
	// Cron is a cron expression, or Every an interval (a Go duration); one is set.
	Cron     string `json:"cron,omitempty"`
	Every    string `json:"every,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	// Catchup is none, last or all; Overlap allow or skip.
	Catchup string `json:"catchup"`
	Overlap string `json:"overlap"`
	Paused  bool   `json:"paused"`

	// The run each tick starts. Priority nil takes the recipe's default.
	Input      json.RawMessage `json:"input,omitempty"`
	Config     json.RawMessage `json:"config,omitempty"`
	Metadata   map[string]any  `json:"metadata,omitempty"`
	Priority   *spool.Priority `json:"priority,omitempty"`
	Agent      string          `json:"agent,omitempty"`
	TimeoutSec int             `json:"timeout_sec,omitempty"`
	MaxRetries *int            `json:"max_retries,omitempty"`

	// NextAt is the next tick to fire (nil when paused or when the schedule never fires again).
	NextAt *time.Time `json:"next_run_at"`
	// LastAt is the tick of the latest run the schedule started, LastRunID that run.
	LastAt    *time.Time `json:"last_run_at"`
	LastRunID string     `json:"last_run_id,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// ScheduleUpsertParams defines a schedule. ID is used only when the schedule is new.
type ScheduleUpsertParams struct {
	Schedule
	// NextAt is the first tick after now under the definition.
	NextAt   time.Time
	IfAbsent bool
	Now      time.Time
}

// ScheduleListParams filters a schedule listing; empty fields match everything.
type ScheduleListParams struct {
	Workspace string
	Source    string
	Recipe    string
}

// ScheduleFireParams fires a schedule's due ticks.
type ScheduleFireParams struct {
	ID string
	// ExpectNextAt is the next tick the caller read; the fire applies only if it is still
	// the stored one and the schedule is not paused.
	ExpectNextAt time.Time
	// NextAt is the next tick afterwards (zero: the schedule never fires again).
	NextAt time.Time
	// Runs are the runs of the ticks, oldest first, each with ScheduleID and ScheduledFor.
	Runs []*RunInsertParams
	// SkipIfActive starts no run while a run of the schedule is queued, scheduled, running
	// or paused, and at most one run otherwise (overlap: skip).
	SkipIfActive bool
	// Trigger starts the runs now, outside the ticks: no guard, next tick unchanged, no
	// overlap check.
	Trigger bool
	Now     time.Time
}

// ScheduleFireResult is what a fire did.
type ScheduleFireResult struct {
	// Fired is false when another node fired the ticks first, or the schedule was paused
	// or deleted; nothing changed then.
	Fired bool
	// Runs are the runs started.
	Runs []*spool.Run
	// Skipped counts ticks that started no run (overlap, or a run for the tick existed).
	Skipped int
	// Schedule is the schedule afterwards (nil when not fired).
	Schedule *Schedule
}

// RateState is one rate-limit bucket that is empty or held.
type RateState struct {
	Key string `json:"key"`
	// Tokens is how many runs may start now (below 1: none).
	Tokens float64 `json:"tokens"`
	// NextAt is when the next run under the bucket may start.
	NextAt time.Time `json:"next_at"`
	// HeldUntil is set while a provider back-off holds the bucket's agent.
	HeldUntil *time.Time `json:"held_until,omitempty"`
	// Waiting counts the queued runs that wait on this bucket.
	Waiting int64 `json:"waiting"`
}
