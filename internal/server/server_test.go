package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/webhook"
	"github.com/spool-run/spool/queue"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// node is a server started in-process on a loopback port with a SQLite file.
type node struct {
	t      *testing.T
	srv    *Server
	client *http.Client
	url    string
	gates  *gates
}

type gates struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (g *gates) get(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.m[name]
	if !ok {
		c = make(chan struct{})
		g.m[name] = c
	}
	return c
}

func (g *gates) closeAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.m {
		select {
		case <-c:
		default:
			close(c)
		}
	}
}

// testRecipes are Go recipes: echo returns its input; gated waits for the gate its input names.
func testRecipes(g *gates) []*queue.Recipe {
	return []*queue.Recipe{
		{Name: "echo", Handler: queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			return r.Input, nil
		})},
		{Name: "gated", Handler: queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
			var name string
			_ = json.Unmarshal(r.Input, &name)
			select {
			case <-g.get(name):
				return "released", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})},
	}
}

func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Port = 0
	cfg.DB = filepath.Join(t.TempDir(), "spool.db")
	cfg.NoRecipeDir = true
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.ShutdownGrace = time.Millisecond
	cfg.UI = false
	return cfg
}

func startNode(t *testing.T, cfg Config) *node {
	t.Helper()
	g := &gates{m: map[string]chan struct{}{}}
	cfg.GoRecipes = append(testRecipes(g), cfg.GoRecipes...)
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, srv: srv, client: &http.Client{Timeout: 30 * time.Second}, url: srv.URL(), gates: g}
	t.Cleanup(func() {
		g.closeAll()
		n.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

func (n *node) do(method, path string, body any, out any) int {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, n.url+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			n.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

func (n *node) get(path string) (int, string) {
	n.t.Helper()
	resp, err := n.client.Get(n.url + path)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t))
	if !strings.HasPrefix(n.srv.Addr(), "127.0.0.1:") || n.srv.Engine() == nil || n.srv.Handler() == nil {
		t.Fatalf("addr %q", n.srv.Addr())
	}
	var run map[string]any
	if code := n.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "echo", "input": "hi"}, &run); code != 202 {
		t.Fatalf("submit = %d %v", code, run)
	}
	id := run["job_id"].(string)
	n.do("GET", "/api/v1/runs/"+id+"/wait?timeout=10", nil, &run)
	if run["status"] != "succeeded" || run["result"] != "hi" {
		t.Fatalf("run = %v", run)
	}
	// The completion hook runs just after waiters are woken: poll until it has counted.
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; {
		var code int
		if code, body = n.get("/metrics"); code != 200 {
			t.Fatalf("/metrics = %d", code)
		}
		if strings.Contains(body, `spool_run_duration_seconds_count{recipe="echo"} 1`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, want := range []string{
		`spool_runs_submitted_total{recipe="echo",workspace="default"} 1`,
		`spool_runs_completed_total{recipe="echo",status="succeeded",workspace="default"} 1`,
		`spool_run_duration_seconds_count{recipe="echo"} 1`,
		`spool_run_wait_seconds_count{recipe="echo"} 1`,
		`spool_runs_queued{priority="normal"} 0`,
		`spool_runs_running 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, id) {
		t.Error("a run id appears in /metrics")
	}
	if code, _ := n.get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	if code, _ := n.get("/openapi.json"); code != 200 {
		t.Errorf("/openapi.json = %d", code)
	}
}

func TestDashboardIsServedWhenEnabled(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.UI = true
	n := startNode(t, cfg)
	code, body := n.get("/")
	if code != 200 || !strings.Contains(strings.ToLower(body), "<html") {
		t.Fatalf("GET / = %d %.100s", code, body)
	}
	off := testConfig(t)
	m := startNode(t, off)
	if code, _ := m.get("/"); code != 404 {
		t.Fatalf("GET / with --ui=false = %d, want 404", code)
	}
}

// The scenario of the issue: a receiver that fails twice, then accepts; every attempt is
// visible through the API and signed with the same webhook-id.
func TestWebhookRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []http.Header
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r.Header.Clone())
		n := len(got)
		mu.Unlock()
		if n <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(recv.Close)

	key := []byte("spool-test-secret-0123456789")
	cfg := testConfig(t)
	cfg.AllowPrivateWebhooks = true
	cfg.WebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString(key)
	cfg.WebhookRetryBase = 10 * time.Millisecond
	n := startNode(t, cfg)

	var run map[string]any
	n.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "echo", "webhook_url": recv.URL + "/hook"}, &run)
	id := run["job_id"].(string)

	start := time.Now()
	var ds []struct {
		ID       string `json:"id"`
		Event    string `json:"event"`
		URL      string `json:"url"`
		State    string `json:"state"`
		Attempts []struct {
			StatusCode int    `json:"status_code"`
			Error      string `json:"error"`
		} `json:"attempts"`
	}
	for {
		if code := n.do("GET", "/api/v1/runs/"+id+"/webhooks", nil, &ds); code != 200 {
			t.Fatalf("webhooks = %d", code)
		}
		if len(ds) == 1 && ds[0].State != "pending" {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("delivery still pending: %+v", ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := ds[0]; d.State != "delivered" || len(d.Attempts) != 3 || d.Attempts[0].StatusCode != 502 ||
		d.Attempts[1].StatusCode != 502 || d.Attempts[2].StatusCode != 200 || d.Event != "succeeded" {
		t.Fatalf("delivery = %+v", d)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("three attempts took %s", took)
	}
	mu.Lock()
	for i, h := range got {
		if h.Get(webhook.HeaderID) != ds[0].ID || !strings.HasPrefix(h.Get(webhook.HeaderSignature), "v1,") {
			t.Errorf("attempt %d headers: id %q signature %q", i+1, h.Get(webhook.HeaderID), h.Get(webhook.HeaderSignature))
		}
	}
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := n.get("/metrics")
		if strings.Contains(body, `spool_webhook_deliveries_total{outcome="delivered"} 1`) &&
			strings.Contains(body, `spool_webhook_deliveries_total{outcome="retry"} 2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook metrics not counted:\n%s", grepLines(body, "spool_webhook"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Without --allow-private-webhooks a submit naming a private target is refused at once.
func TestSubmitRefusesPrivateWebhookTargets(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t))
	for _, u := range []string{"http://127.0.0.1:9/x", "http://localhost/x", "http://169.254.169.254/", "http://0x7f.1/", "gopher://example.com/"} {
		var p map[string]any
		if code := n.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "echo", "webhook_url": u}, &p); code != 400 {
			t.Errorf("webhook_url %s: %d %v", u, code, p)
			continue
		}
		errs, _ := p["errors"].([]any)
		if p["code"] != "invalid" || len(errs) == 0 || errs[0].(map[string]any)["field"] != "webhook_url" {
			t.Errorf("webhook_url %s: problem %v", u, p)
		}
	}
}

