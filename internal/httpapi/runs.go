package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/store"
	"github.com/spool-run/spool/queue"
)

// submit is POST /api/v1/runs.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, s.maxBody)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	req, err := decodeSubmit(body)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if key := strings.TrimSpace(r.Header.Get("Idempotency-Key")); key != "" {
		req.IdempotencyKey = key
	}
	if req.Workspace, err = scopeWorkspace(r, req.Workspace, "workspace"); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	run, existed, err := s.engine.Submit(r.Context(), req)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Location", runPrefix+"/"+run.ID)
	w.Header().Set("Retry-After", "1")
	status := http.StatusAccepted
	if existed {
		status = http.StatusOK
	}
	writeJSON(w, status, newRunView(run, s.now()))
}

// submitBatch is POST /api/v1/runs/batch.
func (s *Server) submitBatch(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, s.maxBody)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	reqs, err := decodeBatch(body)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	for i, req := range reqs {
		if req.Workspace, err = scopeWorkspace(r, req.Workspace, "runs["+strconv.Itoa(i)+"].workspace"); err != nil {
			s.writeProblem(w, r, err)
			return
		}
	}
	runs, err := s.engine.SubmitMany(r.Context(), reqs)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusAccepted, map[string]any{"jobs": runViews(runs, s.now())})
}

// list is GET /api/v1/runs.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := spool.ListParams{
		Recipe:    q.Get("recipe_name"),
		Agent:     q.Get("agent"),
		SessionID: q.Get("session_id"),
		After:     q.Get("after"),
		WithTotal: true,
	}
	if p.Recipe == "" {
		p.Recipe = q.Get("recipe")
	}
	fe := &fieldErrors{}
	for _, v := range q["status"] {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			st, err := spool.ParseState(part)
			if err != nil {
				fe.add("status", err.Error())
				continue
			}
			p.States = append(p.States, st)
		}
	}
	p.Page = queryInt(fe, q.Get("page"), "page", 1, 1<<30)
	p.PageSize = queryInt(fe, q.Get("page_size"), "page_size", 20, 1000)
	if err := fe.err(); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var err error
	if p.Workspace, err = scopeWorkspace(r, q.Get("workspace"), "workspace"); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	list, err := s.engine.List(r.Context(), p)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"jobs": runViews(list.Runs, s.now()), "total": list.Total, "page": list.Page, "page_size": list.PageSize,
	})
}

// queryInt parses an optional integer query value within [lo, hi].
func queryInt(fe *fieldErrors, v, field string, def, hi int) int {
	if v = strings.TrimSpace(v); v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > hi {
		fe.add(field, "must be a whole number from 1 to "+strconv.Itoa(hi))
		return def
	}
	return n
}

// visibleRun returns the run named by the path, or not_found when it does not exist or
// belongs to a workspace the caller's token cannot see.
func (s *Server) visibleRun(r *http.Request) (*spool.Run, error) {
	id := r.PathValue("id")
	run, err := s.engine.Get(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if ws := principalFrom(r.Context()).workspace; ws != "" && run.Workspace != ws {
		return nil, notFound(id)
	}
	return run, nil
}

func notFound(id string) error {
	return spool.Errorf(spool.CodeNotFound, "run %s not found", id)
}

// withRun answers with the visible run after act changed it.
func (s *Server) withRun(w http.ResponseWriter, r *http.Request, status int,
	act func(ctx context.Context, id string) (*spool.Run, error)) {
	if _, err := s.visibleRun(r); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	run, err := act(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if status == http.StatusAccepted {
		w.Header().Set("Location", runPrefix+"/"+run.ID)
	}
	writeJSON(w, status, newRunView(run, s.now()))
}

// get is GET /api/v1/runs/{id}.
func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	run, err := s.visibleRun(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if !run.State.IsTerminal() {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, newRunView(run, s.now()))
}

// cancel is POST /api/v1/runs/{id}/cancel.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	s.withRun(w, r, http.StatusOK, s.engine.Cancel)
}

// retry is POST /api/v1/runs/{id}/retry.
func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	s.withRun(w, r, http.StatusAccepted, s.engine.Retry)
}

// pause is POST /api/v1/runs/{id}/pause.
func (s *Server) pause(w http.ResponseWriter, r *http.Request) {
	s.withRun(w, r, http.StatusOK, s.engine.Pause)
}

// resume is POST /api/v1/runs/{id}/resume.
func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	s.withRun(w, r, http.StatusOK, s.engine.Resume)
}

