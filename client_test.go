package spool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spool-run/spool"
)

// These tests drive the client against httptest servers that speak the wire contract, to
// reach cases a real server rarely produces (dropped streams, gaps, proxies' error pages).
// example_client_test.go runs the client against the real server.

// newClient starts handler on loopback and returns a client for it.
func newClient(t *testing.T, handler http.Handler, opts ...spool.ClientOption) *spool.Client {
	t.Helper()
	srv := httptest.NewServer(handler)
	c := spool.NewClient(srv.URL, opts...)
	t.Cleanup(func() {
		c.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, code, detail string, extra map[string]any) {
	p := map[string]any{"type": "https://spool.run/problems/" + code, "title": http.StatusText(status),
		"status": status, "detail": detail, "code": code}
	for k, v := range extra {
		p[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(p)
}

func runJSON(id string, state spool.State) map[string]any {
	return map[string]any{"job_id": id, "run_id": id, "status": state, "recipe_name": "echo",
		"priority": "normal", "created_at": "2025-01-02T03:04:05Z", "progress": map[string]any{"percentage": 0}}
}

func TestClientProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		is      error
		check   func(t *testing.T, e *spool.Error)
	}{
		{
			name: "not found",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeProblem(w, 404, "not_found", "no run run_x", nil)
			},
			is: spool.ErrNotFound,
			check: func(t *testing.T, e *spool.Error) {
				if e.Message != "no run run_x" {
					t.Errorf("Message = %q, want the problem's detail", e.Message)
				}
			},
		},
		{
			name: "invalid with fields",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeProblem(w, 400, "invalid", "priority: bad", map[string]any{
					"errors": []map[string]string{{"field": "priority", "reason": "must be one of urgent, high, normal, low"}}})
			},
			is: spool.ErrInvalid,
			check: func(t *testing.T, e *spool.Error) {
				if len(e.Fields) != 1 || e.Fields[0].Field != "priority" {
					t.Errorf("Fields = %+v, want priority", e.Fields)
				}
			},
		},
		{
			name: "queue full with retry_after",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "9")
				writeProblem(w, 503, "queue_full", "the queue is full", map[string]any{"retry_after": 5})
			},
			is: spool.ErrQueueFull,
			check: func(t *testing.T, e *spool.Error) {
				if e.RetryAfter != 5 {
					t.Errorf("RetryAfter = %d, want 5 from the body", e.RetryAfter)
				}
			},
		},
		{
			name: "conflict with run_status",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeProblem(w, 409, "conflict", "run is running", map[string]any{"run_status": "running"})
			},
			is: spool.ErrConflict,
			check: func(t *testing.T, e *spool.Error) {
				if e.State != spool.StateRunning {
					t.Errorf("State = %q, want running", e.State)
				}
			},
		},
		{
			name: "proxy error page",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "<html>upstream down</html>")
			},
			check: func(t *testing.T, e *spool.Error) {
				if e.Code != spool.CodeUnavailable || e.RetryAfter != 7 {
					t.Errorf("got code %q retry %d, want unavailable from the status and 7 from the header", e.Code, e.RetryAfter)
				}
				if strings.Contains(e.Message, "<html>") {
					t.Errorf("Message %q carries the HTML page", e.Message)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, tt.handler)
			_, err := c.Get(context.Background(), "run_x")
			var e *spool.Error
			if !errors.As(err, &e) {
				t.Fatalf("Get error = %v (%T), want *spool.Error", err, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if errors.Is(err, spool.ErrNotFound) != (e.Code == spool.CodeNotFound) {
				t.Errorf("errors.Is(err, ErrNotFound) disagrees with code %q", e.Code)
			}
			tt.check(t, e)
		})
	}
}

func TestClientConnectionError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	c := spool.NewClient("http://" + addr)
	defer c.Close()
	_, err = c.Get(context.Background(), "run_x")
	var ce *spool.ConnectionError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want *spool.ConnectionError", err, err)
	}
	if ce.URL != "http://"+addr {
		t.Errorf("URL = %q, want the server's", ce.URL)
	}
	var se *spool.Error
	if errors.As(err, &se) {
		t.Errorf("a connection failure must not be a *spool.Error")
	}

	// A cancelled context is the context's error, not a connection failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Get(ctx, "run_x")
	if !errors.Is(err, context.Canceled) || errors.As(err, &ce) {
		t.Errorf("cancelled Get error = %v, want context.Canceled and no ConnectionError", err)
	}
}

