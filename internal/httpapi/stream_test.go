package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, event string
	hasID     bool
	data      map[string]any
}

// sseStream reads events from an open SSE response.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	sc     *bufio.Scanner
	cancel context.CancelFunc
}

func (e *env) openStream(path string, headers ...string) *sseStream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		e.t.Fatalf("GET %s = %d", path, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		e.t.Fatalf("Content-Type = %q", ct)
	}
	s := &sseStream{t: e.t, resp: resp, sc: bufio.NewScanner(resp.Body), cancel: cancel}
	e.t.Cleanup(s.close)
	return s
}

// next returns the next event, or nil at the end of the stream.
func (s *sseStream) next() *sseEvent {
	s.t.Helper()
	ev := &sseEvent{}
	seen := false
	for s.sc.Scan() {
		line := s.sc.Text()
		if line == "" {
			if seen && ev.event != "" {
				return ev
			}
			ev, seen = &sseEvent{}, false
			continue
		}
		seen = true
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "id":
			ev.id, ev.hasID = value, true
		case "event":
			ev.event = value
		case "data":
			if err := json.Unmarshal([]byte(value), &ev.data); err != nil {
				s.t.Fatalf("data is not one JSON object: %q", value)
			}
		case "retry":
		default:
			s.t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return nil
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// readAll reads events until the stream ends, skipping heartbeats.
func (s *sseStream) readAll() []*sseEvent {
	var out []*sseEvent
	for ev := s.next(); ev != nil; ev = s.next() {
		if ev.event != "heartbeat" {
			out = append(out, ev)
		}
	}
	return out
}

func seqOf(t *testing.T, ev *sseEvent) int64 {
	t.Helper()
	n, err := strconv.ParseInt(ev.id, 10, 64)
	if err != nil || float64(n) != ev.data["seq"] {
		t.Fatalf("event id %q does not match data seq %v", ev.id, ev.data["seq"])
	}
	return n
}

func TestStreamDeliversEveryEventThenCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.submit(map[string]any{"recipe_name": "gated", "input": "s1"})
	st := e.openStream("/api/v1/runs/" + r.ID + "/stream")
	// Read up to the progress event, then let the run finish.
	var got []*sseEvent
	for {
		ev := st.next()
		if ev == nil {
			t.Fatal("stream ended early")
		}
		got = append(got, ev)
		if ev.event == "progress" {
			break
		}
	}
	e.release("s1")
	got = append(got, st.readAll()...)
	var kinds []string
	for i, ev := range got {
		if seqOf(t, ev) != int64(i+1) {
			t.Fatalf("event %d has seq %s", i, ev.id)
		}
		if ev.data["type"] != ev.event || ev.data["job_id"] != r.ID || ev.data["ts"] == nil {
			t.Errorf("event %d data = %v", i, ev.data)
		}
		kinds = append(kinds, ev.event)
	}
	if got := strings.Join(kinds, ","); !strings.HasPrefix(got, "status,status,output,progress,output") || !strings.HasSuffix(got, ",result") {
		t.Fatalf("events = %s", got)
	}
	last := got[len(got)-1]
	if res, _ := last.data["result"].(map[string]any); res["gate"] != "s1" {
		t.Errorf("result event = %v", last.data)
	}
	if got[2].data["text"] != "before\n" {
		t.Errorf("output event = %v", got[2].data)
	}
	if got[3].data["percentage"] != float64(50) || got[3].data["current_step"] != "halfway" {
		t.Errorf("progress event = %v", got[3].data)
	}

	// A finished run streams its stored events and closes; ?after= resumes too.
	again := e.openStream("/api/v1/runs/" + r.ID + "/stream?after=4").readAll()
	if len(again) != len(got)-4 || seqOf(t, again[0]) != 5 {
		t.Fatalf("after=4 gave %d events starting at %s", len(again), again[0].id)
	}
}

// A client that drops the connection and reconnects with Last-Event-ID gets every event
// exactly once.
func TestStreamResumesWithLastEventID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 200
	r := e.submit(map[string]any{"recipe_name": "chatty", "input": map[string]any{"n": n, "gate": "r1"}})
	st := e.openStream("/api/v1/runs/" + r.ID + "/stream")
	seen := map[int64]bool{}
	var last int64
	for len(seen) < 50 {
		ev := st.next()
		if ev == nil {
			t.Fatal("stream ended early")
		}
		if ev.event == "heartbeat" {
			continue
		}
		s := seqOf(t, ev)
		if seen[s] {
			t.Fatalf("seq %d repeated", s)
		}
		seen[s], last = true, s
	}
	st.close() // the connection drops mid-stream

	e.release("r1") // the run goes on while nobody watches
	e.waitDone(r.ID)

	rest := e.openStream("/api/v1/runs/"+r.ID+"/stream", "Last-Event-ID", strconv.FormatInt(last, 10)).readAll()
	for _, ev := range rest {
		s := seqOf(t, ev)
		if seen[s] {
			t.Fatalf("seq %d delivered twice", s)
		}
		seen[s] = true
	}
	total := int64(len(seen))
	for s := int64(1); s <= total; s++ {
		if !seen[s] {
			t.Fatalf("seq %d never delivered (of %d)", s, total)
		}
	}
	if end := rest[len(rest)-1]; end.event != "result" || end.data["result"] != float64(2*n) {
		t.Fatalf("last event = %s %v", end.event, end.data)
	}
	if total < 2*n {
		t.Fatalf("saw %d events, want at least the %d outputs", total, 2*n)
	}
}

func TestManyViewersAllGetEveryEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.submit(map[string]any{"recipe_name": "chatty", "input": map[string]any{"n": 50, "gate": "v"}})
	const viewers = 5
	streams := make([]*sseStream, viewers)
	for i := range streams {
		streams[i] = e.openStream("/api/v1/runs/" + r.ID + "/stream")
	}
	results := make([][]string, viewers)
	var wg sync.WaitGroup
	for i, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := st.next(); ev != nil; ev = st.next() {
				if ev.event != "heartbeat" {
					results[i] = append(results[i], ev.id+":"+ev.event)
				}
			}
		}()
	}
	e.release("v")
	wg.Wait()
	want := strings.Join(results[0], " ")
	if !strings.HasSuffix(want, ":result") || len(results[0]) < 100 {
		t.Fatalf("viewer 0 got %d events ending %q", len(results[0]), results[0][len(results[0])-1])
	}
	for i := 1; i < viewers; i++ {
		if got := strings.Join(results[i], " "); got != want {
			t.Fatalf("viewer %d saw a different stream than viewer 0:\n%s\n%s", i, diffHint(results[0], results[i]), got)
		}
	}
}

func TestStreamHeartbeats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *queue.Config, c *Config) { c.Heartbeat = 20 * time.Millisecond })
	r := e.submit(map[string]any{"recipe_name": "gated", "input": "hb"})
	st := e.openStream("/api/v1/runs/" + r.ID + "/stream")
	var last int64
	for {
		ev := st.next()
		if ev == nil {
			t.Fatal("stream ended")
		}
		if ev.event != "heartbeat" {
			last = seqOf(t, ev)
			continue
		}
		if ev.hasID {
			t.Fatalf("heartbeat carries an id: %q", ev.id)
		}
		if ev.data["type"] != "heartbeat" || ev.data["job_id"] != r.ID || ev.data["seq"] != float64(last) {
			t.Fatalf("heartbeat data = %v (last seq %d)", ev.data, last)
		}
		break
	}
	e.release("hb")
	if evs := st.readAll(); evs[len(evs)-1].event != "result" {
		t.Fatalf("stream ended with %s", evs[len(evs)-1].event)
	}
}

func TestStreamErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.problem(404, spool.CodeNotFound, "GET", "/api/v1/runs/run_nope/stream", nil)
	r := e.submit(map[string]any{"recipe_name": "echo"})
	e.waitDone(r.ID)
	e.problem(400, spool.CodeInvalid, "GET", "/api/v1/runs/"+r.ID+"/stream", nil, "Last-Event-ID", "abc")
	e.problem(400, spool.CodeInvalid, "GET", "/api/v1/runs/"+r.ID+"/stream?after=-1", nil)
	// Resuming after the terminal event ends at once with nothing.
	evs := e.openStream("/api/v1/runs/"+r.ID+"/stream", "Last-Event-ID", "1000").readAll()
	if len(evs) != 0 {
		t.Fatalf("got %d events after the end", len(evs))
	}
}

// Drain ends open streams so that a shutdown is not held up by them.
func TestDrainEndsStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.submit(map[string]any{"recipe_name": "gated", "input": "d"})
	st := e.openStream("/api/v1/runs/" + r.ID + "/stream")
	if ev := st.next(); ev == nil {
		t.Fatal("no first event")
	}
	done := make(chan struct{})
	go func() {
		st.readAll()
		close(done)
	}()
	e.api.Drain()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5s after Drain")
	}
	e.release("d")
	e.waitState(r.ID, spool.StateSucceeded) // long-polls end at once while draining
}

// diffHint describes where two event lists first differ.
func diffHint(a, b []string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at %d: %q vs %q (lengths %d, %d)", i, a[i], b[i], len(a), len(b))
		}
	}
	return fmt.Sprintf("one is a prefix of the other (lengths %d, %d)", len(a), len(b))
}
