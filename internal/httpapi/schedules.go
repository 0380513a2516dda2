package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// schedulePrefix is the path of the schedules collection.
const schedulePrefix = "/api/v1/schedules"

// scheduleFields are the members of a schedule create body.
var scheduleFields = map[string]bool{
	"name": true, "recipe_name": true, "cron": true, "every": true, "timezone": true,
	"catchup": true, "overlap": true, "paused": true, "input": true, "config": true,
	"metadata": true, "priority": true, "agent": true, "workspace": true, "timeout": true,
	"max_retries": true,
}

// decodeSchedule parses a schedule create body strictly: unknown members and wrong types
// name their field.
func decodeSchedule(body []byte) (*queue.ScheduleRequest, error) {
	m, err := decodeObject(body, false)
	if err != nil {
		return nil, err
	}
	fe := &fieldErrors{}
	req := &queue.ScheduleRequest{}
	for _, k := range sortedKeys(m) {
		raw := m[k]
		if !scheduleFields[k] {
			fe.add(k, "unknown field")
			continue
		}
		if isNull(raw) {
			continue
		}
		switch k {
		case "name":
			req.Name, _ = fe.str(k, raw)
		case "recipe_name":
			req.Recipe, _ = fe.str(k, raw)
		case "cron":
			req.Cron, _ = fe.str(k, raw)
		case "every":
			req.Every, _ = fe.str(k, raw)
		case "timezone":
			req.Timezone, _ = fe.str(k, raw)
		case "catchup":
			req.Catchup, _ = fe.str(k, raw)
		case "overlap":
			req.Overlap, _ = fe.str(k, raw)
		case "agent":
			req.Agent, _ = fe.str(k, raw)
		case "workspace":
			req.Workspace, _ = fe.str(k, raw)
		case "paused":
			req.Paused, _ = fe.boolean(k, raw)
		case "input":
			req.Input = raw
		case "config":
			if _, ok := fe.object(k, raw); ok {
				req.Config = raw
			}
		case "metadata":
			if _, ok := fe.object(k, raw); ok {
				if err := json.Unmarshal(raw, &req.Metadata); err != nil {
					fe.add(k, "must be a JSON object")
				}
			}
		case "priority":
			var p spool.Priority
			if err := json.Unmarshal(raw, &p); err != nil {
				fe.add(k, "must be one of urgent, high, normal, low")
			} else {
				req.Priority = &p
			}
		case "timeout":
			req.TimeoutSec, _ = fe.integer(k, raw)
		case "max_retries":
			if n, ok := fe.integer(k, raw); ok {
				req.MaxRetries = &n
			}
		}
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return req, nil
}

// schedulesBody is the answer of GET /api/v1/schedules.
type schedulesBody struct {
	Schedules []*queue.Schedule `json:"schedules"`
}

// createSchedule is POST /api/v1/schedules.
func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, s.maxBody)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	req, err := decodeSchedule(body)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if req.Workspace, err = scopeWorkspace(r, req.Workspace, "workspace"); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	sc, err := s.engine.CreateSchedule(r.Context(), req)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Location", schedulePrefix+"/"+sc.ID)
	writeJSON(w, http.StatusCreated, sc)
}

// listSchedules is GET /api/v1/schedules[?workspace=W].
func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	ws, err := scopeWorkspace(r, r.URL.Query().Get("workspace"), "workspace")
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	list, err := s.engine.Schedules(r.Context(), ws)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if list == nil {
		list = []*queue.Schedule{}
	}
	writeJSON(w, http.StatusOK, schedulesBody{Schedules: list})
}

// scheduleWorkspace is where {id} is looked up: the token's workspace, else ?workspace=
// (for names; ids are found in any workspace).
func scheduleWorkspace(r *http.Request) (string, error) {
	return scopeWorkspace(r, r.URL.Query().Get("workspace"), "workspace")
}

// getSchedule is GET /api/v1/schedules/{id}; {id} is a schedule id or name.
func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	s.withSchedule(w, r, s.engine.Schedule)
}

// pauseSchedule is POST /api/v1/schedules/{id}/pause.
func (s *Server) pauseSchedule(w http.ResponseWriter, r *http.Request) {
	s.withSchedule(w, r, s.engine.PauseSchedule)
}

// resumeSchedule is POST /api/v1/schedules/{id}/resume.
func (s *Server) resumeSchedule(w http.ResponseWriter, r *http.Request) {
	s.withSchedule(w, r, s.engine.ResumeSchedule)
}

func (s *Server) withSchedule(w http.ResponseWriter, r *http.Request,
	act func(ctx context.Context, workspace, id string) (*queue.Schedule, error)) {
	ws, err := scheduleWorkspace(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	sc, err := act(r.Context(), ws, r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sc)
}

// deleteSchedule is DELETE /api/v1/schedules/{id}.
func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	ws, err := scheduleWorkspace(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if err := s.engine.DeleteSchedule(r.Context(), ws, r.PathValue("id")); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// triggerSchedule is POST /api/v1/schedules/{id}/trigger: a run of the schedule now.
func (s *Server) triggerSchedule(w http.ResponseWriter, r *http.Request) {
	ws, err := scheduleWorkspace(r)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	run, err := s.engine.TriggerSchedule(r.Context(), ws, r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Location", runPrefix+"/"+run.ID)
	writeJSON(w, http.StatusAccepted, newRunView(run, s.now()))
}
