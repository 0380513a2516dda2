package queue_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/executor/llm"
	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/queue"
)

// testClock is an injected clock that moves only when the test moves it.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// t0 is the start of the injected clock: far from the real time, so nothing can pass for due
// by accident.
var t0 = time.Date(2031, 3, 1, 12, 0, 30, 0, time.UTC)

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startLog records the order in which runs start and the injected time of each start.
type startLog struct {
	mu    sync.Mutex
	ids   []string
	times []time.Time
}

func (l *startLog) handler(clock *testClock) queue.Handler {
	return queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		l.mu.Lock()
		l.ids = append(l.ids, r.ID)
		l.times = append(l.times, clock.Now())
		l.mu.Unlock()
		return "ok", nil
	})
}

func (l *startLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

func (l *startLog) order() ([]string, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids), slices.Clone(l.times)
}

func TestDelayedRunsStartAtTheirTimeInPriorityOrder(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		clock := newTestClock(t0)
		var log startLog
		e := testEngine(t, queue.Config{Now: clock.Now, Limits: spool.Limits{Global: 1}, Workers: 1},
			map[string]queue.Handler{"work": log.handler(clock)})
		at := t0.Add(10 * time.Second)
		a := submit(t, e, &spool.SubmitRequest{Recipe: "work", Priority: prio(spool.PriorityLow), Delay: spool.Duration(10 * time.Second)})
		b := submit(t, e, &spool.SubmitRequest{Recipe: "work", Priority: prio(spool.PriorityUrgent), RunAt: &at})
		c := submit(t, e, &spool.SubmitRequest{Recipe: "work", Delay: spool.Duration(10 * time.Second)})
		d := submit(t, e, &spool.SubmitRequest{Recipe: "work", Priority: prio(spool.PriorityHigh), Delay: spool.Duration(5 * time.Second)})
		later := submit(t, e, &spool.SubmitRequest{Recipe: "work", Priority: prio(spool.PriorityUrgent), Delay: spool.Duration(time.Hour)})
		for _, r := range []*spool.Run{a, b, c, d, later} {
			if r.State != spool.StateScheduled {
				t.Fatalf("run with a delay is %s, want scheduled", r.State)
			}
		}
		// A run submitted now starts now; none of the delayed ones has started with it.
		now := submit(t, e, &spool.SubmitRequest{Recipe: "work", Priority: prio(spool.PriorityLow)})
		wait(t, e, now.ID)
		e.Wake()
		if got := wait(t, e, submit(t, e, &spool.SubmitRequest{Recipe: "work"}).ID); got.State != spool.StateSucceeded {
			t.Fatal(got.State)
		}
		if n := log.count(); n != 2 {
			t.Fatalf("%d runs started before any delay passed, want 2", n)
		}

		clock.Add(5 * time.Second)
		e.Wake()
		wait(t, e, d.ID)
		clock.Add(5 * time.Second)
		e.Wake()
		for _, r := range []*spool.Run{a, b, c} {
			if got := wait(t, e, r.ID); got.State != spool.StateSucceeded {
				t.Fatalf("run %s ended %s", r.ID, got.State)
			}
		}
		ids, times := log.order()
		want := []string{d.ID, b.ID, c.ID, a.ID}
		if !slices.Equal(ids[2:], want) {
			t.Errorf("delayed runs started in order %v, want %v (high at 5s, then urgent, normal, low at 10s)", ids[2:], want)
		}
		if !times[2].Equal(t0.Add(5*time.Second)) || !times[5].Equal(t0.Add(10*time.Second)) {
			t.Errorf("start times %v", times)
		}
		if got, _ := e.Get(context.Background(), later.ID); got.State != spool.StateScheduled {
			t.Errorf("the run due in an hour is %s, want scheduled", got.State)
		}
	})
}

