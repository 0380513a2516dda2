package spool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Job is a handle on one run of a [Client]'s server. It is safe for concurrent use.
type Job struct {
	// ID is the run's id.
	ID string
	// Run is the run as the server answered when the handle was made by [Client.Submit],
	// [Client.SubmitMany] or [Client.Retry]; nil for [Client.Job]. It is not updated:
	// call [Job.Status] for the current state.
	Run *Run
	// Existing reports that the submit's idempotency key matched a run that already
	// existed, so no new run was created.
	Existing bool

	c *Client
}

// Status returns the run's current state.
func (j *Job) Status(ctx context.Context) (*Run, error) { return j.c.Get(ctx, j.ID) }

// Result returns the run's outcome once it has finished; while it is active the error
// matches [ErrConflict]. Use [Job.Wait] to wait for the end first.
func (j *Job) Result(ctx context.Context) (*RunResult, error) { return j.c.Result(ctx, j.ID) }

// Cancel cancels the run. Cancelling a run that has already finished has no effect and
// returns nil. A running run ends cancelled shortly after Cancel returns; Wait for it if
// that matters.
func (j *Job) Cancel(ctx context.Context) error {
	_, err := j.c.Cancel(ctx, j.ID)
	return err
}

// Wait blocks until the run has finished and returns it in its terminal state
// (succeeded, failed or cancelled: check Run.State). It long-polls the server, so a
// finished run is noticed at once. When ctx ends or the [WaitTimeout] passes first, Wait
// returns the run as last seen (nil if never seen) and an error wrapping
// context.DeadlineExceeded or context.Canceled.
func (j *Job) Wait(ctx context.Context, opts ...WaitOption) (*Run, error) {
	return j.c.Wait(ctx, j.ID, opts...)
}

// Events streams the run's events from its first, live while it runs, and ends after its
// terminal event (result, error or cancelled). A dropped connection is resumed with
// Last-Event-ID, so no event is repeated or skipped. A non-nil error ends the sequence.
//
//	for ev, err := range job.Events(ctx) {
//		if err != nil { ... }
//		if ev.Type == spool.EventOutput { fmt.Print(ev.Text) }
//	}
func (j *Job) Events(ctx context.Context) iter.Seq2[*Event, error] {
	return j.c.Stream(ctx, j.ID, 0)
}

// WaitOption configures [Job.Wait] and [Client.Wait].
type WaitOption func(*waitConfig)

type waitConfig struct {
	timeout time.Duration
	poll    time.Duration
	onPoll  func(*Run)
}

// WaitTimeout bounds the whole wait; 0 (the default) waits as long as ctx allows.
func WaitTimeout(d time.Duration) WaitOption {
	return func(c *waitConfig) { c.timeout = d }
}

// WaitPollTimeout sets how long one long-poll request may be held open by the server
// (default 30 seconds, at most 300).
func WaitPollTimeout(d time.Duration) WaitOption {
	return func(c *waitConfig) { c.poll = d }
}

// WaitOnPoll calls f with the run after every long-poll that found it still active.
func WaitOnPoll(f func(*Run)) WaitOption {
	return func(c *waitConfig) { c.onPoll = f }
}

// Wait is [Job.Wait] for run id.
func (c *Client) Wait(ctx context.Context, id string, opts ...WaitOption) (*Run, error) {
	cfg := waitConfig{poll: 30 * time.Second}
	for _, opt := range opts {
		opt(&cfg)
	}
	cfg.poll = min(max(cfg.poll, time.Second), 300*time.Second)
	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
	}
	var last *Run
	quick := 0
	for {
		window := cfg.poll
		if dl, ok := ctx.Deadline(); ok {
			window = min(window, time.Until(dl))
		}
		secs := max(int((window+time.Second-1)/time.Second), 1)
		q := url.Values{"timeout": {strconv.Itoa(secs)}}
		start := time.Now()
		var run Run
		_, err := c.do(ctx, request{method: http.MethodGet, path: runPath(id, "/wait"), query: q,
			timeout: time.Duration(secs)*time.Second + 30*time.Second}, &run)
		if err != nil {
			if ctx.Err() != nil {
				return last, fmt.Errorf("spool: wait for %s: %w", id, ctx.Err())
			}
			return last, err
		}
		if run.State.IsTerminal() {
			return &run, nil
		}
		last = &run
		if cfg.onPoll != nil {
			cfg.onPoll(&run)
		}
		// A server that answers long-polls early (an older one, or a proxy) must not turn
		// this loop into a busy one.
		if time.Since(start) < time.Duration(secs)*time.Second/2 {
			quick++
			if err := sleepCtx(ctx, min(time.Duration(quick)*200*time.Millisecond, 2*time.Second)); err != nil {
				return last, fmt.Errorf("spool: wait for %s: %w", id, err)
			}
		} else {
			quick = 0
		}
	}
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stream reconnection policy: attempts without a new event before giving up, and the
// pause between attempts.
const (
	streamMaxFailures = 6
	streamBackoffMin  = 100 * time.Millisecond
	streamBackoffMax  = 3 * time.Second
)

// Stream streams the events of run id with a sequence number above afterSeq over
// Server-Sent Events, as [Job.Events] does from 0.
func (c *Client) Stream(ctx context.Context, id string, afterSeq int64) iter.Seq2[*Event, error] {
	return func(yield func(*Event, error) bool) {
		s := &eventStream{c: c, id: id, last: afterSeq, yield: yield}
		s.run(ctx)
	}
}

// eventStream is the state of one Stream: the last sequence number delivered, so that a
// reconnect neither repeats nor skips an event.
type eventStream struct {
	c     *Client
	id    string
	last  int64
	yield func(*Event, error) bool
	done  bool // the consumer stopped, or the terminal event was delivered
	// connected is set once the server has answered a stream request.
	connected bool
}

