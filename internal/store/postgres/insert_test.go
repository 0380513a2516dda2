package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
)

// The runs RunInsert and RunInsertMany return are built from the parameters, not read back:
// they must equal what RunGet reads, field for field, whatever the batch's shape.
func TestInsertedRunsEqualStoredRuns(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	zone := time.FixedZone("UTC+1", 3600)
	created := time.Date(2025, 3, 1, 13, 0, 0, 123456789, zone) // nanoseconds, not UTC
	future := created.Add(time.Hour + 999*time.Nanosecond)
	past := created.Add(-time.Hour)
	shapes := []func(p *store.RunInsertParams){
		func(p *store.RunInsertParams) {},
		func(p *store.RunInsertParams) {
			p.CreatedAt = created
			p.Metadata = map[string]any{"n": 1, "nested": map[string]any{"list": []any{1.5, "x", nil}}}
			p.WebhookURL, p.WebhookEvents = "https://example.com/h", []string{"completed", ""}
		},
		func(p *store.RunInsertParams) {
			p.CreatedAt = created
			p.RunAt = &future                          // scheduled
			p.ScheduleID, p.ScheduledFor = p.ID, &past // one run per schedule tick
			p.Input, p.Config = nil, json.RawMessage(`{"model": "m"}`)
		},
		func(p *store.RunInsertParams) {
			p.CreatedAt = time.Time{} // the store's clock
			p.RunAt = &past           // queued at once, run_at kept
			p.ScheduledFor = &time.Time{}
			p.WebhookEvents = []string{""}
			p.Priority, p.MaxRetries, p.TimeoutSec = spool.PriorityUrgent, 7, 30
			p.SessionID, p.Agent, p.Workspace, p.RetryOf = "sess", "agent-x", "team-a", "run_old"
		},
		func(p *store.RunInsertParams) {
			p.IdempotencyKey, p.IdempotencyScope = "key-1", spool.ScopeGlobal
			p.IdemKey = store.IdemKey(p.Workspace, p.SessionID, p.IdempotencyScope, p.IdempotencyKey)
		},
	}
	check := func(name string, got *spool.Run) {
		t.Helper()
		want, err := s.RunGet(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: inserted run differs from the stored one:\ninserted %+v\nstored   %+v", name, got, want)
		}
	}
	// One at a time: every column is a single value.
	for i, shape := range shapes {
		r, existed, err := s.RunInsert(ctx, params(fmt.Sprintf("run_one_%d", i), shape))
		if err != nil || existed {
			t.Fatalf("insert shape %d: existed %v, err %v", i, existed, err)
		}
		check(fmt.Sprintf("RunInsert shape %d", i), r)
	}
	// A batch mixing every shape: most columns are arrays. The run with key-1 exists.
	var ps []*store.RunInsertParams
	for i, shape := range shapes {
		ps = append(ps, params(fmt.Sprintf("run_mixed_%d", i), shape))
	}
	runs, err := s.RunInsertMany(ctx, ps)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range runs {
		check(fmt.Sprintf("RunInsertMany mixed run %d", i), r)
	}
	if runs[4].ID != "run_one_4" {
		t.Fatalf("the run with an existing idempotency key is %s, want run_one_4", runs[4].ID)
	}
	// A batch of one shape: only ids (and schedule ids) are arrays.
	for i, shape := range shapes[1:4] {
		ps = ps[:0]
		for j := range 3 {
			ps = append(ps, params(fmt.Sprintf("run_same_%d_%d", i, j), shape))
		}
		runs, err := s.RunInsertMany(ctx, ps)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range runs {
			check(fmt.Sprintf("RunInsertMany uniform shape %d run %d", i+1, j), r)
			if j > 0 && r.Seq <= runs[j-1].Seq {
				t.Fatalf("seq %d after %d: not in submit order", r.Seq, runs[j-1].Seq)
			}
		}
	}
	// A batch that repeats an id is refused whole.
	if _, err := s.RunInsertMany(ctx, []*store.RunInsertParams{params("run_dup"), params("run_dup")}); err == nil {
		t.Fatal("a batch repeating an id was accepted")
	}
	if _, err := s.RunGet(ctx, "run_dup"); err == nil {
		t.Fatal("a run of a refused batch was stored")
	}
}

