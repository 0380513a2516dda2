package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

func TestSubmitWaitAndResult(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var r apiRun
	resp := e.must(http.StatusAccepted, "POST", "/api/v1/runs",
		map[string]any{"recipe_name": "echo", "input": map[string]any{"hello": "world"}, "priority": "high",
			"session_id": "s1", "metadata": map[string]any{"k": "v"}}, &r)
	if loc := resp.Header.Get("Location"); loc != "/api/v1/runs/"+r.ID {
		t.Errorf("Location = %q", loc)
	}
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	if !strings.HasPrefix(r.ID, "run_") || r.RunID != r.ID || r.PollURL != "/api/v1/runs/"+r.ID ||
		r.StreamURL != "/api/v1/runs/"+r.ID+"/stream" || r.Recipe != "echo" || r.Agent != "echo" ||
		r.Workspace != "default" || r.SessionID != "s1" || r.Priority != spool.PriorityHigh || r.CreatedAt.IsZero() {
		t.Errorf("submit answer = %+v", r)
	}
	if r.State != spool.StateQueued && r.State != spool.StateRunning {
		t.Errorf("status = %s", r.State)
	}

	done := e.waitDone(r.ID)
	if done.State != spool.StateSucceeded || string(done.Result) != `{"hello":"world"}` || done.Error != nil ||
		done.ErrorCode != nil || done.DurationSeconds == nil || done.Attempt != 1 || done.Progress.Percentage != 100 {
		t.Errorf("finished run = %+v result %s", done, done.Result)
	}

	var res map[string]any
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+r.ID+"/result", nil, &res)
	for _, k := range []string{"job_id", "status", "result", "error", "error_code", "metrics", "created_at", "started_at", "completed_at", "duration_seconds"} {
		if _, ok := res[k]; !ok {
			t.Errorf("result lacks %q: %v", k, res)
		}
	}
	if res["status"] != "succeeded" || res["error"] != nil || res["result"].(map[string]any)["hello"] != "world" {
		t.Errorf("result = %v", res)
	}
	if m := res["metrics"].(map[string]any); m["attempt"] != float64(1) {
		t.Errorf("metrics = %v", m)
	}

	// The raw JSON of a run carries error: null and the derived fields.
	_, b := e.do("GET", "/api/v1/runs/"+r.ID, nil)
	var raw map[string]any
	_ = json.Unmarshal(b, &raw)
	for _, k := range []string{"job_id", "run_id", "status", "progress", "error", "result", "duration_seconds", "wait_seconds", "retry_after", "poll_url", "stream_url", "created_at", "started_at", "completed_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("run JSON lacks %q: %s", k, b)
		}
	}
	if raw["error"] != nil {
		t.Errorf("error = %v, want null for a succeeded run", raw["error"])
	}
}

func TestPraisonAIStyleSubmit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.submit(praisonBody[:strings.Index(praisonBody, `"recipe_name"`)] + `"recipe_name": "echo", "timeout": 60}`)
	done := e.waitDone(r.ID)
	if string(done.Result) != `"Analyze this data"` || done.TimeoutSec != 60 {
		t.Fatalf("run = %+v, result %s", done, done.Result)
	}
}

func TestFailedRunShowsItsError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.submit(map[string]any{"recipe_name": "fail"})
	done := e.waitDone(r.ID)
	if done.State != spool.StateFailed || done.Error == nil || !strings.Contains(*done.Error, "it went wrong") ||
		done.ErrorCode == nil || *done.ErrorCode != spool.CodeHandlerError {
		t.Fatalf("run = %+v", done)
	}
	var res resultView
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+r.ID+"/result", nil, &res)
	if res.Status != spool.StateFailed || res.Error == nil || string(res.Result) != "null" {
		t.Fatalf("result = %+v", res)
	}
}

func TestSubmitRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *queue.Config, c *Config) { c.MaxBody = 1024 })
	p := e.problem(400, spool.CodeInvalid, "POST", "/api/v1/runs", `{"recipe_name": "echo", "colour": "red"}`)
	if len(p.Errors) != 1 || p.Errors[0].Field != "colour" || !strings.Contains(p.Detail, "colour") {
		t.Errorf("problem = %+v", p)
	}
	p = e.problem(400, spool.CodeInvalid, "POST", "/api/v1/runs", `{"recipe_name": "echo", "max_retries": "3"}`)
	if p.Errors[0].Field != "max_retries" {
		t.Errorf("problem = %+v", p)
	}
	e.problem(400, spool.CodeInvalid, "POST", "/api/v1/runs", `{"recipe_name": "echo"`)
	e.problem(400, spool.CodeInvalid, "POST", "/api/v1/runs", `{"input": 1}`)
	e.problem(422, spool.CodeUnprocessable, "POST", "/api/v1/runs", `{"recipe_name": "echo", "agent_file": "x.yaml"}`)
	p = e.problem(422, spool.CodeUnknownRecipe, "POST", "/api/v1/runs", `{"recipe_name": "nope"}`)
	if !strings.Contains(p.Detail, `"nope"`) || !strings.Contains(p.Detail, "echo") {
		t.Errorf("unknown recipe detail = %q, want it to name the recipe and those that exist", p.Detail)
	}
	e.problem(400, spool.CodeInvalid, "POST", "/api/v1/runs", `{"recipe_name": "echo", "timeout": 99999999}`)
	e.problem(413, spool.CodeTooLarge, "POST", "/api/v1/runs", `{"recipe_name": "echo", "input": "`+strings.Repeat("x", 2000)+`"}`)
	e.problem(413, spool.CodeTooLarge, "POST", "/api/v1/runs/batch", `{"runs": [`+strings.Repeat(`{"recipe_name": "echo"},`, 100)+`]}`)

	var list RunListView
	e.must(http.StatusOK, "GET", "/api/v1/runs", nil, &list)
	if list.Total != 0 {
		t.Fatalf("refused submits left %d runs", list.Total)
	}
}

// RunListView is the list answer.
type RunListView struct {
	Jobs     []apiRun `json:"jobs"`
	Total    int64    `json:"total"`
	Page     int      `json:"page"`
	PageSize int      `json:"page_size"`
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(q *queue.Config, _ *Config) { q.APIOnly, q.MaxQueueSize = true, 2 })
	e.submit(map[string]any{"recipe_name": "echo"})
	e.submit(map[string]any{"recipe_name": "echo"})
	resp, b := e.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "echo"})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third submit = %d (Retry-After %q) %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	var p Problem
	_ = json.Unmarshal(b, &p)
	if p.Code != spool.CodeQueueFull || p.RetryAfter <= 0 {
		t.Fatalf("problem = %+v", p)
	}
	// A batch that does not fit is refused whole.
	e.problem(503, spool.CodeQueueFull, "POST", "/api/v1/runs/batch", map[string]any{"runs": []any{map[string]any{"recipe_name": "echo"}}})
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(q *queue.Config, _ *Config) { q.APIOnly = true })
	first := e.submit(map[string]any{"recipe_name": "echo"}, "Idempotency-Key", "order-123")
	var again apiRun
	e.must(http.StatusOK, "POST", "/api/v1/runs", map[string]any{"recipe_name": "echo", "idempotency_key": "order-123"}, &again)
	if again.ID != first.ID {
		t.Fatalf("same key gave %s and %s", first.ID, again.ID)
	}
	// Another workspace never matches.
	other := e.submit(map[string]any{"recipe_name": "echo", "idempotency_key": "order-123", "workspace": "w2"})
	if other.ID == first.ID {
		t.Fatal("a key matched across workspaces")
	}
	// An explicit scope none does not deduplicate.
	n1 := e.submit(map[string]any{"recipe_name": "echo", "idempotency_key": "order-123", "idempotency_scope": "none"})
	if n1.ID == first.ID {
		t.Fatal("scope none deduplicated")
	}
}

