package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql's opener goroutine ends with its DB; modernc's sqlite keeps none.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// env is one API server on loopback over a real engine with a SQLite file in t.TempDir().
type env struct {
	t      *testing.T
	engine *queue.Engine
	api    *Server
	srv    *httptest.Server
	client *http.Client
	token  string // sent as a bearer token when set

	// gates release the "gated" recipe: each run waits for gate(name) where name is its
	// input string.
	mu    sync.Mutex
	gates map[string]chan struct{}
}

type envOption func(*queue.Config, *Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, gates: map[string]chan struct{}{}}
	qc := queue.Config{DB: filepath.Join(t.TempDir(), "spool.db"), PollInterval: 50 * time.Millisecond,
		ShutdownGrace: time.Millisecond, CancelGrace: 2 * time.Second}
	ac := Config{Heartbeat: time.Hour}
	for _, o := range opts {
		o(&qc, &ac)
	}
	eng, err := queue.New(qc)
	if err != nil {
		t.Fatal(err)
	}
	e.engine = eng
	e.registerRecipes()
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ac.Engine = eng
	e.api = New(ac)
	e.srv = httptest.NewServer(e.api)
	e.client = e.srv.Client()
	t.Cleanup(func() {
		e.mu.Lock()
		for _, g := range e.gates {
			select {
			case <-g:
			default:
				close(g)
			}
		}
		e.mu.Unlock()
		e.api.Drain()
		e.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Stop(ctx); err != nil {
			t.Errorf("stopping the engine: %v", err)
		}
	})
	return e
}

func (e *env) gate(name string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	g, ok := e.gates[name]
	if !ok {
		g = make(chan struct{})
		e.gates[name] = g
	}
	return g
}

func (e *env) release(name string) { close(e.gate(name)) }

func (e *env) registerRecipes() {
	e.engine.Register("echo", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		return r.Input, nil
	}))
	e.engine.Register("fail", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		return nil, queue.Permanent(errors.New("it went wrong"))
	}))
	// gated writes "before", waits for its gate (named by its input), writes "after".
	e.engine.Register("gated", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		var name string
		_ = json.Unmarshal(r.Input, &name)
		queue.Output(ctx, "before\n")
		queue.ReportProgress(ctx, 50, "halfway")
		select {
		case <-e.gate(name):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		queue.Output(ctx, "after\n")
		return map[string]string{"gate": name}, nil
	}))
	// chatty writes n output chunks, waits for its gate, then n more.
	e.engine.Register("chatty", queue.HandlerFunc(func(ctx context.Context, r *spool.Run) (any, error) {
		var in struct {
			N    int    `json:"n"`
			Gate string `json:"gate"`
		}
		_ = json.Unmarshal(r.Input, &in)
		for i := 0; i < in.N; i++ {
			queue.Output(ctx, fmt.Sprintf("a%d\n", i))
		}
		select {
		case <-e.gate(in.Gate):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		for i := 0; i < in.N; i++ {
			queue.Output(ctx, fmt.Sprintf("b%d\n", i))
		}
		return in.N * 2, nil
	}))
}

// do sends a request and returns the response with its body read.
func (e *env) do(method, path string, body any, headers ...string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

// must sends a request, checks its status and decodes the JSON answer into out (if not nil).
func (e *env) must(status int, method, path string, body, out any, headers ...string) *http.Response {
	e.t.Helper()
	resp, b := e.do(method, path, body, headers...)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return resp
}

// problem sends a request that must fail with status and code, and returns the problem.
func (e *env) problem(status int, code, method, path string, body any, headers ...string) *Problem {
	e.t.Helper()
	resp, b := e.do(method, path, body, headers...)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		e.t.Fatalf("%s %s: Content-Type = %q, want application/problem+json", method, path, ct)
	}
	var p Problem
	if err := json.Unmarshal(b, &p); err != nil {
		e.t.Fatalf("%s %s: decoding problem %s: %v", method, path, b, err)
	}
	if p.Code != code || p.Status != status || p.Type != problemBase+code || p.Title == "" || p.Detail == "" {
		e.t.Fatalf("%s %s: problem = %+v, want code %s", method, path, p, code)
	}
	return &p
}

// apiRun is a run as the API answers it.
type apiRun struct {
	spool.Run
	RunID           string          `json:"run_id"`
	Result          json.RawMessage `json:"result"`
	Error           *string         `json:"error"`
	ErrorCode       *string         `json:"error_code"`
	DurationSeconds *float64        `json:"duration_seconds"`
	WaitSeconds     float64         `json:"wait_seconds"`
	RetryAfter      *float64        `json:"retry_after"`
	PollURL         string          `json:"poll_url"`
	StreamURL       string          `json:"stream_url"`
}

func (e *env) submit(body any, headers ...string) *apiRun {
	e.t.Helper()
	var r apiRun
	e.must(http.StatusAccepted, "POST", "/api/v1/runs", body, &r, headers...)
	return &r
}

// waitState polls the run until it is in state, or fails after 10s.
func (e *env) waitState(id string, state spool.State) *apiRun {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var r apiRun
		e.must(http.StatusOK, "GET", "/api/v1/runs/"+id, nil, &r)
		if r.State == state {
			return &r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %s is %s after 10s, want %s", id, r.State, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone long-polls the run until it is terminal.
func (e *env) waitDone(id string) *apiRun {
	e.t.Helper()
	var r apiRun
	e.must(http.StatusOK, "GET", "/api/v1/runs/"+id+"/wait?timeout=10", nil, &r)
	if !r.State.IsTerminal() {
		e.t.Fatalf("run %s still %s after a 10s wait", id, r.State)
	}
	return &r
}