// A submit that leaves its notification to a trailing one is followed by a notification
// sent after it committed, each time.
func TestSkippedSubmitNotificationIsSentAfterCommit(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s.HoldSubmitNotes()
		insert(t, s, params(fmt.Sprintf("run_%d", i)))
		waitFor(t, ch, store.TopicSubmit, "")
		if st, err := s.RunStats(ctx, ""); err != nil || st.Queued != int64(i+1) {
			t.Fatalf("after the notification: stats %+v, err %v; want %d queued", st, err, i+1)
		}
	}
	cancel()
	for range ch { // the channel closes when ctx ends
	}
}

// A submit sends its notification only when no other submit of the store did in the last
// moment; the others rely on a notification sent alone after they committed. A listener
// that looks only when notified must still see every run in the end.
func TestSubmitNotificationsFollowEveryCommit(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const submitters, each = 8, 25
	var (
		seen    atomic.Int64 // queued runs the listener saw, looking after a notification
		notes   atomic.Int64
		watched = make(chan struct{})
	)
	go func() {
		defer close(watched)
		for n := range ch {
			if n.Topic != store.TopicSubmit {
				continue
			}
			notes.Add(1)
			st, err := s.RunStats(context.Background(), "")
			if err != nil {
				t.Error(err)
				return
			}
			seen.Store(st.Queued)
		}
	}()
	var wg sync.WaitGroup
	for g := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, _, err := s.RunInsert(context.Background(), params(fmt.Sprintf("run_%d_%d", g, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for seen.Load() != submitters*each {
		if time.Now().After(deadline) {
			t.Fatalf("after %d submit notifications the listener saw %d of %d runs: a submit was not followed by a notification",
				notes.Load(), seen.Load(), submitters*each)
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("%d submits, %d submit notifications", submitters*each, notes.Load())
	cancel()
	<-watched
}

// Listing and counting by state reads queued runs and the others on different partial
// indexes; a list mixing them must count each run once.
func TestListCountsMixedStates(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	for i := range 5 {
		insert(t, s, params(fmt.Sprintf("run_%d", i), func(p *store.RunInsertParams) {
			p.CreatedAt = t0.Add(time.Duration(i) * time.Second)
			if i%2 == 1 {
				p.Workspace = "other"
			}
		}))
	}
	crs := claim(t, s, store.RunClaimParams{Max: 2}) // run_0 and run_1 start
	finish(t, s, crs[0], spool.StateSucceeded)
	if _, err := s.RunPause(ctx, "run_4", t0); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		p    spool.ListParams
		want []string
	}{
		{"all", spool.ListParams{}, []string{"run_4", "run_3", "run_2", "run_1", "run_0"}},
		{"queued and running", spool.ListParams{States: []spool.State{spool.StateQueued, spool.StateRunning, spool.StateQueued}},
			[]string{"run_3", "run_2", "run_1"}},
		{"queued and paused, one workspace", spool.ListParams{Workspace: "default", States: []spool.State{spool.StatePaused, spool.StateQueued}},
			[]string{"run_4", "run_2"}},
		{"not queued", spool.ListParams{States: []spool.State{spool.StateSucceeded, spool.StatePaused}}, []string{"run_4", "run_0"}},
		{"unknown state", spool.ListParams{States: []spool.State{"nope"}}, nil},
		{"unknown and queued", spool.ListParams{States: []spool.State{"nope", spool.StateQueued}}, []string{"run_3", "run_2"}},
	}
	for _, c := range cases {
		c.p.WithTotal = true
		runs, total, err := s.RunList(ctx, &c.p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var ids []string
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		if !reflect.DeepEqual(ids, c.want) || total != int64(len(c.want)) {
			t.Fatalf("%s: got %v (total %d), want %v", c.name, ids, total, c.want)
		}
	}
	st, err := s.RunStats(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 5 || st.Queued != 2 || st.Running != 1 || st.Succeeded != 1 || st.Paused != 1 || st.QueuedByPriority["normal"] != 2 {
		t.Fatalf("stats %+v", st)
	}
}