// PraisonAI's own client protocol, driven by a Python script using only the standard library.
func TestPraisonAIPythonClient(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	n := startNode(t, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/praisonai_client.py", n.url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, stderr.String())
	}
	var got struct {
		SubmitStatus          int            `json:"submit_status"`
		SubmitFields          []string       `json:"submit_fields"`
		Location              string         `json:"location"`
		RetryAfter            string         `json:"retry_after"`
		FinalStatus           string         `json:"final_status"`
		Progress              map[string]any `json:"progress"`
		TimeoutSec            int            `json:"timeout_sec"`
		ResultStatus          int            `json:"result_status"`
		Result                any            `json:"result"`
		ResultError           any            `json:"result_error"`
		DurationIsNumber      bool           `json:"duration_is_number"`
		CancelFinishedStatus  int            `json:"cancel_finished_status"`
		CancelFinishedDetail  string         `json:"cancel_finished_detail"`
		ResultWhileRunning    int            `json:"result_while_running_status"`
		ResultWhileRunningDet string         `json:"result_while_running_detail"`
		CancelRunningStatus   int            `json:"cancel_running_status"`
		CancelledFinalStatus  string         `json:"cancelled_final_status"`
		IdempotentStatuses    []int          `json:"idempotent_statuses"`
		IdempotentSameJob     bool           `json:"idempotent_same_job"`
		ListKeys              []string       `json:"list_keys"`
		ListTotal             int            `json:"list_total"`
		MissingStatus         int            `json:"missing_status"`
		MissingDetail         string         `json:"missing_detail"`
		AgentFileStatus       int            `json:"agent_file_status"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	check := func(name string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: %s", name, out)
		}
	}
	check("submit 202", got.SubmitStatus == 202)
	check("submit fields", strings.Join(got.SubmitFields, ",") == "created_at,job_id,poll_url,status,stream_url")
	check("Location", strings.HasPrefix(got.Location, "/api/v1/runs/run_"))
	check("Retry-After", got.RetryAfter != "")
	check("succeeded", got.FinalStatus == "succeeded")
	check("progress 100", got.Progress["percentage"] == float64(100) && got.Progress["steps_completed"] != nil)
	check("timeout kept", got.TimeoutSec == 60)
	check("result 200", got.ResultStatus == 200 && got.Result == "What is AI?" && got.ResultError == nil && got.DurationIsNumber)
	check("cancel finished 409", got.CancelFinishedStatus == 409 && strings.Contains(got.CancelFinishedDetail, "succeeded"))
	check("result while running 409", got.ResultWhileRunning == 409 && strings.Contains(got.ResultWhileRunningDet, "running"))
	check("cancel running 200", got.CancelRunningStatus == 200 && got.CancelledFinalStatus == "cancelled")
	check("idempotency", len(got.IdempotentStatuses) == 2 && got.IdempotentStatuses[0] == 202 && got.IdempotentStatuses[1] == 200 && got.IdempotentSameJob)
	check("list shape", strings.Join(got.ListKeys, ",") == "jobs,page,page_size,total" && got.ListTotal >= 1)
	check("missing 404", got.MissingStatus == 404 && strings.Contains(got.MissingDetail, "run_doesnotexist"))
	check("agent_file 422", got.AgentFileStatus == 422)
}

func TestRefusesOpenNonLoopbackBind(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Host = "0.0.0.0"
	_, err := Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "without API tokens") {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat(cfg.DB); statErr == nil {
		t.Error("the refused server created its database")
	}
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "127.3.2.1": true,
		"0.0.0.0": false, "": false, "::": false, "192.168.1.2": false, "example.com": false} {
		if isLoopback(host) != want {
			t.Errorf("isLoopback(%q) = %v", host, !want)
		}
	}
}

func TestTokensProtectTheAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	os.WriteFile(tokens, []byte("- token: team-a\n  workspace: a\n"), 0o600)
	cfg := testConfig(t)
	cfg.APIKey = "root"
	cfg.TokensFile = tokens
	n := startNode(t, cfg)
	if code, _ := n.get("/api/v1/runs"); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	req, _ := http.NewRequest("GET", n.url+"/api/v1/runs", nil)
	req.Header.Set("X-API-Key", "team-a")
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("team-a token: %d", resp.StatusCode)
	}
	if code, _ := n.get("/healthz"); code != 200 {
		t.Fatalf("/healthz needs no token: %d", code)
	}

	bad := testConfig(t)
	bad.TokensFile = filepath.Join(dir, "missing.yaml")
	if _, err := Start(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "--tokens") {
		t.Fatalf("missing tokens file: %v", err)
	}
	badSecret := testConfig(t)
	badSecret.WebhookSecret = "whsec_???"
	if _, err := Start(context.Background(), badSecret); err == nil || !strings.Contains(err.Error(), "--webhook-secret") {
		t.Fatalf("bad secret: %v", err)
	}
}

// Shutdown ends open streams and long-polls instead of waiting for them.
func TestShutdownIsNotHeldUpByStreams(t *testing.T) {
	t.Parallel()
	g := &gates{m: map[string]chan struct{}{}}
	cfg := testConfig(t)
	cfg.GoRecipes = testRecipes(g)
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Post(srv.URL()+"/api/v1/runs", "application/json", strings.NewReader(`{"recipe_name": "gated", "input": "never"}`))
	if err != nil {
		t.Fatal(err)
	}
	var run map[string]any
	json.NewDecoder(resp.Body).Decode(&run)
	resp.Body.Close()
	stream, err := client.Get(srv.URL() + "/api/v1/runs/" + run["job_id"].(string) + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	waitDone := make(chan int, 1)
	go func() {
		r, err := client.Get(srv.URL() + "/api/v1/runs/" + run["job_id"].(string) + "/wait?timeout=300")
		if err != nil {
			waitDone <- 0
			return
		}
		r.Body.Close()
		waitDone <- r.StatusCode
	}()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	if _, err := io.ReadAll(stream.Body); err != nil {
		t.Logf("stream ended with %v", err)
	}
	if code := <-waitDone; code != 200 && code != 0 {
		t.Errorf("long-poll ended with %d", code)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	// The run was interrupted by the shutdown, not lost: it is re-queued or failed.
	g.closeAll()
}

// An API-only server accepts runs; a worker on the same database then executes them.
func TestWorkerExecutesRunsFromTheDatabase(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Workers = 0
	api := startNode(t, cfg)
	var run map[string]any
	api.do("POST", "/api/v1/runs", map[string]any{"recipe_name": "echo", "input": 5}, &run)
	id := run["job_id"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	waited, _ := api.srv.Engine().Wait(ctx, id)
	cancel()
	if waited == nil || waited.State != spool.StateQueued {
		t.Fatalf("an API-only server ran the run: %+v", waited)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := api.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	wcfg := cfg
	wcfg.Workers = -1
	wcfg.GoRecipes = testRecipes(&gates{m: map[string]chan struct{}{}})
	w, err := StartWorker(context.Background(), wcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	if w.Addr() != "" || w.URL() != "" || w.Handler() != nil {
		t.Errorf("a worker serves HTTP at %q", w.Addr())
	}
	done, err := w.Engine().Wait(ctx, id)
	if err != nil || done.State != spool.StateSucceeded || string(done.Result) != "5" {
		t.Fatalf("worker run = %+v, %v", done, err)
	}
	if _, err := StartWorker(context.Background(), cfg); err == nil {
		t.Error("a worker with --workers 0 started")
	}
}
