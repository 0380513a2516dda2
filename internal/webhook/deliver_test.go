package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/ids"
	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/internal/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql's connection opener lives until the DB is closed; sqlite stores are
		// closed in t.Cleanup, which goleak sees after the fact on some runs.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

func newStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "spool.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// succeededRun stores a run that succeeded with result {"answer": 42} and a webhook to url.
func succeededRun(t *testing.T, st store.Store, url string) *spool.Run {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	began := now.Add(-1500 * time.Millisecond)
	run, _, err := st.RunInsert(ctx, &store.RunInsertParams{
		ID: ids.NewRun(), Recipe: "r", Agent: "r", Workspace: "default", Priority: spool.PriorityNormal,
		Input: json.RawMessage(`null`), CreatedAt: began, WebhookURL: url,
	})
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := st.RunClaim(ctx, &store.RunClaimParams{Node: "n1", Now: began, LeaseUntil: now.Add(time.Minute), Max: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v (%d runs)", err, len(claimed))
	}
	done, err := st.RunFinishMany(ctx, nil, []*store.RunFinishParams{{
		ID: run.ID, Node: "n1", Attempt: claimed[0].Attempt, State: spool.StateSucceeded,
		Result: json.RawMessage(`{"answer":42}`), Now: now,
	}})
	if err != nil || len(done) != 1 || done[0] == nil {
		t.Fatalf("finish: %v", err)
	}
	return done[0]
}

// waitDelivery polls the run's deliveries until the first one leaves pending.
func waitDelivery(t *testing.T, st store.Store, runID string) *store.Delivery {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ds, err := st.WebhookList(context.Background(), runID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].State != store.DeliveryPending {
			return ds[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery still pending after 5s: %+v", ds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type received struct {
	header http.Header
	body   []byte
}

// receiver is a webhook receiver that fails its first failures requests with 500.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	failures int
	got      []received
}

func newReceiver(t *testing.T, failures int) *receiver {
	r := &receiver{failures: failures}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b})
		fail := len(r.got) <= r.failures
		r.mu.Unlock()
		if fail {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func startDeliverer(t *testing.T, cfg Config) *Deliverer {
	t.Helper()
	if cfg.Node == "" {
		cfg.Node = "n1"
	}
	if cfg.Guard == nil {
		cfg.Guard = &Guard{AllowPrivate: true} // the receiver is on loopback
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = 10 * time.Millisecond
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	d := New(cfg)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

func TestDeliverRetriesUntilTheReceiverAccepts(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	recv := newReceiver(t, 2)
	run := succeededRun(t, st, recv.URL+"/hook")

	key := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	parsed, err := ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	var mu sync.Mutex
	started := time.Now()
	d := startDeliverer(t, Config{Store: st, Secret: parsed, OnAttempt: func(o string) {
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	}})
	d.Wake()

	del := waitDelivery(t, st, run.ID)
	if elapsed := time.Since(started); elapsed > time.Second {
		t.Errorf("three attempts took %s, want well under a second with a 10ms base", elapsed)
	}
	if del.State != store.DeliveryDelivered {
		t.Fatalf("state = %s, want delivered", del.State)
	}
	if len(del.Attempts) != 3 {
		t.Fatalf("attempts = %+v, want 3", del.Attempts)
	}
	for i, a := range del.Attempts {
		want := http.StatusInternalServerError
		if i == 2 {
			want = http.StatusNoContent
		}
		if a.StatusCode != want || (i < 2) != (a.Error != "") {
			t.Errorf("attempt %d = %+v, want status %d", i+1, a, want)
		}
	}
	d.Stop() // waits for the attempt in flight, whose OnAttempt follows its record
	mu.Lock()
	if got := len(outcomes); got != 3 || outcomes[0] != OutcomeRetry || outcomes[2] != OutcomeDelivered {
		t.Errorf("outcomes = %v, want [retry retry delivered]", outcomes)
	}
	mu.Unlock()

	reqs := recv.requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	id := reqs[0].header.Get(HeaderID)
	if id == "" || id != del.ID {
		t.Errorf("webhook-id = %q, want the delivery id %q", id, del.ID)
	}
	for i, rq := range reqs {
		if got := rq.header.Get(HeaderID); got != id {
			t.Errorf("request %d: webhook-id %q differs from the first %q", i+1, got, id)
		}
		if err := Verify(key, rq.header, rq.body, time.Minute, time.Now()); err != nil {
			t.Errorf("request %d: %v", i+1, err)
		}
		if ct := rq.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
	}
	var p map[string]any
	if err := json.Unmarshal(reqs[2].body, &p); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"event", "job_id", "run_id", "status", "result", "error", "error_code", "completed_at", "duration_seconds"} {
		if _, ok := p[k]; !ok {
			t.Errorf("payload lacks %q: %s", k, reqs[2].body)
		}
	}
	if p["job_id"] != run.ID || p["run_id"] != run.ID || p["status"] != "succeeded" || p["error"] != nil {
		t.Errorf("payload = %s", reqs[2].body)
	}
	if res, _ := p["result"].(map[string]any); res["answer"] != float64(42) {
		t.Errorf("result = %v", p["result"])
	}
	if dur, _ := p["duration_seconds"].(float64); dur < 1.4 || dur > 1.6 {
		t.Errorf("duration_seconds = %v, want 1.5", p["duration_seconds"])
	}
	// A tampered body does not verify.
	if err := Verify(key, reqs[2].header, append(reqs[2].body, ' '), time.Minute, time.Now()); err == nil {
		t.Error("Verify accepted a modified body")
	}
}

func TestDeliverGivesUpAfterTheRetryWindow(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	recv := newReceiver(t, 1000)
	run := succeededRun(t, st, recv.URL)
	startDeliverer(t, Config{Store: st, RetryBase: 20 * time.Millisecond, RetryWindow: 30 * time.Millisecond})
	del := waitDelivery(t, st, run.ID)
	if del.State != store.DeliveryFailed {
		t.Fatalf("state = %s, want failed", del.State)
	}
	if n := len(del.Attempts); n < 1 || n > 3 {
		t.Fatalf("attempts = %d, want 1-3 within a 30ms window", n)
	}
	if got := len(recv.requests()); got != len(del.Attempts) {
		t.Errorf("receiver saw %d requests, store recorded %d attempts", got, len(del.Attempts))
	}
}

// A target that turned private after the submit check (DNS rebinding) is refused at
// connect time, and the delivery is given up at once: retrying cannot make it safe.
func TestDeliverRefusesAPrivateTargetAtConnect(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	recv := newReceiver(t, 0)
	run := succeededRun(t, st, recv.URL)
	startDeliverer(t, Config{Store: st, Guard: &Guard{}})
	del := waitDelivery(t, st, run.ID)
	if del.State != store.DeliveryFailed || len(del.Attempts) != 1 || del.Attempts[0].StatusCode != 0 {
		t.Fatalf("delivery = %+v, want one refused attempt and failed", del)
	}
	if got := len(recv.requests()); got != 0 {
		t.Fatalf("receiver got %d requests through the guard", got)
	}
}

func TestCancelledRunPayload(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	recv := newReceiver(t, 0)
	ctx := context.Background()
	run, _, err := st.RunInsert(ctx, &store.RunInsertParams{
		ID: ids.NewRun(), Recipe: "r", Agent: "r", Workspace: "default", Input: json.RawMessage(`null`),
		CreatedAt: time.Now().UTC(), WebhookURL: recv.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RunCancel(ctx, run.ID, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	startDeliverer(t, Config{Store: st})
	if del := waitDelivery(t, st, run.ID); del.State != store.DeliveryDelivered {
		t.Fatalf("state = %s", del.State)
	}
	var p Payload
	if err := json.Unmarshal(recv.requests()[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != spool.StateCancelled || p.Event != "cancelled" || p.CompletedAt == nil || p.DurationSeconds != nil {
		t.Fatalf("payload = %+v", p)
	}
	if string(p.Result) != "null" {
		t.Fatalf("result = %s, want null", p.Result)
	}
}

func TestBackoffDoublesUpToTheMaximum(t *testing.T) {
	t.Parallel()
	d := New(Config{RetryBase: 5 * time.Second, RetryMax: 10 * time.Minute})
	prev := time.Duration(0)
	for n := 1; n <= 12; n++ {
		b := d.backoff(n)
		nominal := min(5*time.Second<<(n-1), 10*time.Minute)
		if b < nominal*8/10 || b > nominal*12/10 {
			t.Errorf("backoff(%d) = %s, want %s ±20%%", n, b, nominal)
		}
		if n <= 7 && b < prev*8/10 {
			t.Errorf("backoff(%d) = %s shrank from %s", n, b, prev)
		}
		prev = b
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	d := New(Config{Store: st, Node: "n"})
	d.Stop() // before Start: no-op
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	d.Stop()
	d.Stop()
	if err := New(Config{}).Start(context.Background()); err == nil {
		t.Fatal("Start without a store succeeded")
	}
}