func TestClientURLs(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"127.0.0.1:8005":                 "http://127.0.0.1:8005",
		"http://127.0.0.1:8005/":         "http://127.0.0.1:8005",
		"http://127.0.0.1:8005/api/v1":   "http://127.0.0.1:8005",
		"https://example.com/spool/":     "https://example.com/spool",
		"":                               spool.DefaultURL,
		"http://h:1/spool/api/v1/?x=1#f": "http://h:1/spool",
	}
	for in, want := range tests {
		if got := spool.NewClient(in).URL(); got != want {
			t.Errorf("NewClient(%q).URL() = %q, want %q", in, got, want)
		}
	}
	c := spool.NewClient("ftp://x")
	if _, err := c.Get(context.Background(), "run_x"); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Errorf("Get with an ftp URL: error = %v, want one about the scheme", err)
	}
}

func TestClientSubmit(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var gotBody map[string]any
	var gotAuth string
	var mu sync.Mutex
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/runs" {
			t.Errorf("request %s %s, want POST /api/v1/runs", r.Method, r.URL.Path)
		}
		mu.Lock()
		gotAuth = r.Header.Get("Authorization")
		json.NewDecoder(r.Body).Decode(&gotBody)
		mu.Unlock()
		status := http.StatusAccepted
		if calls.Add(1) > 1 {
			status = http.StatusOK // the idempotency key matched
		}
		w.Header().Set("Location", "/api/v1/runs/run_1")
		writeJSON(w, status, runJSON("run_1", spool.StateQueued))
	}), spool.WithToken("s3cret"))

	prio := spool.PriorityHigh
	req := &spool.SubmitRequest{Recipe: "echo", Input: json.RawMessage(`{"a":1}`), Priority: &prio,
		TimeoutSec: 60, IdempotencyKey: "k1", SessionID: "s1"}
	job, err := c.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if job.ID != "run_1" || job.Existing || job.Run == nil || job.Run.State != spool.StateQueued {
		t.Errorf("job = %+v, want run_1, new, queued", job)
	}
	mu.Lock()
	want := map[string]any{"recipe_name": "echo", "input": map[string]any{"a": 1.0}, "priority": "high",
		"timeout": 60.0, "idempotency_key": "k1", "session_id": "s1"}
	if !reflect.DeepEqual(gotBody, want) {
		t.Errorf("body = %v, want %v", gotBody, want)
	}
	if gotAuth != "Bearer s3cret" {
		t.Errorf("Authorization = %q, want the bearer token", gotAuth)
	}
	mu.Unlock()

	job, err = c.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !job.Existing {
		t.Errorf("a 200 answer must mark the job Existing")
	}
}

