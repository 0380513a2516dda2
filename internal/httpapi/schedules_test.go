package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// apiSchedule is a schedule as the API answers it.
type apiSchedule struct {
	queue.Schedule
}

func TestSchedulesAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(q *queue.Config, _ *Config) { q.APIOnly = true })

	var sc apiSchedule
	resp := e.must(http.StatusCreated, "POST", "/api/v1/schedules", map[string]any{
		"name": "nightly", "recipe_name": "echo", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
		"input": map[string]any{"q": 1}, "priority": "high", "catchup": "last", "overlap": "skip",
	}, &sc)
	if loc := resp.Header.Get("Location"); loc != "/api/v1/schedules/"+sc.ID || !strings.HasPrefix(sc.ID, "sch_") {
		t.Fatalf("Location %q for %s", loc, sc.ID)
	}
	if sc.Name != "nightly" || sc.Recipe != "echo" || sc.Source != "api" || sc.Catchup != "last" || sc.Overlap != "skip" ||
		*sc.Priority != spool.PriorityHigh || string(sc.Input) != `{"q":1}` || sc.NextAt == nil || len(sc.NextRunTimes) != 5 {
		t.Fatalf("created %+v", sc)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, at := range sc.NextRunTimes {
		if l := at.In(berlin); l.Hour() != 2 || l.Minute() != 30 {
			t.Errorf("next run time %s is not 02:30 in Berlin", l)
		}
	}

	// Refusals.
	e.problem(409, spool.CodeConflict, "POST", "/api/v1/schedules", map[string]any{"name": "nightly", "recipe_name": "echo", "every": "1h"})
	e.problem(422, spool.CodeUnknownRecipe, "POST", "/api/v1/schedules", map[string]any{"name": "x", "recipe_name": "nope", "every": "1h"})
	for body, field := range map[string]string{
		`{"name": "x", "recipe_name": "echo", "every": "1h", "colour": "red"}`:    "colour",
		`{"name": "x", "recipe_name": "echo", "cron": "61 * * * *"}`:              "cron",
		`{"name": "x", "recipe_name": "echo", "every": 5}`:                        "every",
		`{"name": "x", "recipe_name": "echo", "every": "1h", "priority": "asap"}`: "priority",
		`{"name": "x", "recipe_name": "echo", "every": "1h", "catchup": "most"}`:  "catchup",
		`{"name": "x y", "recipe_name": "echo", "every": "1h"}`:                   "name",
	} {
		if p := e.problem(400, spool.CodeInvalid, "POST", "/api/v1/schedules", body); len(p.Errors) == 0 || p.Errors[0].Field != field {
			t.Errorf("%s: problem %+v, want field %s", body, p, field)
		}
	}

	// List, get by id and by name.
	e.must(http.StatusCreated, "POST", "/api/v1/schedules", map[string]any{"name": "often", "recipe_name": "echo", "every": "10m"}, nil)
	var list struct {
		Schedules []apiSchedule `json:"schedules"`
	}
	e.must(http.StatusOK, "GET", "/api/v1/schedules", nil, &list)
	if len(list.Schedules) != 2 || list.Schedules[0].Name != "nightly" || list.Schedules[1].Every != "10m" {
		t.Fatalf("list = %+v", list)
	}
	var got apiSchedule
	e.must(http.StatusOK, "GET", "/api/v1/schedules/nightly", nil, &got)
	if got.ID != sc.ID {
		t.Errorf("get by name = %s", got.ID)
	}

	// Pause, trigger, resume, delete.
	e.must(http.StatusOK, "POST", "/api/v1/schedules/"+sc.ID+"/pause", nil, &got)
	if !got.Paused || got.NextAt != nil || len(got.NextRunTimes) != 0 {
		t.Errorf("paused = %+v", got)
	}
	var run apiRun
	resp = e.must(http.StatusAccepted, "POST", "/api/v1/schedules/"+sc.ID+"/trigger", nil, &run)
	if run.ScheduleID != sc.ID || run.ScheduledFor == nil || resp.Header.Get("Location") != "/api/v1/runs/"+run.ID ||
		run.Priority != spool.PriorityHigh {
		t.Errorf("triggered run = %+v", run)
	}
	e.must(http.StatusOK, "POST", "/api/v1/schedules/nightly/resume", nil, &got)
	if got.Paused || got.NextAt == nil {
		t.Errorf("resumed = %+v", got)
	}
	resp, _ = e.do("DELETE", "/api/v1/schedules/"+sc.ID, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete = %d", resp.StatusCode)
	}
	for _, path := range []string{"", "/pause", "/resume", "/trigger"} {
		method := "POST"
		if path == "" {
			method = "GET"
		}
		e.problem(404, spool.CodeNotFound, method, "/api/v1/schedules/"+sc.ID+path, nil)
	}
	// The triggered run stays, with the schedule's id.
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+run.ID, nil, &run)
	if run.ScheduleID != sc.ID {
		t.Errorf("run after delete: schedule_id %q", run.ScheduleID)
	}
}

func TestSchedulesWorkspaceTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withTokens(Token{Token: "root"}, Token{Token: "tok-a", Workspace: "a"}),
		func(q *queue.Config, _ *Config) { q.APIOnly = true })
	e.token = "root"
	var inB apiSchedule
	e.must(http.StatusCreated, "POST", "/api/v1/schedules", map[string]any{"name": "b1", "recipe_name": "echo", "every": "1h", "workspace": "b"}, &inB)

	e.token = "tok-a"
	var inA apiSchedule
	e.must(http.StatusCreated, "POST", "/api/v1/schedules", map[string]any{"name": "a1", "recipe_name": "echo", "every": "1h"}, &inA)
	if inA.Workspace != "a" {
		t.Fatalf("workspace = %q", inA.Workspace)
	}
	e.problem(403, spool.CodeForbidden, "POST", "/api/v1/schedules", map[string]any{"name": "x", "recipe_name": "echo", "every": "1h", "workspace": "b"})
	var list struct {
		Schedules []apiSchedule `json:"schedules"`
	}
	e.must(http.StatusOK, "GET", "/api/v1/schedules", nil, &list)
	if len(list.Schedules) != 1 || list.Schedules[0].ID != inA.ID {
		t.Fatalf("A lists %+v", list)
	}
	for _, c := range []struct{ method, suffix string }{
		{"GET", ""}, {"POST", "/pause"}, {"POST", "/resume"}, {"POST", "/trigger"}, {"DELETE", ""},
	} {
		e.problem(404, spool.CodeNotFound, c.method, "/api/v1/schedules/"+inB.ID+c.suffix, nil)
	}
}

func TestStatsShowRateLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(q *queue.Config, _ *Config) {
		q.AgentRates = map[string]queue.Rate{"echo": {Limit: 1, Per: time.Hour}}
	})
	first := e.submit(map[string]any{"recipe_name": "echo"})
	e.waitState(first.ID, spool.StateSucceeded)
	e.submit(map[string]any{"recipe_name": "echo"})
	e.submit(map[string]any{"recipe_name": "echo"})
	var st struct {
		RateLimited int        `json:"rate_limited_count"`
		NextAt      *time.Time `json:"rate_limited_next_at"`
		Buckets     []struct {
			Key     string `json:"key"`
			Waiting int    `json:"waiting"`
		} `json:"rate_limits"`
		Queued int `json:"queued_count"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.must(http.StatusOK, "GET", "/api/v1/stats", nil, &st)
		if st.RateLimited == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.RateLimited != 2 || st.Queued != 2 || st.NextAt == nil || time.Until(*st.NextAt) < 50*time.Minute ||
		len(st.Buckets) != 1 || st.Buckets[0].Key != "agent:echo" || st.Buckets[0].Waiting != 2 {
		t.Errorf("stats = %+v", st)
	}
}