// emit delivers ev unless it was delivered before. It returns false when the stream is over.
func (s *eventStream) emit(ev *Event) bool {
	if ev.Seq <= s.last {
		return true
	}
	s.last = ev.Seq
	if !s.yield(ev, nil) || ev.Type.IsTerminal() {
		s.done = true
		return false
	}
	return true
}

// fail delivers a final error.
func (s *eventStream) fail(err error) {
	s.done = true
	s.yield(nil, err)
}

func (s *eventStream) run(ctx context.Context) {
	failures := 0
	for !s.done {
		before := s.last
		err := s.connect(ctx)
		if s.done {
			return
		}
		if ctx.Err() != nil {
			s.fail(fmt.Errorf("spool: stream %s: %w", s.id, ctx.Err()))
			return
		}
		var ce *ConnectionError
		if err != nil && (!errors.As(err, &ce) || !s.connected) {
			s.fail(err) // the server refused (not found, unauthorized, ...) or was never reached
			return
		}
		if s.last > before {
			failures = 0
		} else {
			failures++
		}
		// The stream ended without its terminal event. If the run has finished meanwhile,
		// its remaining events are in the store.
		if err == nil || failures > 1 {
			if finished := s.catchUpIfFinished(ctx); finished || s.done {
				return
			}
		}
		if failures >= streamMaxFailures {
			if err == nil {
				err = &ConnectionError{URL: s.c.base, Err: errors.New("event stream keeps closing without new events")}
			}
			s.fail(err)
			return
		}
		backoff := min(streamBackoffMin<<max(failures-1, 0), streamBackoffMax)
		if err := sleepCtx(ctx, backoff); err != nil {
			s.fail(fmt.Errorf("spool: stream %s: %w", s.id, err))
			return
		}
	}
}

// catchUpIfFinished checks whether the run has finished; if so it delivers the stored
// events not delivered yet and reports true.
func (s *eventStream) catchUpIfFinished(ctx context.Context) bool {
	run, err := s.c.Get(ctx, s.id)
	if err != nil || !run.State.IsTerminal() {
		var e *Error
		if errors.As(err, &e) {
			s.fail(err)
			return true
		}
		return false
	}
	if err := s.fillFromStore(ctx, 0); err != nil {
		s.fail(err)
	}
	return true
}

// fillFromStore delivers stored events after s.last and, when below > 0, before below.
func (s *eventStream) fillFromStore(ctx context.Context, below int64) error {
	for !s.done {
		evs, err := s.c.Events(ctx, s.id, s.last)
		if err != nil {
			return err
		}
		progressed := false
		for _, ev := range evs {
			if below > 0 && ev.Seq >= below {
				return nil
			}
			if ev.Seq > s.last {
				progressed = true
				if !s.emit(ev) {
					return nil
				}
			}
		}
		if !progressed {
			return nil
		}
	}
	return nil
}

// connect opens the SSE stream after s.last and delivers its events. It returns nil when
// the server closed the stream, or the error that broke it.
func (s *eventStream) connect(ctx context.Context) error {
	h := http.Header{"Accept": {"text/event-stream"}}
	if s.last > 0 {
		h.Set("Last-Event-ID", strconv.FormatInt(s.last, 10))
	}
	resp, cancel, err := s.c.send(ctx, request{method: http.MethodGet, path: runPath(s.id, "/stream"), header: h, timeout: -1})
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	s.connected = true

	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var (
		idField string
		event   string
		data    bytes.Buffer
	)
	for {
		line, err := readLine(r)
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return s.c.transportError(ctx, err)
		}
		switch {
		case len(line) == 0: // dispatch
			if data.Len() > 0 && event != string(EventHeartbeat) {
				if derr := s.dispatch(ctx, idField, event, data.Bytes()); derr != nil {
					s.fail(derr)
					return nil
				}
				if s.done {
					return nil
				}
			}
			idField, event = "", ""
			data.Reset()
		case line[0] == ':': // comment
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "id":
				idField = string(value)
			case "event":
				event = string(value)
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.Write(value)
			}
		}
	}
}

// dispatch decodes one SSE event and delivers it, first filling any gap in the sequence
// from the store.
func (s *eventStream) dispatch(ctx context.Context, idField, event string, data []byte) error {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return fmt.Errorf("spool: stream %s: decode event %q: %w", s.id, idField, err)
	}
	ev.fixProgress(data)
	if ev.Type == "" {
		ev.Type = EventType(event)
	}
	if ev.Seq == 0 && idField != "" {
		ev.Seq, _ = strconv.ParseInt(idField, 10, 64)
	}
	if ev.Type == EventHeartbeat || ev.Seq == 0 {
		return nil
	}
	if ev.Seq > s.last+1 {
		if err := s.fillFromStore(ctx, ev.Seq); err != nil {
			return err
		}
		if s.done {
			return nil
		}
	}
	s.emit(&ev)
	return nil
}

// readLine reads one line without its line ending (LF, CRLF or CR before LF).
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			if len(line) > 64<<20 {
				return nil, errors.New("event stream line longer than 64 MiB")
			}
			continue
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		return line, nil
	}
}

// fixProgress fills ev.Progress for a progress event whose fields are at the top level of
// its JSON (as the SSE stream writes them) rather than under "progress".
func (ev *Event) fixProgress(data []byte) {
	if ev.Type != EventProgress || ev.Progress != nil || data == nil {
		return
	}
	var p Progress
	if err := json.Unmarshal(data, &p); err == nil {
		ev.Progress = &p
	}
}