func TestClientEndpoints(t *testing.T) {
	t.Parallel()
	type seen struct{ method, uri, body string }
	var mu sync.Mutex
	var got []seen
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.RequestURI(), strings.TrimSpace(string(b))})
		mu.Unlock()
		switch {
		case r.URL.Path == "/api/v1/runs" && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"jobs": []any{runJSON("run_1", spool.StateRunning)}, "total": 7, "page": 2, "page_size": 1})
		case r.URL.Path == "/api/v1/runs/batch":
			writeJSON(w, 202, map[string]any{"jobs": []any{runJSON("run_1", spool.StateQueued), runJSON("run_2", spool.StateQueued)}})
		case r.URL.Path == "/api/v1/runs/clear":
			writeJSON(w, 200, map[string]any{"deleted": 3})
		case r.URL.Path == "/api/v1/stats":
			writeJSON(w, 200, map[string]any{"queued_count": 2, "total_runs": 9, "queued_by_priority": map[string]int{"high": 2}})
		case r.URL.Path == "/api/v1/recipes":
			writeJSON(w, 200, map[string]any{"recipes": []any{map[string]any{"name": "echo", "kind": "exec"}},
				"errors": []any{map[string]any{"file": "bad.yaml", "error": "kind: unknown"}}})
		case r.URL.Path == "/api/v1/runs/run_1/result":
			writeJSON(w, 200, map[string]any{"job_id": "run_1", "status": "succeeded", "result": map[string]any{"ok": true},
				"error": nil, "metrics": map[string]any{"attempt": 1, "wait_seconds": 0.5, "duration_seconds": 2}})
		case r.URL.Path == "/api/v1/runs/run_1/events":
			writeJSON(w, 200, map[string]any{"events": []any{
				map[string]any{"job_id": "run_1", "seq": 3, "type": "progress", "ts": "2025-01-02T03:04:05Z", "percentage": 40, "current_step": "two"}}})
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, 200, runJSON("run_1", spool.StatePaused))
		}
	}))
	ctx := context.Background()

	list, err := c.List(ctx, spool.ListParams{States: []spool.State{spool.StateRunning, spool.StateQueued}, Recipe: "echo", SessionID: "s", Page: 2, PageSize: 1})
	if err != nil || len(list.Runs) != 1 || list.Total != 7 || list.Page != 2 {
		t.Errorf("List = %+v, %v", list, err)
	}
	jobs, err := c.SubmitMany(ctx, []*spool.SubmitRequest{{Recipe: "echo"}, {Recipe: "echo"}})
	if err != nil || len(jobs) != 2 || jobs[1].ID != "run_2" {
		t.Errorf("SubmitMany = %v, %v", jobs, err)
	}
	if n, err := c.Clear(ctx, spool.ClearParams{OlderThan: 24 * time.Hour}); err != nil || n != 3 {
		t.Errorf("Clear = %d, %v; want 3", n, err)
	}
	if st, err := c.Stats(ctx); err != nil || st.Queued != 2 || st.Total != 9 || st.QueuedByPriority["high"] != 2 {
		t.Errorf("Stats = %+v, %v", st, err)
	}
	if rl, err := c.Recipes(ctx); err != nil || len(rl.Recipes) != 1 || rl.Recipes[0].Kind != "exec" || rl.Errors[0].Message != "kind: unknown" {
		t.Errorf("Recipes = %+v, %v", rl, err)
	}
	if res, err := c.Result(ctx, "run_1"); err != nil || res.State != spool.StateSucceeded || string(res.Result) != `{"ok":true}` || res.Metrics.Attempt != 1 {
		t.Errorf("Result = %+v, %v", res, err)
	}
	if evs, err := c.Events(ctx, "run_1", 2); err != nil || len(evs) != 1 || evs[0].Progress == nil || evs[0].Progress.Percentage != 40 {
		t.Errorf("Events = %v, %v; want one progress event at 40%%", evs, err)
	}
	if r, err := c.Pause(ctx, "run_1"); err != nil || r.State != spool.StatePaused {
		t.Errorf("Pause = %v, %v", r, err)
	}
	if _, err := c.Resume(ctx, "run_1"); err != nil {
		t.Error(err)
	}
	if _, err := c.Retry(ctx, "run_1"); err != nil {
		t.Error(err)
	}
	if err := c.Delete(ctx, "run_1"); err != nil {
		t.Error(err)
	}

	want := []seen{
		{"GET", "/api/v1/runs?page=2&page_size=1&recipe_name=echo&session_id=s&status=running%2Cqueued", ""},
		{"POST", "/api/v1/runs/batch", `{"runs":[{"recipe_name":"echo"},{"recipe_name":"echo"}]}`},
		{"POST", "/api/v1/runs/clear", `{"all":false,"older_than":"24h0m0s"}`},
		{"GET", "/api/v1/stats", ""},
		{"GET", "/api/v1/recipes", ""},
		{"GET", "/api/v1/runs/run_1/result", ""},
		{"GET", "/api/v1/runs/run_1/events?after=2", ""},
		{"POST", "/api/v1/runs/run_1/pause", ""},
		{"POST", "/api/v1/runs/run_1/resume", ""},
		{"POST", "/api/v1/runs/run_1/retry", ""},
		{"DELETE", "/api/v1/runs/run_1", ""},
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n got %v\nwant %v", got, want)
	}
}