// scheduleRuns lists the runs a schedule started, oldest tick first.
func scheduleRuns(t *testing.T, e *queue.Engine, scheduleID string) []*spool.Run {
	t.Helper()
	list, err := e.List(context.Background(), spool.ListParams{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*spool.Run
	for _, r := range list.Runs {
		if r.ScheduleID == scheduleID {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *spool.Run) int { return a.ScheduledFor.Compare(*b.ScheduledFor) })
	return out
}

func ticks(runs []*spool.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ScheduledFor.Format("15:04:05")
	}
	return out
}

// waitNextTick waits until the scheduler has moved the schedule's next tick to want.
func waitNextTick(t *testing.T, e *queue.Engine, id string, want time.Time) {
	t.Helper()
	waitFor(t, "next tick "+want.Format(time.TimeOnly), func() bool {
		sc, err := e.Schedule(context.Background(), "", id)
		if err != nil {
			t.Fatal(err)
		}
		return sc.NextAt != nil && sc.NextAt.Equal(want)
	})
}

func TestScheduleCatchupAfterOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		catchup string
		want    []string // ticks that started runs
	}{
		// Every 5 minutes; the nodes are down from 12:05:30 to 12:33:30: ticks 12:10 to
		// 12:30 pass, and 12:30 is more than a minute late when the nodes come back.
		{"none", []string{"12:05:00", "12:35:00"}},
		{"last", []string{"12:05:00", "12:30:00", "12:35:00"}},
		{"all", []string{"12:05:00", "12:10:00", "12:15:00", "12:20:00", "12:25:00", "12:30:00", "12:35:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.catchup, func(t *testing.T) {
			t.Parallel()
			forEachDriver(t, func(t *testing.T) {
				clock := newTestClock(t0)
				var log startLog
				handlers := map[string]queue.Handler{"tick": log.handler(clock)}
				db := testDB(t)
				e := testEngine(t, queue.Config{DB: db, Now: clock.Now}, handlers)
				sc, err := e.CreateSchedule(context.Background(), &queue.ScheduleRequest{
					Name: "every-5m", Recipe: "tick", Cron: "*/5 * * * *", Catchup: tt.catchup})
				if err != nil {
					t.Fatal(err)
				}
				first := time.Date(2031, 3, 1, 12, 5, 0, 0, time.UTC)
				if sc.NextAt == nil || !sc.NextAt.Equal(first) || len(sc.NextRunTimes) != 5 {
					t.Fatalf("new schedule: next %v, next times %v", sc.NextAt, sc.NextRunTimes)
				}
				clock.Set(first.Add(time.Millisecond))
				e.Wake()
				waitNextTick(t, e, sc.ID, first.Add(5*time.Minute))
				waitFor(t, "the first tick's run", func() bool { return log.count() == 1 })

				// Outage: every node stops; time passes; a node starts again.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := e.Stop(ctx); err != nil {
					t.Fatal(err)
				}
				clock.Set(time.Date(2031, 3, 1, 12, 33, 30, 0, time.UTC))
				e2 := testEngine(t, queue.Config{DB: db, Now: clock.Now}, handlers)
				waitNextTick(t, e2, sc.ID, time.Date(2031, 3, 1, 12, 35, 0, 0, time.UTC))
				clock.Set(time.Date(2031, 3, 1, 12, 35, 0, 0, time.UTC))
				e2.Wake()
				waitNextTick(t, e2, sc.ID, time.Date(2031, 3, 1, 12, 40, 0, 0, time.UTC))

				runs := scheduleRuns(t, e2, sc.ID)
				if got := ticks(runs); !slices.Equal(got, tt.want) {
					t.Errorf("catchup %s: runs for ticks %v, want %v", tt.catchup, got, tt.want)
				}
				for _, r := range runs {
					if got := wait(t, e2, r.ID); got.State != spool.StateSucceeded {
						t.Errorf("run of tick %s ended %s", r.ScheduledFor, got.State)
					}
				}
				got, err := e2.Schedule(context.Background(), "", "every-5m")
				if err != nil {
					t.Fatal(err)
				}
				if last := runs[len(runs)-1]; got.LastRunID != last.ID || !got.LastAt.Equal(*last.ScheduledFor) {
					t.Errorf("schedule's last run %s at %v, want %s", got.LastRunID, got.LastAt, last.ID)
				}
			})
		})
	}
}

func TestScheduleOverlapSkip(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		clock := newTestClock(t0)
		b := newBlocker()
		e := testEngine(t, queue.Config{Now: clock.Now, Lease: time.Hour}, map[string]queue.Handler{"slow": b})
		ctx := context.Background()
		sc, err := e.CreateSchedule(ctx, &queue.ScheduleRequest{Name: "minutely", Recipe: "slow", Every: "1m", Overlap: "skip"})
		if err != nil {
			t.Fatal(err)
		}
		minute := func(m int) time.Time { return time.Date(2031, 3, 1, 12, m, 0, 0, time.UTC) }
		clock.Set(minute(1))
		e.Wake()
		<-b.started // the 12:01 run holds on
		clock.Set(minute(2))
		e.Wake()
		waitNextTick(t, e, sc.ID, minute(3))
		if runs := scheduleRuns(t, e, sc.ID); len(runs) != 1 {
			t.Fatalf("ticks %v started runs while the 12:01 run was active; want it skipped", ticks(runs))
		}
		b.release <- struct{}{}
		runs := scheduleRuns(t, e, sc.ID)
		wait(t, e, runs[0].ID)
		clock.Set(minute(3))
		e.Wake()
		<-b.started
		b.release <- struct{}{}
		waitNextTick(t, e, sc.ID, minute(4))
		runs = scheduleRuns(t, e, sc.ID)
		if got := ticks(runs); !slices.Equal(got, []string{"12:01:00", "12:03:00"}) {
			t.Errorf("overlap skip: runs for ticks %v, want 12:01 and 12:03", got)
		}
		for _, r := range runs {
			wait(t, e, r.ID)
		}
	})
}

