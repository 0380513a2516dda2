package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spool-run/spool"
)

// stream is GET /api/v1/runs/{id}/stream: the run's events as Server-Sent Events. Each
// event is "id: SEQ", "event: TYPE" and one "data:" line of JSON; heartbeats carry no id.
// A client resumes with Last-Event-ID (or ?after=SEQ) and gets every later event exactly
// once. The stream ends after the run's terminal event.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	after := int64(0)
	raw, field := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if strings.TrimSpace(raw) == "" {
		raw, field = r.URL.Query().Get("after"), "after"
	}
	if raw = strings.TrimSpace(raw); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			s.writeProblem(w, r, spool.Invalid(field, "must be an event sequence number (0 or more)"))
			return
		}
		after = n
	}
	run, err := s.visibleRun(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.drainCtx, cancel)
	defer stop()
	sub, err := s.engine.Subscribe(ctx, run.ID, after)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	defer func() { sub.Close() }()

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives any server write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // keep reverse proxies from buffering the stream
	w.WriteHeader(http.StatusOK)

	bw := bufio.NewWriterSize(w, 4096)
	send := func() bool {
		return bw.Flush() == nil && rc.Flush() == nil
	}
	// Tell EventSource clients to reconnect quickly, and get the headers out now.
	_, _ = bw.WriteString("retry: 2000\n\n")
	if !send() {
		return
	}

	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	last := after
	emit := func(ev *spool.Event) bool {
		if err := writeEvent(bw, ev); err != nil {
			s.log.Error("encoding event", "run", run.ID, "seq", ev.Seq, "err", err)
			return false
		}
		last = ev.Seq
		return send()
	}
	resubscribes := 0
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				// The subscription ended without the terminal event. Finish from the store if
				// the run is over, else subscribe again from where the client is.
				sub.Close()
				if !s.finishStream(ctx, run.ID, last, emit) || resubscribes >= 3 {
					return
				}
				resubscribes++
				if sub, err = s.engine.Subscribe(ctx, run.ID, last); err != nil {
					return
				}
				continue
			}
			if ev.Seq <= last {
				continue
			}
			resubscribes = 0
			if !emit(ev) || ev.Type.IsTerminal() {
				return
			}
		case <-heartbeat.C:
			hb := &spool.Event{RunID: run.ID, Seq: last, Type: spool.EventHeartbeat, Time: s.now().UTC()}
			data, _ := json.Marshal(hb)
			_, _ = bw.WriteString("event: heartbeat\ndata: ")
			_, _ = bw.Write(data)
			_, _ = bw.WriteString("\n\n")
			if !send() {
				return
			}
		}
	}
}

// finishStream sends the stored events after last of a run that has ended, and reports
// whether the run is still active (so the stream should go on).
func (s *Server) finishStream(ctx context.Context, id string, last int64, emit func(*spool.Event) bool) (active bool) {
	run, err := s.engine.Get(ctx, id)
	if err != nil {
		return false
	}
	if !run.State.IsTerminal() {
		return true
	}
	evs, err := s.engine.Events(context.WithoutCancel(ctx), id, last, 0)
	if err != nil {
		return false
	}
	for _, ev := range evs {
		if !emit(ev) || ev.Type.IsTerminal() {
			return false
		}
	}
	return false
}

// writeEvent writes one stored event in SSE framing.
func writeEvent(bw *bufio.Writer, ev *spool.Event) error {
	data, err := json.Marshal(newEventView(ev))
	if err != nil {
		return err
	}
	_, _ = bw.WriteString("id: ")
	_, _ = bw.WriteString(strconv.FormatInt(ev.Seq, 10))
	_, _ = bw.WriteString("\nevent: ")
	_, _ = bw.WriteString(string(ev.Type))
	_, _ = bw.WriteString("\ndata: ")
	_, _ = bw.Write(data)
	_, err = bw.WriteString("\n\n")
	return err
}