// delete is DELETE /api/v1/runs/{id}.
func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	if _, err := s.visibleRun(r); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if err := s.engine.Delete(r.Context(), r.PathValue("id")); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// result is GET /api/v1/runs/{id}/result.
func (s *Server) result(w http.ResponseWriter, r *http.Request) {
	run, err := s.visibleRun(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if !run.State.IsTerminal() {
		w.Header().Set("Retry-After", "1")
		s.writeProblem(w, r, &spool.Error{Code: spool.CodeConflict, State: run.State,
			Message: "run " + run.ID + " is not finished; current status: " + string(run.State)})
		return
	}
	writeJSON(w, http.StatusOK, newResultView(run, s.now()))
}

// wait is GET /api/v1/runs/{id}/wait?timeout=S: it answers when the run is terminal or
// the timeout passes, with the run either way.
func (s *Server) wait(w http.ResponseWriter, r *http.Request) {
	timeout := DefaultWait
	if v := strings.TrimSpace(r.URL.Query().Get("timeout")); v != "" {
		d, err := parseSeconds(v)
		if err != nil || d < 0 {
			s.writeProblem(w, r, spool.Invalid("timeout", `must be a number of seconds (or a duration such as "30s"), at most 300`))
			return
		}
		timeout = min(d, MaxWait)
	}
	run, err := s.visibleRun(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if !run.State.IsTerminal() && timeout > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		stop := context.AfterFunc(s.drainCtx, cancel)
		waited, err := s.engine.Wait(ctx, run.ID)
		stop()
		cancel()
		switch {
		case err == nil:
			run = waited
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			if r.Context().Err() != nil {
				return
			}
			if run, err = s.engine.Get(r.Context(), run.ID); err != nil {
				s.writeProblem(w, r, err)
				return
			}
		default:
			s.writeProblem(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, newRunView(run, s.now()))
}

// parseSeconds reads "30", "1.5" or a Go duration such as "30s".
func parseSeconds(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f > MaxWait.Seconds()*10 {
			f = MaxWait.Seconds() * 10
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

// events is GET /api/v1/runs/{id}/events?after=SEQ&limit=N.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fe := &fieldErrors{}
	after := int64(0)
	if v := strings.TrimSpace(q.Get("after")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			fe.add("after", "must be an event sequence number (0 or more)")
		}
		after = n
	}
	limit := 0
	if v := strings.TrimSpace(q.Get("limit")); v != "" {
		limit = queryInt(fe, v, "limit", 0, 10000)
	}
	if err := fe.err(); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	run, err := s.visibleRun(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	// Events flushes the run's pending events to the store first; a client that hangs up
	// must not cancel that write.
	evs, err := s.engine.Events(context.WithoutCancel(r.Context()), run.ID, after, limit)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	views := make([]*eventView, len(evs))
	for i, ev := range evs {
		views[i] = newEventView(ev)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": views})
}

// webhooks is GET /api/v1/runs/{id}/webhooks.
func (s *Server) webhooks(w http.ResponseWriter, r *http.Request) {
	run, err := s.visibleRun(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	ds, err := s.engine.Webhooks(r.Context(), run.ID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	for _, d := range ds {
		if d.Attempts == nil {
			d.Attempts = []store.DeliveryAttempt{}
		}
	}
	if ds == nil {
		ds = []*store.Delivery{}
	}
	writeJSON(w, http.StatusOK, ds)
}

// clear is POST /api/v1/runs/clear.
func (s *Server) clear(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, s.maxBody)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	cb, err := decodeClear(body)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	ws, err := scopeWorkspace(r, cb.Workspace, "workspace")
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	n, err := s.engine.Clear(r.Context(), spool.ClearParams{All: cb.All, OlderThan: cb.OlderThan, Workspace: ws})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"deleted": n})
}

// stats is GET /api/v1/stats[?workspace=W].
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	ws, err := scopeWorkspace(r, r.URL.Query().Get("workspace"), "workspace")
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	st, err := s.engine.Stats(r.Context(), ws)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if st.QueuedByPriority == nil {
		st.QueuedByPriority = map[string]int64{}
	}
	out := statsView{Stats: st}
	if ws == "" {
		// Rate-limit buckets are cluster-wide: they are shown to callers that see everything.
		if out.TimeStats, err = s.engine.TimeStats(r.Context()); err != nil {
			s.writeProblem(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// statsView is the answer of GET /api/v1/stats: the run statistics and, without a
// workspace filter, the runs waiting on rate limits and provider back-off.
type statsView struct {
	*spool.Stats
	*queue.TimeStats
}

// nodes is GET /api/v1/nodes.
func (s *Server) nodes(w http.ResponseWriter, r *http.Request) {
	ns, err := s.engine.Nodes(r.Context())
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if ns == nil {
		ns = []*store.Node{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": ns})
}
