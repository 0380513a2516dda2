package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