func TestScheduleAPIAndRecipeSchedules(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		clock := newTestClock(t0)
		var log startLog
		h := log.handler(clock)
		e := testEngine(t, queue.Config{Now: clock.Now}, map[string]queue.Handler{"work": h})
		ctx := context.Background()
		hi := spool.PriorityHigh
		e.SetRecipes([]*queue.Recipe{{Name: "digest", Handler: h, Schedules: []queue.RecipeSchedule{
			{Name: "nightly", Cron: "0 3 * * *", Timezone: "Europe/Berlin", Priority: &hi, Catchup: "last"},
		}}})
		e.Wake()
		var nightly *queue.Schedule
		waitFor(t, "the recipe's schedule", func() bool {
			var err error
			nightly, err = e.Schedule(ctx, "", "digest:nightly")
			return err == nil
		})
		if nightly.Source != store.SourceRecipe || nightly.Timezone != "Europe/Berlin" ||
			!nightly.NextAt.Equal(time.Date(2031, 3, 2, 2, 0, 0, 0, time.UTC)) || *nightly.Priority != hi {
			t.Errorf("recipe schedule = %+v", nightly.Schedule)
		}

		// Create, validation, conflicts.
		bad := []struct {
			req   queue.ScheduleRequest
			field string
		}{
			{queue.ScheduleRequest{Recipe: "work", Cron: "* * * * *"}, "name"},
			{queue.ScheduleRequest{Name: "a b", Recipe: "work", Cron: "* * * * *"}, "name"},
			{queue.ScheduleRequest{Name: "x", Recipe: "work"}, "cron"},
			{queue.ScheduleRequest{Name: "x", Recipe: "work", Cron: "* * *"}, "cron"},
			{queue.ScheduleRequest{Name: "x", Recipe: "work", Every: "1ms"}, "every"},
			{queue.ScheduleRequest{Name: "x", Recipe: "work", Cron: "@daily", Timezone: "Mars/Base"}, "timezone"},
			{queue.ScheduleRequest{Name: "x", Recipe: "work", Cron: "@daily", Catchup: "some"}, "catchup"},
			{queue.ScheduleRequest{Name: "x", Recipe: "work", Cron: "@daily", Overlap: "never"}, "overlap"},
		}
		for _, b := range bad {
			_, err := e.CreateSchedule(ctx, &b.req)
			var se *spool.Error
			if !errors.As(err, &se) || se.Code != spool.CodeInvalid || len(se.Fields) == 0 || se.Fields[0].Field != b.field {
				t.Errorf("CreateSchedule(%+v) = %v, want invalid %s", b.req, err, b.field)
			}
		}
		if _, err := e.CreateSchedule(ctx, &queue.ScheduleRequest{Name: "x", Recipe: "nope", Cron: "@daily"}); !isCode(err, spool.CodeUnknownRecipe) {
			t.Errorf("unknown recipe: %v", err)
		}
		sc, err := e.CreateSchedule(ctx, &queue.ScheduleRequest{Name: "often", Recipe: "work", Every: "10m",
			Input: []byte(`{"n":1}`), Workspace: "team"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sc.ID, "sch_") || sc.Every != "10m" || sc.Workspace != "team" ||
			!sc.NextAt.Equal(time.Date(2031, 3, 1, 12, 10, 0, 0, time.UTC)) || len(sc.NextRunTimes) != 5 ||
			!sc.NextRunTimes[4].Equal(time.Date(2031, 3, 1, 12, 50, 0, 0, time.UTC)) {
			t.Errorf("created %+v", sc)
		}
		if _, err := e.CreateSchedule(ctx, &queue.ScheduleRequest{Name: "often", Recipe: "work", Every: "1h", Workspace: "team"}); !isCode(err, spool.CodeConflict) {
			t.Errorf("duplicate name: %v", err)
		}
		// Workspaces: a schedule is found by id or name in its own workspace only.
		if _, err := e.Schedule(ctx, "other", sc.ID); !isCode(err, spool.CodeNotFound) {
			t.Errorf("get from another workspace: %v", err)
		}
		if got, err := e.Schedule(ctx, "team", "often"); err != nil || got.ID != sc.ID {
			t.Errorf("get by name: %v %v", got, err)
		}
		list, err := e.Schedules(ctx, "")
		if err != nil || len(list) != 2 {
			t.Fatalf("list: %d schedules, %v", len(list), err)
		}

		// Pause: no ticks fire; resume: the next tick after now, the paused ones never.
		if p, err := e.PauseSchedule(ctx, "team", sc.ID); err != nil || !p.Paused || p.NextAt != nil || len(p.NextRunTimes) != 0 {
			t.Fatalf("pause: %+v %v", p, err)
		}
		clock.Set(time.Date(2031, 3, 1, 12, 35, 0, 0, time.UTC))
		e.Wake()
		r, err := e.TriggerSchedule(ctx, "team", "often")
		if err != nil {
			t.Fatal(err)
		}
		if r.ScheduleID != sc.ID || !r.ScheduledFor.Equal(clock.Now()) || r.Workspace != "team" || string(r.Input) != `{"n":1}` {
			t.Errorf("triggered run = %+v", r)
		}
		wait(t, e, r.ID)
		res, err := e.ResumeSchedule(ctx, "team", sc.ID)
		if err != nil || res.Paused || !res.NextAt.Equal(time.Date(2031, 3, 1, 12, 40, 0, 0, time.UTC)) {
			t.Fatalf("resume: %+v %v", res, err)
		}
		if runs := scheduleRuns(t, e, sc.ID); len(runs) != 1 {
			t.Errorf("paused schedule started %d runs besides the trigger", len(runs)-1)
		}

		// A recipe's schedule cannot be deleted through the API; it goes with the recipe.
		if err := e.DeleteSchedule(ctx, "", "digest:nightly"); !isCode(err, spool.CodeConflict) {
			t.Errorf("delete a recipe schedule: %v", err)
		}
		e.SetRecipes(nil) // the recipe file is gone
		waitFor(t, "the recipe schedule's removal", func() bool {
			_, err := e.Schedule(ctx, "", nightly.ID)
			return isCode(err, spool.CodeNotFound)
		})
		if err := e.DeleteSchedule(ctx, "team", sc.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Schedule(ctx, "team", sc.ID); !isCode(err, spool.CodeNotFound) {
			t.Errorf("get after delete: %v", err)
		}
		if err := e.DeleteSchedule(ctx, "team", sc.ID); !isCode(err, spool.CodeNotFound) {
			t.Errorf("delete twice: %v", err)
		}
	})
}