func TestConcurrentSubmitsWithOneKeyCreateOneRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(q *queue.Config, _ *Config) { q.APIOnly = true })
	const n = 50
	var wg sync.WaitGroup
	ids := make([]string, n)
	codes := make([]int, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/runs",
				strings.NewReader(`{"recipe_name": "echo", "input": "same", "idempotency_key": "race-1"}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := e.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var r apiRun
			_ = json.NewDecoder(resp.Body).Decode(&r)
			ids[i], codes[i] = r.ID, resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range ids {
		if ids[i] == "" || ids[i] != ids[0] {
			t.Fatalf("submit %d answered %d with id %q, others %q", i, codes[i], ids[i], ids[0])
		}
		switch codes[i] {
		case http.StatusAccepted:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("submit %d answered %d", i, codes[i])
		}
	}
	if created != 1 {
		t.Errorf("%d submits answered 202, want exactly 1", created)
	}
	var list RunListView
	e.must(http.StatusOK, "GET", "/api/v1/runs", nil, &list)
	if list.Total != 1 {
		t.Fatalf("%d runs exist, want 1", list.Total)
	}
}

func TestCancelRunningRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.submit(map[string]any{"recipe_name": "gated", "input": "c1"})
	e.waitState(r.ID, spool.StateRunning)

	p := e.problem(409, spool.CodeConflict, "GET", "/api/v1/runs/"+r.ID+"/result", nil)
	if p.RunStatus != spool.StateRunning {
		t.Errorf("run_status = %q", p.RunStatus)
	}
	e.problem(409, spool.CodeConflict, "DELETE", "/api/v1/runs/"+r.ID, nil)
	e.problem(409, spool.CodeConflict, "POST", "/api/v1/runs/"+r.ID+"/retry", nil)

	var c apiRun
	e.must(http.StatusOK, "POST", "/api/v1/runs/"+r.ID+"/cancel", nil, &c)
	if c.State != spool.StateCancelled && (c.State != spool.StateRunning || c.CancelRequestedAt == nil) {
		t.Fatalf("cancel answered %+v", c)
	}
	done := e.waitDone(r.ID)
	if done.State != spool.StateCancelled || done.Error == nil {
		t.Fatalf("run = %+v", done)
	}
	p = e.problem(409, spool.CodeConflict, "POST", "/api/v1/runs/"+r.ID+"/cancel", nil)
	if p.RunStatus != spool.StateCancelled {
		t.Errorf("second cancel: run_status = %q, want cancelled", p.RunStatus)
	}
}

func TestPauseResumeRetryDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(q *queue.Config, _ *Config) { q.APIOnly = true })
	r := e.submit(map[string]any{"recipe_name": "echo", "input": 7})
	var got apiRun
	e.must(http.StatusOK, "POST", "/api/v1/runs/"+r.ID+"/pause", nil, &got)
	if got.State != spool.StatePaused {
		t.Fatalf("pause: %s", got.State)
	}
	e.problem(409, spool.CodeConflict, "POST", "/api/v1/runs/"+r.ID+"/pause", nil)
	e.must(http.StatusOK, "POST", "/api/v1/runs/"+r.ID+"/resume", nil, &got)
	if got.State != spool.StateQueued {
		t.Fatalf("resume: %s", got.State)
	}
	e.problem(409, spool.CodeConflict, "POST", "/api/v1/runs/"+r.ID+"/resume", nil)
	e.must(http.StatusOK, "POST", "/api/v1/runs/"+r.ID+"/cancel", nil, &got)
	if got.State != spool.StateCancelled {
		t.Fatalf("cancel of a queued run: %s, want cancelled at once", got.State)
	}

	var retried apiRun
	resp := e.must(http.StatusAccepted, "POST", "/api/v1/runs/"+r.ID+"/retry", nil, &retried)
	if retried.RetryOf != r.ID || retried.ID == r.ID || string(retried.Input) != "7" {
		t.Fatalf("retry = %+v", retried)
	}
	if resp.Header.Get("Location") != "/api/v1/runs/"+retried.ID {
		t.Errorf("retry Location = %q", resp.Header.Get("Location"))
	}

	resp, _ = e.do("DELETE", "/api/v1/runs/"+r.ID, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete = %d", resp.StatusCode)
	}
	e.problem(404, spool.CodeNotFound, "GET", "/api/v1/runs/"+r.ID, nil)
}

func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(q *queue.Config, _ *Config) { q.APIOnly = true })
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, e.submit(map[string]any{"recipe_name": "echo", "session_id": "s" + string(rune('0'+i%2))}).ID)
	}
	other := e.submit(map[string]any{"recipe_name": "fail", "workspace": "w2"})
	e.must(http.StatusOK, "POST", "/api/v1/runs/"+ids[0]+"/cancel", nil, nil)

	var l RunListView
	e.must(http.StatusOK, "GET", "/api/v1/runs", nil, &l)
	if l.Total != 6 || len(l.Jobs) != 6 || l.Page != 1 || l.PageSize != 20 || l.Jobs[0].ID != other.ID {
		t.Fatalf("list = total %d, %d jobs, page %d/%d, first %s", l.Total, len(l.Jobs), l.Page, l.PageSize, l.Jobs[0].ID)
	}
	check := func(query string, want int) {
		t.Helper()
		var l RunListView
		e.must(http.StatusOK, "GET", "/api/v1/runs?"+query, nil, &l)
		if int(l.Total) != want {
			t.Errorf("?%s: total %d, want %d", query, l.Total, want)
		}
	}
	check("status=queued", 5)
	check("status=pending", 5)
	check("status=cancelled", 1)
	check("status=queued,cancelled", 6)
	check("status=queued&status=cancelled", 6)
	check("recipe_name=fail", 1)
	check("workspace=w2", 1)
	check("session_id=s1", 2)
	check("agent=echo", 5)

	e.must(http.StatusOK, "GET", "/api/v1/runs?page=2&page_size=4", nil, &l)
	if l.Total != 6 || len(l.Jobs) != 2 || l.Page != 2 || l.PageSize != 4 {
		t.Errorf("page 2 = total %d, %d jobs", l.Total, len(l.Jobs))
	}
	p := e.problem(400, spool.CodeInvalid, "GET", "/api/v1/runs?status=sleeping", nil)
	if p.Errors[0].Field != "status" {
		t.Errorf("problem = %+v", p)
	}
	e.problem(400, spool.CodeInvalid, "GET", "/api/v1/runs?page=0", nil)
	e.problem(400, spool.CodeInvalid, "GET", "/api/v1/runs?page_size=1001", nil)
}

func TestBatchSubmit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var out struct {
		Jobs []apiRun `json:"jobs"`
	}
	e.must(http.StatusAccepted, "POST", "/api/v1/runs/batch", map[string]any{"runs": []any{
		map[string]any{"recipe_name": "echo", "input": 1},
		map[string]any{"recipe": "echo", "prompt": "two"},
		map[string]any{"recipe_name": "echo", "input": 3, "idempotency_key": "b"},
	}}, &out)
	if len(out.Jobs) != 3 {
		t.Fatalf("jobs = %d", len(out.Jobs))
	}
	for i, j := range out.Jobs {
		if r := e.waitDone(j.ID); i == 1 && string(r.Result) != `"two"` {
			t.Errorf("second run result = %s", r.Result)
		}
	}
	p := e.problem(400, spool.CodeInvalid, "POST", "/api/v1/runs/batch", map[string]any{"runs": []any{
		map[string]any{"recipe_name": "echo"}, map[string]any{"recipe_name": "echo", "x": 1}}})
	if p.Errors[0].Field != "runs[1].x" {
		t.Errorf("problem = %+v", p)
	}
	p = e.problem(422, spool.CodeUnknownRecipe, "POST", "/api/v1/runs/batch", map[string]any{"runs": []any{
		map[string]any{"recipe_name": "echo"}, map[string]any{"recipe_name": "nope"}}})
	if len(p.Errors) == 0 || p.Errors[0].Field != "runs[1].recipe_name" {
		t.Errorf("problem = %+v", p)
	}
	var l RunListView
	e.must(http.StatusOK, "GET", "/api/v1/runs", nil, &l)
	if l.Total != 3 {
		t.Errorf("refused batches left runs: total %d, want 3", l.Total)
	}
}

func TestClear(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 0; i < 3; i++ {
		e.waitDone(e.submit(map[string]any{"recipe_name": "echo"}).ID)
	}
	var out map[string]int64
	e.must(http.StatusOK, "POST", "/api/v1/runs/clear", map[string]any{"older_than": "1h"}, &out)
	if out["deleted"] != 0 {
		t.Errorf("older_than 1h deleted %d fresh runs", out["deleted"])
	}
	e.must(http.StatusOK, "POST", "/api/v1/runs/clear", nil, &out)
	if out["deleted"] != 3 {
		t.Errorf("deleted = %d, want 3", out["deleted"])
	}
	e.problem(400, spool.CodeInvalid, "POST", "/api/v1/runs/clear", `{"everything": true}`)
}

func TestWaitTimesOutWithTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.submit(map[string]any{"recipe_name": "gated", "input": "w"})
	e.waitState(r.ID, spool.StateRunning)
	start := time.Now()
	var got apiRun
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+r.ID+"/wait?timeout=0.2", nil, &got)
	if got.State != spool.StateRunning || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("wait answered %s after %s", got.State, time.Since(start))
	}
	go e.release("w")
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+r.ID+"/wait?timeout=10s", nil, &got)
	if got.State != spool.StateSucceeded {
		t.Fatalf("wait answered %s", got.State)
	}
	e.problem(400, spool.CodeInvalid, "GET", "/api/v1/runs/"+r.ID+"/wait?timeout=soon", nil)
}

func TestEventsAndWebhooksEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.submit(map[string]any{"recipe_name": "gated", "input": "ev", "webhook_url": "http://127.0.0.1:9/hook"})
	e.release("ev")
	e.waitDone(r.ID)

	var evs struct {
		Events []map[string]any `json:"events"`
	}
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+r.ID+"/events", nil, &evs)
	var types []string
	sawProgress := false
	for i, ev := range evs.Events {
		if ev["seq"] != float64(i+1) || ev["job_id"] != r.ID || ev["ts"] == nil {
			t.Errorf("event %d = %v", i, ev)
		}
		types = append(types, ev["type"].(string))
		if ev["type"] == "progress" && !sawProgress {
			sawProgress = true
			if ev["percentage"] != float64(50) || ev["current_step"] != "halfway" {
				t.Errorf("progress event lacks top-level fields: %v", ev)
			}
		}
	}
	if got := strings.Join(types, ","); !strings.HasPrefix(got, "status,status,output,progress,output") || !strings.HasSuffix(got, "result") {
		t.Errorf("event types = %s", got)
	}
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+r.ID+"/events?after=3&limit=1", nil, &evs)
	if len(evs.Events) != 1 || evs.Events[0]["seq"] != float64(4) {
		t.Errorf("after=3&limit=1 = %v", evs.Events)
	}
	e.problem(400, spool.CodeInvalid, "GET", "/api/v1/runs/"+r.ID+"/events?after=x", nil)

	var ds []map[string]any
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+r.ID+"/webhooks", nil, &ds)
	if len(ds) != 1 || ds[0]["url"] != "http://127.0.0.1:9/hook" || ds[0]["state"] != "pending" || ds[0]["event"] != "succeeded" {
		t.Fatalf("webhooks = %v", ds)
	}
	if a, ok := ds[0]["attempts"].([]any); !ok || len(a) != 0 {
		t.Errorf("attempts = %v, want []", ds[0]["attempts"])
	}
	plain := e.submit(map[string]any{"recipe_name": "echo"})
	e.waitDone(plain.ID)
	_, b := e.do("GET", "/api/v1/runs/"+plain.ID+"/webhooks", nil)
	if strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("webhooks of a run without one = %s, want []", b)
	}
}

func TestStatsNodesRecipes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(q *queue.Config, _ *Config) { q.APIOnly = true })
	e.submit(map[string]any{"recipe_name": "echo", "priority": "urgent"})
	e.submit(map[string]any{"recipe_name": "echo", "workspace": "w2"})
	var st map[string]any
	e.must(http.StatusOK, "GET", "/api/v1/stats", nil, &st)
	if st["queued_count"] != float64(2) || st["total_runs"] != float64(2) {
		t.Errorf("stats = %v", st)
	}
	if q, _ := st["queued_by_priority"].(map[string]any); q["urgent"] != float64(1) {
		t.Errorf("queued_by_priority = %v", st["queued_by_priority"])
	}
	if _, ok := st["limits"].(map[string]any)["max_concurrent"]; !ok {
		t.Errorf("limits = %v", st["limits"])
	}
	e.must(http.StatusOK, "GET", "/api/v1/stats?workspace=w2", nil, &st)
	if st["queued_count"] != float64(1) {
		t.Errorf("stats of w2 = %v", st)
	}

	var nodes struct {
		Nodes []map[string]any `json:"nodes"`
	}
	e.must(http.StatusOK, "GET", "/api/v1/nodes", nil, &nodes)
	if len(nodes.Nodes) != 1 || nodes.Nodes[0]["id"] != e.engine.Node() {
		t.Errorf("nodes = %v", nodes)
	}

	var rl struct {
		Recipes []RecipeInfo  `json:"recipes"`
		Errors  []RecipeError `json:"errors"`
	}
	e.must(http.StatusOK, "GET", "/api/v1/recipes", nil, &rl)
	var names []string
	for _, r := range rl.Recipes {
		names = append(names, r.Name+":"+r.Kind)
	}
	if strings.Join(names, ",") != "chatty:go,echo:go,fail:go,gated:go" || rl.Errors == nil {
		t.Errorf("recipes = %v, errors = %v", names, rl.Errors)
	}
	var one RecipeInfo
	e.must(http.StatusOK, "GET", "/api/v1/recipes/echo", nil, &one)
	if one.Name != "echo" || !one.Enabled {
		t.Errorf("recipe = %+v", one)
	}
	e.problem(404, spool.CodeNotFound, "GET", "/api/v1/recipes/nope", nil)
	e.must(http.StatusOK, "POST", "/api/v1/recipes/reload", nil, &rl)
}

func TestHealthReadyOpenAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, b := e.do("GET", "/healthz", nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "ok" {
		t.Errorf("healthz = %d %q", resp.StatusCode, b)
	}
	if resp, b := e.do("GET", "/readyz", nil); resp.StatusCode != 200 {
		t.Errorf("readyz = %d %q", resp.StatusCode, b)
	}
	e.problem(404, spool.CodeNotFound, "GET", "/metrics", nil)
	resp, b = e.do("GET", "/openapi.json", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !json.Valid(b) {
		t.Errorf("openapi.json = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	e.problem(404, spool.CodeNotFound, "GET", "/", nil) // no UI configured
	e.api.Drain()
	if resp, _ := e.do("GET", "/readyz", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining = %d, want 503", resp.StatusCode)
	}
}

func TestUnknownPathsAndMethodsAreProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.problem(404, spool.CodeNotFound, "GET", "/api/v1/nope", nil)
	e.problem(404, spool.CodeNotFound, "GET", "/api/v2/runs", nil)
	e.problem(404, spool.CodeNotFound, "POST", "/api/v1/runs/x/y/z", nil)
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/api/v1/runs/run_x/cancel", "POST"},
		{"PUT", "/api/v1/runs", "GET, POST, HEAD"},
		{"DELETE", "/api/v1/stats", "GET, HEAD"},
		{"PATCH", "/api/v1/runs/run_x", "GET, DELETE, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
	} {
		resp, _ := e.do(c.method, c.path, nil)
		e.problem(405, spool.CodeMethodNotAllow, c.method, c.path, nil)
		if got := resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow = %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	for _, c := range []struct{ method, suffix string }{
		{"GET", ""}, {"DELETE", ""}, {"GET", "/result"}, {"GET", "/wait?timeout=0"}, {"GET", "/events"},
		{"GET", "/stream"}, {"GET", "/webhooks"}, {"POST", "/cancel"}, {"POST", "/retry"},
		{"POST", "/pause"}, {"POST", "/resume"},
	} {
		p := e.problem(404, spool.CodeNotFound, c.method, "/api/v1/runs/run_missing"+c.suffix, nil)
		if !strings.Contains(p.Detail, "run_missing") {
			t.Errorf("%s %s: detail %q does not name the run", c.method, c.suffix, p.Detail)
		}
	}
}

func TestActiveRunCarriesRetryAfterHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(q *queue.Config, _ *Config) { q.APIOnly = true })
	r := e.submit(map[string]any{"recipe_name": "echo"})
	resp := e.must(http.StatusOK, "GET", "/api/v1/runs/"+r.ID, nil, nil)
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	// A delayed run is scheduled.
	var d apiRun
	e.must(http.StatusAccepted, "POST", "/api/v1/runs", map[string]any{"recipe_name": "echo", "delay": "1h"}, &d)
	if d.State != spool.StateScheduled || d.RunAt == nil {
		t.Errorf("delayed run = %+v", d)
	}
}
