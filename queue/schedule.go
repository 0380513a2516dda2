package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/ids"
	"github.com/spool-run/spool/internal/schedule"
	"github.com/spool-run/spool/internal/store"
)

// RecipeSchedule is a schedule defined in a recipe (runtime.schedules). It is stored as the
// schedule named "RECIPE:NAME" in the default workspace when the engine starts and whenever
// the recipes change; schedules of recipes that no longer define them are deleted.
type RecipeSchedule struct {
	Name string
	// Cron is a cron expression (optional seconds, descriptors such as @daily or
	// @every 10m), or Every an interval; one is set.
	Cron     string
	Every    string
	Timezone string
	Input    json.RawMessage
	Priority *spool.Priority
	// Catchup is none (default), last or all; Overlap allow (default) or skip.
	Catchup string
	Overlap string
}

// ScheduleRequest creates a schedule through the API. Its JSON form is the body of
// POST /api/v1/schedules.
type ScheduleRequest struct {
	// Name is unique within the workspace: letters, digits, '.', '_' and '-'.
	Name   string `json:"name"`
	Recipe string `json:"recipe_name"`
	// Cron is a cron expression with optional seconds, or a descriptor (@daily,
	// @every 10m); Every an interval ("15m"). Give one.
	Cron     string `json:"cron,omitempty"`
	Every    string `json:"every,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	// Catchup is none (default), last or all; Overlap allow (default) or skip.
	Catchup string `json:"catchup,omitempty"`
	Overlap string `json:"overlap,omitempty"`
	// Paused creates the schedule paused.
	Paused bool `json:"paused,omitempty"`

	// The run each tick starts; empty fields take the recipe's defaults.
	Input      json.RawMessage `json:"input,omitempty"`
	Config     json.RawMessage `json:"config,omitempty"`
	Metadata   map[string]any  `json:"metadata,omitempty"`
	Priority   *spool.Priority `json:"priority,omitempty"`
	Agent      string          `json:"agent,omitempty"`
	Workspace  string          `json:"workspace,omitempty"`
	TimeoutSec int             `json:"timeout,omitempty"`
	MaxRetries *int            `json:"max_retries,omitempty"`
}

// Schedule is a schedule as the API shows it: the stored schedule and its next fire times.
type Schedule struct {
	store.Schedule
	// NextRunTimes are the next five ticks (none while paused).
	NextRunTimes []time.Time `json:"next_run_times"`
}

// scheduleListSize is how many due schedules one scheduler pass reads at a time.
const scheduleListSize = 100

// scheduleLoop fires due schedule ticks and sleeps until the next one, or until a schedule
// changes (here or, on PostgreSQL, on another node), or the fallback poll. Any node may
// fire a tick; the store makes sure exactly one does.
func (e *Engine) scheduleLoop(ctx context.Context) {
	ts := e.store
	poll := e.store.DatabaseName() != "sqlite"
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		synced := e.synced
		e.mu.Unlock()
		if !synced {
			if err := e.syncRecipeSchedules(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("storing the recipes' schedules", "err", err)
			}
		}
		next := e.fireSchedules(ctx, ts)
		wait := time.Hour
		if poll {
			wait = e.cfg.PollInterval
		}
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(e.now()), 0))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.schedWake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// fireSchedules fires every due schedule and returns the next tick to wake for (zero: none).
func (e *Engine) fireSchedules(ctx context.Context, ts store.TimeStore) time.Time {
	for {
		now := e.now()
		due, err := ts.ScheduleDue(ctx, now, scheduleListSize)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("reading due schedules", "err", err)
			}
			return now.Add(time.Second)
		}
		for _, sc := range due {
			if err := e.fireSchedule(ctx, ts, sc, now); err != nil {
				if ctx.Err() == nil {
					e.log.Error("firing schedule", "schedule", sc.Name, "id", sc.ID, "err", err)
				}
				return now.Add(time.Second)
			}
		}
		if len(due) == scheduleListSize {
			continue
		}
		next, ok, err := ts.ScheduleNextWake(ctx)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("reading the next schedule tick", "err", err)
			}
			return now.Add(time.Second)
		}
		if !ok {
			return time.Time{}
		}
		if !next.After(e.now()) && len(due) > 0 {
			continue // a catch-up batch left ticks, or a tick fell due meanwhile
		}
		return next
	}
}

// fireSchedule starts the runs of one schedule's due ticks as its catch-up and overlap
// policies say, and moves its next tick. A tick whose run cannot be made (its recipe is
// gone, its input no longer fits) is skipped with an error in the log, so a broken schedule
// never stops the others.
func (e *Engine) fireSchedule(ctx context.Context, ts store.TimeStore, sc *store.Schedule, now time.Time) error {
	p := &store.ScheduleFireParams{ID: sc.ID, ExpectNextAt: *sc.NextAt, Now: now,
		SkipIfActive: sc.Overlap == string(schedule.OverlapSkip)}
	spec, err := schedule.Parse(sc.Cron, sc.Every, sc.Timezone)
	if err != nil {
		e.log.Error("schedule cannot be read; it stops firing", "schedule", sc.Name, "err", err)
	} else {
		policy, _ := schedule.ParseCatchup(sc.Catchup)
		plan := schedule.Due(spec, *sc.NextAt, now, policy)
		p.NextAt = plan.Next
		if plan.Missed {
			e.log.Warn("schedule missed ticks while no node could fire them", "schedule", sc.Name,
				"since", sc.NextAt.Format(time.RFC3339), "catchup", sc.Catchup)
		}
		for _, tick := range plan.Fire {
			rp, err := e.resolve(ctx, scheduleSubmit(sc, tick))
			if err != nil {
				e.log.Error("schedule tick skipped: its run is not valid", "schedule", sc.Name,
					"tick", tick.Format(time.RFC3339), "err", err)
				continue
			}
			p.Runs = append(p.Runs, rp)
		}
	}
	res, err := ts.ScheduleFire(ctx, p)
	if err != nil {
		return err
	}
	for _, r := range res.Runs {
		e.submitted(r)
	}
	if res.Fired && res.Skipped > 0 {
		e.log.Info("schedule ticks skipped", "schedule", sc.Name, "skipped", res.Skipped, "overlap", sc.Overlap)
	}
	return nil
}

// scheduleSubmit is the submit of a schedule's run for tick.
func scheduleSubmit(sc *store.Schedule, tick time.Time) *spool.SubmitRequest {
	t := tick.UTC()
	return &spool.SubmitRequest{
		Recipe: sc.Recipe, Input: sc.Input, Config: sc.Config, Metadata: sc.Metadata,
		Priority: sc.Priority, Agent: sc.Agent, Workspace: sc.Workspace,
		TimeoutSec: sc.TimeoutSec, MaxRetries: sc.MaxRetries,
		ScheduleID: sc.ID, ScheduledFor: &t,
	}
}

// syncRecipeSchedules stores the schedules the recipes define and deletes the stored
// recipe schedules that no recipe defines any more.
func (e *Engine) syncRecipeSchedules(ctx context.Context) error {
	ts := e.store
	e.mu.Lock()
	recipes := make([]*Recipe, 0, len(e.recipes))
	for _, r := range e.recipes {
		recipes = append(recipes, r)
	}
	e.synced = true
	e.mu.Unlock()
	keep := map[string]bool{}
	var errs []error
	for _, r := range recipes {
		for _, rs := range r.Schedules {
			name := r.Name + ":" + rs.Name
			keep[name] = true
			p, err := e.scheduleParams(&ScheduleRequest{
				Name: name, Recipe: r.Name, Cron: rs.Cron, Every: rs.Every, Timezone: rs.Timezone,
				Catchup: rs.Catchup, Overlap: rs.Overlap, Input: rs.Input, Priority: rs.Priority,
			}, store.SourceRecipe)
			if err == nil {
				_, _, err = ts.ScheduleUpsert(ctx, p)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("recipe %s: schedule %s: %w", r.Name, rs.Name, err))
			}
		}
	}
	stored, err := ts.ScheduleList(ctx, &store.ScheduleListParams{Source: store.SourceRecipe})
	if err != nil {
		return err
	}
	for _, sc := range stored {
		if sc.Workspace == DefaultWorkspace && keep[sc.Name] {
			continue
		}
		switch err := ts.ScheduleDelete(ctx, sc.ID); {
		case err == nil:
			e.log.Info("deleted schedule its recipe no longer defines", "schedule", sc.Name)
		case !errors.Is(err, spool.ErrNotFound):
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		e.mu.Lock()
		e.synced = false // try again at the next pass
		e.mu.Unlock()
	}
	return errors.Join(errs...)
}

// scheduleParams validates a schedule request and resolves its defaults.
func (e *Engine) scheduleParams(req *ScheduleRequest, source string) (*store.ScheduleUpsertParams, error) {
	if req == nil {
		return nil, spool.Invalid("body", "a schedule is required")
	}
	if source == store.SourceAPI {
		if err := checkScheduleName(req.Name); err != nil {
			return nil, err
		}
	}
	spec, err := schedule.Parse(strings.TrimSpace(req.Cron), strings.TrimSpace(req.Every), req.Timezone)
	if err != nil {
		field := "cron"
		switch {
		case strings.HasPrefix(err.Error(), "timezone"):
			field = "timezone"
		case req.Cron == "" && req.Every != "":
			field = "every"
		}
		return nil, spool.Invalid(field, err.Error())
	}
	catchup, err := schedule.ParseCatchup(req.Catchup)
	if err != nil {
		return nil, spool.Invalid("catchup", "must be one of none, last, all")
	}
	overlap, err := schedule.ParseOverlap(req.Overlap)
	if err != nil {
		return nil, spool.Invalid("overlap", "must be one of allow, skip")
	}
	ws := req.Workspace
	if ws == "" {
		ws = DefaultWorkspace
	}
	now := e.now()
	// A run made now from the schedule must be valid: recipe, input, priority, limits.
	sc := &store.Schedule{
		Name: req.Name, Workspace: ws, Recipe: strings.TrimSpace(req.Recipe), Source: source,
		Cron: strings.TrimSpace(req.Cron), Every: strings.TrimSpace(req.Every), Timezone: req.Timezone,
		Catchup: string(catchup), Overlap: string(overlap), Paused: req.Paused,
		Input: req.Input, Config: req.Config, Metadata: req.Metadata, Priority: req.Priority,
		Agent: req.Agent, TimeoutSec: req.TimeoutSec, MaxRetries: req.MaxRetries,
	}
	if _, err := e.resolve(context.Background(), scheduleSubmit(sc, now)); err != nil {
		return nil, err
	}
	next := spec.Next(now)
	if next.IsZero() {
		return nil, spool.Invalid("cron", "never fires in the next five years")
	}
	sc.ID = ids.New("sch")
	return &store.ScheduleUpsertParams{Schedule: *sc, NextAt: next, Now: now}, nil
}

func checkScheduleName(name string) error {
	if name == "" {
		return spool.Invalid("name", "is required")
	}
	if len(name) > 100 {
		return spool.Invalid("name", "longer than 100 characters")
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return spool.Invalid("name", "may hold only letters, digits, '.', '_' and '-'")
		}
	}
	if strings.HasPrefix(name, "sch_") {
		return spool.Invalid("name", "must not start with sch_ (schedule ids do)")
	}
	return nil
}

// view adds the next fire times to a stored schedule.
func (e *Engine) view(sc *store.Schedule) *Schedule {
	v := &Schedule{Schedule: *sc, NextRunTimes: []time.Time{}}
	if sc.Paused {
		v.NextAt = nil
		return v
	}
	if sc.NextAt == nil {
		return v
	}
	spec, err := schedule.Parse(sc.Cron, sc.Every, sc.Timezone)
	if err != nil {
		return v
	}
	v.NextRunTimes = append(v.NextRunTimes, *sc.NextAt)
	v.NextRunTimes = append(v.NextRunTimes, spec.Upcoming(*sc.NextAt, 4)...)
	return v
}

// CreateSchedule stores a new schedule. A schedule with the same name in the workspace is a
// conflict; so is a name used by a recipe's schedule.
func (e *Engine) CreateSchedule(ctx context.Context, req *ScheduleRequest) (*Schedule, error) {
	p, err := e.scheduleParams(req, store.SourceAPI)
	if err != nil {
		return nil, err
	}
	p.IfAbsent = true
	sc, _, err := e.store.ScheduleUpsert(ctx, p)
	if err != nil {
		return nil, err
	}
	e.signalSchedules()
	return e.view(sc), nil
}

// Schedules lists the schedules (of one workspace when workspace is not empty), sorted by
// workspace and name.
func (e *Engine) Schedules(ctx context.Context, workspace string) ([]*Schedule, error) {
	list, err := e.store.ScheduleList(ctx, &store.ScheduleListParams{Workspace: workspace})
	if err != nil {
		return nil, err
	}
	out := make([]*Schedule, len(list))
	for i, sc := range list {
		out[i] = e.view(sc)
	}
	return out, nil
}

// Schedule returns one schedule by id, or by name within workspace (the default workspace
// when empty). A schedule of another workspace is not found.
func (e *Engine) Schedule(ctx context.Context, workspace, idOrName string) (*Schedule, error) {
	sc, err := e.getSchedule(ctx, workspace, idOrName)
	if err != nil {
		return nil, err
	}
	return e.view(sc), nil
}

func (e *Engine) getSchedule(ctx context.Context, workspace, idOrName string) (*store.Schedule, error) {
	ws := workspace
	if ws == "" {
		ws = DefaultWorkspace
	}
	sc, err := e.store.ScheduleGet(ctx, ws, idOrName)
	if err != nil {
		return nil, err
	}
	if workspace != "" && sc.Workspace != workspace {
		return nil, &spool.Error{Code: spool.CodeNotFound, Message: "schedule " + idOrName + " not found"}
	}
	return sc, nil
}

// DeleteSchedule deletes a schedule; the runs it started stay. A recipe's schedule cannot be
// deleted here (it would come back with the recipe): remove it from the recipe.
func (e *Engine) DeleteSchedule(ctx context.Context, workspace, idOrName string) error {
	sc, err := e.getSchedule(ctx, workspace, idOrName)
	if err != nil {
		return err
	}
	if sc.Source == store.SourceRecipe {
		return &spool.Error{Code: spool.CodeConflict, Message: "schedule " + sc.Name +
			" is defined by recipe " + sc.Recipe + "; remove it from the recipe's runtime.schedules, or pause it"}
	}
	if err := e.store.ScheduleDelete(ctx, sc.ID); err != nil {
		return err
	}
	e.signalSchedules()
	return nil
}

// PauseSchedule stops a schedule from firing until it is resumed.
func (e *Engine) PauseSchedule(ctx context.Context, workspace, idOrName string) (*Schedule, error) {
	return e.setPaused(ctx, workspace, idOrName, true)
}

// ResumeSchedule lets a paused schedule fire again from its next tick after now; the ticks
// that passed while it was paused do not fire.
func (e *Engine) ResumeSchedule(ctx context.Context, workspace, idOrName string) (*Schedule, error) {
	return e.setPaused(ctx, workspace, idOrName, false)
}

func (e *Engine) setPaused(ctx context.Context, workspace, idOrName string, paused bool) (*Schedule, error) {
	sc, err := e.getSchedule(ctx, workspace, idOrName)
	if err != nil {
		return nil, err
	}
	spec, err := schedule.Parse(sc.Cron, sc.Every, sc.Timezone)
	if err != nil {
		return nil, spool.Invalid("cron", err.Error())
	}
	now := e.now()
	sc, err = e.store.ScheduleSetPaused(ctx, sc.ID, paused, spec.Next(now), now)
	if err != nil {
		return nil, err
	}
	e.signalSchedules()
	return e.view(sc), nil
}

// TriggerSchedule starts a run of the schedule now, outside its ticks (its scheduled_for is
// now). It works on a paused schedule too, and ignores the overlap policy.
func (e *Engine) TriggerSchedule(ctx context.Context, workspace, idOrName string) (*spool.Run, error) {
	sc, err := e.getSchedule(ctx, workspace, idOrName)
	if err != nil {
		return nil, err
	}
	now := e.now()
	p, err := e.resolve(ctx, scheduleSubmit(sc, now))
	if err != nil {
		return nil, err
	}
	res, err := e.store.ScheduleFire(ctx, &store.ScheduleFireParams{ID: sc.ID, Trigger: true, Runs: []*store.RunInsertParams{p}, Now: now})
	if err != nil {
		return nil, err
	}
	if len(res.Runs) == 0 {
		return nil, &spool.Error{Code: spool.CodeConflict, Message: "schedule " + sc.Name + " already started a run for this instant; try again"}
	}
	e.submitted(res.Runs[0])
	return res.Runs[0], nil
}