func isCode(err error, code string) bool {
	var se *spool.Error
	return errors.As(err, &se) && se.Code == code
}

// TestRateLimitPace submits 100 runs under a rate of 60 a minute with bursts of 10: ten
// start at once, then one a second of the injected clock. On PostgreSQL two engines share
// the database and the bucket.
func TestRateLimitPace(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		clock := newTestClock(t0)
		var log startLog
		handlers := map[string]queue.Handler{"chat": log.handler(clock),
			"other": queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) { return nil, nil })}
		cfg := queue.Config{Now: clock.Now, DB: testDB(t), Limits: spool.Limits{Global: 50},
			AgentRates: map[string]queue.Rate{"llm": {Limit: 60, Per: time.Minute, Burst: 10}}}
		engines := []*queue.Engine{testEngine(t, cfg, handlers)}
		if engines[0].DatabaseName() == "postgres" {
			engines = append(engines, testEngine(t, cfg, handlers))
		}
		wake := func() {
			for _, e := range engines {
				e.Wake()
			}
		}
		reqs := make([]*spool.SubmitRequest, 100)
		for i := range reqs {
			reqs[i] = &spool.SubmitRequest{Recipe: "chat", Agent: "llm"}
		}
		runs, err := engines[0].SubmitMany(context.Background(), reqs)
		if err != nil {
			t.Fatal(err)
		}
		wake()
		waitFor(t, "the burst of 10", func() bool { return log.count() >= 10 })
		// Another agent is not held up by the empty bucket.
		other := submit(t, engines[len(engines)-1], &spool.SubmitRequest{Recipe: "other"})
		wait(t, engines[len(engines)-1], other.ID)
		if n := log.count(); n != 10 {
			t.Fatalf("%d runs of the rate-limited agent started at once, want 10", n)
		}
		st, err := engines[0].TimeStats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.RateLimited != 90 || st.RateLimitedNextAt == nil || !st.RateLimitedNextAt.Round(time.Millisecond).Equal(t0.Add(time.Second)) ||
			len(st.Buckets) != 1 || st.Buckets[0].Key != "agent:llm" {
			t.Errorf("time stats = %+v", st)
		}
		for i := 1; i <= 90; i++ {
			clock.Add(time.Second)
			wake()
			waitFor(t, fmt.Sprintf("run %d", 10+i), func() bool { return log.count() >= 10+i })
		}
		// Start i (from 0) may happen at the earliest i-9 seconds in: 10 at once, then one a second.
		_, times := log.order()
		for i, at := range times {
			if sec := int(at.Sub(t0) / time.Second); i-9 > sec {
				t.Errorf("start %d at +%ds: ahead of the limit's pace", i, sec)
			}
		}
		for _, r := range runs {
			if got := wait(t, engines[0], r.ID); got.State != spool.StateSucceeded || got.Attempt != 1 {
				t.Errorf("run ended %s after %d attempts, want succeeded after 1", got.State, got.Attempt)
			}
		}
	})
}

