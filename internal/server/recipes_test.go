package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Recipe files are served, a broken one is reported without hiding the others, and a
// reload picks up new files while the Go recipes survive it.
func TestRecipeDirectoryAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("upper.yaml", `name: upper
description: Upper-cases its input.
version: "2"
kind: exec
exec: {command: ["sh", "-c", "tr a-z A-Z"]}
input_schema: {type: string}
runtime:
  job: {timeout_sec: 30, max_retries: 1, priority: high}
`)
	write("broken.yaml", "name: broken\nkind: exec\nexec: {command: [\"true\"]}\nbogus_key: 1\n")
	cfg := testConfig(t)
	cfg.NoRecipeDir = false
	cfg.Recipes = dir
	n := startNode(t, cfg)

	var list struct {
		Recipes []struct {
			Name        string         `json:"name"`
			Kind        string         `json:"kind"`
			Version     string         `json:"version"`
			Description string         `json:"description"`
			Defaults    map[string]any `json:"defaults"`
			InputSchema map[string]any `json:"input_schema"`
		} `json:"recipes"`
		Errors []struct {
			File  string `json:"file"`
			Error string `json:"error"`
		} `json:"errors"`
	}
	n.do("GET", "/api/v1/recipes", nil, &list)
	var names []string
	for _, r := range list.Recipes {
		names = append(names, r.Name+":"+r.Kind)
	}
	if strings.Join(names, ",") != "echo:go,gated:go,upper:exec" {
		t.Fatalf("recipes = %v", names)
	}
	up := list.Recipes[2]
	if up.Version != "2" || up.Defaults["priority"] != "high" || up.Defaults["timeout_sec"] != float64(30) ||
		up.Defaults["max_retries"] != float64(1) || up.InputSchema["type"] != "string" {
		t.Errorf("upper = %+v", up)
	}
	if len(list.Errors) != 1 || !strings.HasSuffix(list.Errors[0].File, "broken.yaml") || !strings.Contains(list.Errors[0].Error, "bogus_key") {
		t.Errorf("errors = %+v", list.Errors)
	}

	var run map[string]any
	if code := n.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "upper", "input": "shout"}, &run); code != 202 {
		t.Fatalf("submit = %d %v", code, run)
	}
	n.do("GET", "/api/v1/runs/"+run["job_id"].(string)+"/wait?timeout=20", nil, &run)
	if run["status"] != "succeeded" || run["priority"] != "high" {
		t.Fatalf("run = %v", run)
	}
	// The schema refuses a wrong input.
	var p map[string]any
	if code := n.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "upper", "input": 5}, &p); code/100 != 4 {
		t.Errorf("schema mismatch: %d %v", code, p)
	}

	write("lower.yaml", "name: lower\nkind: exec\nexec: {command: [\"sh\", \"-c\", \"tr A-Z a-z\"]}\n")
	os.Remove(filepath.Join(dir, "broken.yaml"))
	if err := n.srv.ReloadRecipes(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.do("GET", "/api/v1/recipes", nil, &list)
	names = nil
	for _, r := range list.Recipes {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "echo,gated,lower,upper" || len(list.Errors) != 0 {
		t.Fatalf("after reload: %v, errors %v", names, list.Errors)
	}
	// POST /api/v1/recipes/reload does the same over HTTP.
	write("third.yaml", "name: third\nkind: exec\nexec: {command: [\"true\"]}\n")
	if code := n.do("POST", "/api/v1/recipes/reload", nil, &list); code != 200 || len(list.Recipes) != 5 {
		t.Fatalf("reload over HTTP = %d, %d recipes", code, len(list.Recipes))
	}
	if code := n.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "echo", "input": 1}, &run); code != 202 {
		t.Fatalf("a Go recipe vanished on reload: %d", code)
	}
	n.do("GET", "/api/v1/runs/"+run["job_id"].(string)+"/wait?timeout=20", nil, &run)
}

func TestMissingRecipeDirectoryIsAnError(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.NoRecipeDir = false
	cfg.Recipes = filepath.Join(t.TempDir(), "nope")
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--recipes") {
		t.Fatalf("err = %v", err)
	}
}

// A recipe's runtime.schedules become schedules of the server, its runtime.rate paces its
// runs, and a reload that drops the schedule deletes it.
func TestRecipeSchedulesAndRate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "digest.yaml")
	recipe := `name: digest
kind: exec
exec: {command: ["cat"]}
runtime:
  rate: {limit: 1, per: 1h}
  schedules:
    - {name: nightly, cron: "30 2 * * *", timezone: America/New_York, catchup: last}
`
	if err := os.WriteFile(file, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.NoRecipeDir = false
	cfg.Recipes = dir
	n := startNode(t, cfg)

	var list struct {
		Schedules []struct {
			ID           string   `json:"id"`
			Name         string   `json:"name"`
			Source       string   `json:"source"`
			Timezone     string   `json:"timezone"`
			NextRunTimes []string `json:"next_run_times"`
		} `json:"schedules"`
	}
	n.do("GET", "/api/v1/schedules", nil, &list)
	if len(list.Schedules) != 1 || list.Schedules[0].Name != "digest:nightly" || list.Schedules[0].Source != "recipe" ||
		list.Schedules[0].Timezone != "America/New_York" || len(list.Schedules[0].NextRunTimes) != 5 {
		t.Fatalf("schedules = %+v", list)
	}
	if code := n.do("DELETE", "/api/v1/schedules/"+list.Schedules[0].ID, nil, nil); code != 409 {
		t.Errorf("deleting a recipe's schedule answered %d, want 409", code)
	}

	// One run an hour: the second waits, rate-limited.
	var first, second struct {
		ID string `json:"job_id"`
	}
	n.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "digest", "input": "a"}, &first)
	n.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "digest", "input": "b"}, &second)
	var st struct {
		RateLimited int `json:"rate_limited_count"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.RateLimited != 1 && time.Now().Before(deadline) {
		n.do("GET", "/api/v1/stats", nil, &st)
		time.Sleep(10 * time.Millisecond)
	}
	if st.RateLimited != 1 {
		t.Errorf("rate_limited_count = %d, want 1", st.RateLimited)
	}
	if _, body := n.get("/metrics"); !strings.Contains(body, "spool_runs_rate_limited 1") {
		t.Errorf("/metrics lacks spool_runs_rate_limited 1")
	}

	// The schedule goes with the recipe.
	if err := os.WriteFile(file, []byte(strings.Split(recipe, "  schedules:")[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	n.do("POST", "/api/v1/recipes/reload", nil, nil)
	deadline = time.Now().Add(10 * time.Second)
	for {
		n.do("GET", "/api/v1/schedules", nil, &list)
		if len(list.Schedules) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recipe's schedule is still there after the reload: %+v", list)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