func TestJobCancel(t *testing.T) {
	t.Parallel()
	var gets atomic.Int32
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/runs/run_done/cancel":
			writeProblem(w, 409, "conflict", "run run_done already succeeded", map[string]any{"run_status": "succeeded"})
		case "/api/v1/runs/run_done":
			gets.Add(1)
			writeJSON(w, 200, runJSON("run_done", spool.StateSucceeded))
		case "/api/v1/runs/run_q/cancel":
			writeJSON(w, 200, runJSON("run_q", spool.StateCancelled))
		default:
			writeProblem(w, 404, "not_found", "no such run", nil)
		}
	}))
	ctx := context.Background()

	if err := c.Job("run_done").Cancel(ctx); err != nil {
		t.Errorf("cancelling a finished run: %v, want no error", err)
	}
	run, err := c.Cancel(ctx, "run_done")
	if err != nil || run.State != spool.StateSucceeded {
		t.Errorf("Cancel of a finished run = %v, %v; want it unchanged and no error", run, err)
	}
	if gets.Load() == 0 {
		t.Errorf("Cancel did not read the finished run back")
	}
	run, err = c.Cancel(ctx, "run_q")
	if err != nil || run.State != spool.StateCancelled {
		t.Errorf("Cancel of a queued run = %v, %v", run, err)
	}
	if err := c.Job("run_nope").Cancel(ctx); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Cancel of an unknown run = %v, want ErrNotFound", err)
	}
}

func TestJobWait(t *testing.T) {
	t.Parallel()
	var polls atomic.Int32
	finish := make(chan struct{})
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/runs/run_1/wait":
			if r.URL.Query().Get("timeout") == "" {
				t.Errorf("wait without a timeout parameter")
			}
			if polls.Add(1) == 1 {
				// The first long-poll ends without the run finishing, as at its timeout.
				writeJSON(w, 200, runJSON("run_1", spool.StateRunning))
				close(finish)
				return
			}
			writeJSON(w, 200, runJSON("run_1", spool.StateSucceeded))
		case "/api/v1/runs/run_slow/wait":
			<-r.Context().Done() // never finishes
		}
	}))
	var seen []spool.State
	run, err := c.Job("run_1").Wait(context.Background(), spool.WaitPollTimeout(time.Second),
		spool.WaitOnPoll(func(r *spool.Run) { seen = append(seen, r.State) }))
	if err != nil || run.State != spool.StateSucceeded {
		t.Fatalf("Wait = %v, %v; want succeeded", run, err)
	}
	if polls.Load() != 2 || len(seen) != 1 || seen[0] != spool.StateRunning {
		t.Errorf("polls = %d, OnPoll saw %v; want 2 polls and one running", polls.Load(), seen)
	}

	start := time.Now()
	run, err = c.Job("run_slow").Wait(context.Background(), spool.WaitTimeout(200*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) || run != nil {
		t.Errorf("Wait past its timeout = %v, %v; want nil and DeadlineExceeded", run, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Wait took %v to honour a 200ms timeout", d)
	}
}

// sseEvent formats one SSE event.
func sseEvent(seq int64, typ string, extra string) string {
	data := fmt.Sprintf(`{"job_id":"run_1","seq":%d,"type":%q,"ts":"2025-01-02T03:04:05Z"%s}`, seq, typ, extra)
	return fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", seq, typ, data)
}

// collect drains an event sequence into seqs, texts and the final error.
func collect(t *testing.T, job *spool.Job, ctx context.Context) ([]int64, string, error) {
	t.Helper()
	var seqs []int64
	var text strings.Builder
	for ev, err := range job.Events(ctx) {
		if err != nil {
			return seqs, text.String(), err
		}
		seqs = append(seqs, ev.Seq)
		text.WriteString(ev.Text)
	}
	return seqs, text.String(), nil
}

func TestJobEventsResumesAfterDrop(t *testing.T) {
	t.Parallel()
	for _, abrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("abrupt=%v", abrupt), func(t *testing.T) {
			t.Parallel()
			var conns atomic.Int32
			var lastIDs []string
			var mu sync.Mutex
			c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/runs/run_1/stream" {
					writeJSON(w, 200, runJSON("run_1", spool.StateRunning))
					return
				}
				mu.Lock()
				lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
				mu.Unlock()
				w.Header().Set("Content-Type", "text/event-stream")
				fl := w.(http.Flusher)
				switch conns.Add(1) {
				case 1:
					io.WriteString(w, ": hello\n\n")
					io.WriteString(w, sseEvent(1, "status", `,"status":"running"`))
					io.WriteString(w, "event: heartbeat\ndata: {\"type\":\"heartbeat\"}\n\n")
					io.WriteString(w, sseEvent(2, "output", `,"text":"a"`))
					io.WriteString(w, sseEvent(3, "output", `,"text":"b"`))
					io.WriteString(w, "id: 4\nevent: output\ndata: {\"job_id\":\"run_1\",") // cut mid-event
					fl.Flush()
					if abrupt {
						conn, _, err := w.(http.Hijacker).Hijack()
						if err == nil {
							conn.Close()
						}
					}
				default:
					// The server resends from Last-Event-ID; one event repeats to check the client skips it.
					io.WriteString(w, sseEvent(3, "output", `,"text":"b"`))
					io.WriteString(w, sseEvent(4, "output", `,"text":"c\nd"`))
					io.WriteString(w, sseEvent(5, "progress", `,"percentage":100`))
					io.WriteString(w, sseEvent(6, "result", `,"result":{"ok":true}`))
					fl.Flush()
				}
			}))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			seqs, text, err := collect(t, c.Job("run_1"), ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := []int64{1, 2, 3, 4, 5, 6}; !reflect.DeepEqual(seqs, want) {
				t.Errorf("seqs = %v, want %v: none repeated, none skipped", seqs, want)
			}
			if text != "abc\nd" {
				t.Errorf("output = %q, want %q", text, "abc\nd")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(lastIDs) != 2 || lastIDs[0] != "" || lastIDs[1] != "3" {
				t.Errorf("Last-Event-ID per connection = %q, want [\"\" \"3\"]", lastIDs)
			}
		})
	}
}