// TestProviderBackoffHoldsAgent runs llm runs against a streaming server that first answers
// 429 with Retry-After: 2. The run goes back to the queue without using an attempt and
// the agent is held for two seconds of the injected clock on every node.
func TestProviderBackoffHoldsAgent(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T) {
		var requests atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if requests.Add(1) == 1 {
				w.Header().Set("Retry-After", "2")
				http.Error(w, `{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}`, http.StatusTooManyRequests)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			for _, tok := range []string{"he", "llo"} {
				fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", tok)
				w.(http.Flusher).Flush()
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
		}))
		defer srv.Close()
		h, err := llm.New(llm.Config{BaseURL: srv.URL, Model: "m", Client: srv.Client(), MaxRetries: -1,
			LookupEnv: func(string) (string, bool) { return "", false }})
		if err != nil {
			t.Fatal(err)
		}
		clock := newTestClock(t0)
		quick := queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) { return nil, nil })
		cfg := queue.Config{Now: clock.Now, DB: testDB(t), Limits: spool.Limits{Global: 10, Agents: map[string]int{"llm": 1}}}
		handlers := map[string]queue.Handler{"llm": h, "quick": quick}
		engines := []*queue.Engine{testEngine(t, cfg, handlers)}
		if engines[0].DatabaseName() == "postgres" {
			engines = append(engines, testEngine(t, cfg, handlers))
		}
		var runs []*spool.Run
		for i := 0; i < 3; i++ {
			runs = append(runs, submit(t, engines[0], &spool.SubmitRequest{Recipe: "llm", Input: []byte(`"hi"`)}))
		}
		waitFor(t, "the 429", func() bool {
			r, _ := engines[0].Get(context.Background(), runs[0].ID)
			return requests.Load() >= 1 && r.State == spool.StateQueued && r.AvailableAt.After(t0)
		})
		// Every engine works another agent's run, but none calls the provider again.
		for _, e := range engines {
			wait(t, e, submit(t, e, &spool.SubmitRequest{Recipe: "quick"}).ID)
			e.Wake()
			wait(t, e, submit(t, e, &spool.SubmitRequest{Recipe: "quick"}).ID)
		}
		if n := requests.Load(); n != 1 {
			t.Fatalf("the provider got %d requests while the agent was held, want 1", n)
		}
		st, err := engines[len(engines)-1].TimeStats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.RateLimited != 3 || len(st.Buckets) != 1 || st.Buckets[0].HeldUntil == nil ||
			!st.Buckets[0].HeldUntil.Equal(t0.Add(2*time.Second)) {
			t.Errorf("time stats while held: %+v", st)
		}

		clock.Add(2 * time.Second)
		for _, e := range engines {
			e.Wake()
		}
		for _, r := range runs {
			got := wait(t, engines[0], r.ID)
			if got.State != spool.StateSucceeded || got.Attempt != 1 || string(got.Result) == "" {
				t.Errorf("run ended %s after %d attempts (%s), want succeeded after 1", got.State, got.Attempt, got.Error)
			}
		}
		if n := requests.Load(); n != 4 {
			t.Errorf("the provider got %d requests, want 4", n)
		}
		evs, err := engines[0].Events(context.Background(), runs[0].ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var logged bool
		for _, ev := range evs {
			logged = logged || ev.Type == spool.EventLog && strings.Contains(ev.Text, "agent llm held until")
		}
		if !logged {
			t.Error("the run's events do not tell that its agent was held")
		}
	})
}
