package httpapi

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

func withTokens(tokens ...Token) envOption {
	return func(_ *queue.Config, c *Config) {
		ts, err := NewTokens(tokens)
		if err != nil {
			panic(err)
		}
		c.Tokens = ts
	}
}

func TestTokensAreRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withTokens(Token{Token: "root-token"}))
	resp, _ := e.do("GET", "/api/v1/runs", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	e.problem(401, spool.CodeUnauthorized, "POST", "/api/v1/runs", `{"recipe_name": "echo"}`)
	e.problem(401, spool.CodeUnauthorized, "GET", "/api/v1/runs", nil, "Authorization", "Bearer wrong")
	e.problem(401, spool.CodeUnauthorized, "GET", "/api/v1/runs", nil, "Authorization", "Basic cm9vdC10b2tlbg==")
	e.problem(401, spool.CodeUnauthorized, "GET", "/api/v1/runs", nil, "X-API-Key", "root-token-not")
	e.problem(401, spool.CodeUnauthorized, "GET", "/api/v1/nope", nil) // even unknown API paths
	e.must(http.StatusOK, "GET", "/api/v1/runs", nil, nil, "Authorization", "Bearer root-token")
	e.must(http.StatusOK, "GET", "/api/v1/runs", nil, nil, "Authorization", "bearer root-token")
	e.must(http.StatusOK, "GET", "/api/v1/runs", nil, nil, "X-API-Key", "root-token")
	// Operational endpoints stay open for probes and scrapers.
	for _, p := range []string{"/healthz", "/readyz", "/openapi.json"} {
		if resp, _ := e.do("GET", p, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a token = %d", p, resp.StatusCode)
		}
	}
}

// A token limited to workspace A submits into A, sees only A, and gets 404 for B's runs.
func TestWorkspaceScopedToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withTokens(Token{Token: "root"}, Token{Token: "tok-a", Workspace: "a"}, Token{Token: "tok-b", Workspace: "b"}),
		func(q *queue.Config, _ *Config) { q.APIOnly = true })

	e.token = "tok-b"
	inB := e.submit(map[string]any{"recipe_name": "echo"})
	if inB.Workspace != "b" {
		t.Fatalf("submit with a b token landed in %q", inB.Workspace)
	}
	e.token = "tok-a"
	inA := e.submit(map[string]any{"recipe_name": "echo", "workspace": "a"})
	if inA.Workspace != "a" {
		t.Fatalf("workspace = %q", inA.Workspace)
	}
	p := e.problem(403, spool.CodeForbidden, "POST", "/api/v1/runs", map[string]any{"recipe_name": "echo", "workspace": "b"})
	if p.Errors[0].Field != "workspace" {
		t.Errorf("problem = %+v", p)
	}
	e.problem(403, spool.CodeForbidden, "POST", "/api/v1/runs/batch", map[string]any{"runs": []any{
		map[string]any{"recipe_name": "echo"}, map[string]any{"recipe_name": "echo", "workspace": "b"}}})

	// Every endpoint of B's run answers 404 to A, as if it did not exist.
	for _, c := range []struct{ method, suffix string }{
		{"GET", ""}, {"GET", "/result"}, {"GET", "/wait?timeout=0"}, {"GET", "/events"}, {"GET", "/stream"},
		{"GET", "/webhooks"}, {"POST", "/cancel"}, {"POST", "/retry"}, {"POST", "/pause"}, {"POST", "/resume"}, {"DELETE", ""},
	} {
		e.problem(404, spool.CodeNotFound, c.method, "/api/v1/runs/"+inB.ID+c.suffix, nil)
	}
	// ... and B's run is untouched.
	e.token = "root"
	var still apiRun
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+inB.ID, nil, &still)
	if still.State != spool.StateQueued {
		t.Fatalf("B's run is %s after A's attempts", still.State)
	}

	e.token = "tok-a"
	var l RunListView
	e.must(http.StatusOK, "GET", "/api/v1/runs", nil, &l)
	if l.Total != 1 || l.Jobs[0].ID != inA.ID {
		t.Fatalf("A lists %d runs", l.Total)
	}
	e.problem(403, spool.CodeForbidden, "GET", "/api/v1/runs?workspace=b", nil)
	var st spool.Stats
	e.must(http.StatusOK, "GET", "/api/v1/stats", nil, &st)
	if st.Total != 1 {
		t.Fatalf("A's stats count %d runs", st.Total)
	}
	e.problem(403, spool.CodeForbidden, "POST", "/api/v1/recipes/reload", nil)
	e.problem(403, spool.CodeForbidden, "POST", "/api/v1/runs/clear", map[string]any{"workspace": "b"})

	// A may act on its own run.
	e.must(http.StatusOK, "POST", "/api/v1/runs/"+inA.ID+"/cancel", nil, nil)
	var cleared map[string]int64
	e.must(http.StatusOK, "POST", "/api/v1/runs/clear", nil, &cleared)
	if cleared["deleted"] != 1 {
		t.Fatalf("A's clear deleted %d, want its 1 run", cleared["deleted"])
	}

	// The unscoped token sees both workspaces.
	e.token = "root"
	e.must(http.StatusOK, "GET", "/api/v1/runs", nil, &l)
	if l.Total != 1 || l.Jobs[0].ID != inB.ID {
		t.Fatalf("root lists %d runs", l.Total)
	}
	e.must(http.StatusOK, "POST", "/api/v1/recipes/reload", nil, nil)
}

func TestLoadTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens.yaml")
	os.WriteFile(good, []byte("- token: t1\n  workspace: a\n- token: t2\n"), 0o600)
	ts, err := LoadTokens(good)
	if err != nil || len(ts) != 2 || ts[0].Workspace != "a" || ts[1].Workspace != "" {
		t.Fatalf("tokens = %+v, err = %v", ts, err)
	}
	set, _ := NewTokens(ts)
	if ws, ok := set.lookup("t1"); !ok || ws != "a" {
		t.Errorf("lookup t1 = %q %v", ws, ok)
	}
	if _, ok := set.lookup("t3"); ok {
		t.Error("lookup of an unknown token succeeded")
	}
	for body, want := range map[string]string{
		"- token: t1\n  scope: a\n": "scope",
		"- workspace: a\n":          "no token",
		"":                          "empty",
		"token: t1\n":               "list",
	} {
		p := filepath.Join(dir, "bad.yaml")
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := LoadTokens(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to mention %q", body, err, want)
		}
	}
	if _, err := LoadTokens(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file loaded")
	}
}