func TestJobEventsFillsGapsFromStore(t *testing.T) {
	t.Parallel()
	var afterSeen atomic.Value
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/runs/run_1/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, sseEvent(1, "status", `,"status":"running"`))
			io.WriteString(w, sseEvent(4, "output", `,"text":"4"`)) // 2 and 3 were dropped
			io.WriteString(w, sseEvent(5, "result", `,"result":null`))
		case "/api/v1/runs/run_1/events":
			afterSeen.Store(r.URL.Query().Get("after"))
			ev := func(seq int) map[string]any {
				return map[string]any{"job_id": "run_1", "seq": seq, "type": "output", "ts": "2025-01-02T03:04:05Z", "text": fmt.Sprint(seq)}
			}
			writeJSON(w, 200, map[string]any{"events": []any{ev(2), ev(3), ev(4)}})
		}
	}))
	seqs, text, err := collect(t, c.Job("run_1"), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 2, 3, 4, 5}; !reflect.DeepEqual(seqs, want) || text != "234" {
		t.Errorf("seqs = %v text %q, want %v and 234", seqs, text, want)
	}
	if afterSeen.Load() != "1" {
		t.Errorf("gap filled with after=%v, want 1", afterSeen.Load())
	}
}

func TestJobEventsCatchUpWhenRunEnded(t *testing.T) {
	t.Parallel()
	// The stream closes without the terminal event and the run has meanwhile finished:
	// the rest comes from the stored events.
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/runs/run_1/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			if r.Header.Get("Last-Event-ID") == "" {
				io.WriteString(w, sseEvent(1, "output", `,"text":"x"`))
			}
		case "/api/v1/runs/run_1":
			writeJSON(w, 200, runJSON("run_1", spool.StateFailed))
		case "/api/v1/runs/run_1/events":
			if r.URL.Query().Get("after") != "1" {
				writeJSON(w, 200, map[string]any{"events": []any{}})
				return
			}
			writeJSON(w, 200, map[string]any{"events": []any{map[string]any{"job_id": "run_1", "seq": 2,
				"type": "error", "ts": "2025-01-02T03:04:05Z", "error": "boom", "error_code": "exit_status"}}})
		}
	}))
	var last *spool.Event
	for ev, err := range c.Job("run_1").Events(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		last = ev
	}
	if last == nil || last.Seq != 2 || last.Type != spool.EventError || last.Error != "boom" {
		t.Errorf("last event = %+v, want the stored error event", last)
	}
}

func TestJobEventsErrors(t *testing.T) {
	t.Parallel()
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 404, "not_found", "no run run_nope", nil)
	}))
	_, _, err := collect(t, c.Job("run_nope"), context.Background())
	if !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Events of an unknown run: %v, want ErrNotFound", err)
	}

	// A consumer that stops early gets no more events and leaves nothing running.
	c = newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, sseEvent(1, "output", `,"text":"a"`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	n := 0
	for _, err := range c.Job("run_1").Events(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Errorf("got %d events before break, want 1", n)
	}
}

// TestRootImportsOnlyStdlib keeps SDK users free of the server's dependencies.
func TestRootImportsOnlyStdlib(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found:", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != "github.com/spool-run/spool" {
			t.Errorf("package spool depends on %s; it must import only the standard library", pkg)
		}
	}
}
