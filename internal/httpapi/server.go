// Package httpapi serves Spool's HTTP API: the runs, recipes, stats and nodes endpoints
// under /api/v1 (JSON, RFC 9457 problem documents for errors), Server-Sent Events streams,
// token authentication, and /healthz, /readyz, /metrics and /openapi.json.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxBody   = 4 << 20
	DefaultHeartbeat = 15 * time.Second
	DefaultWait      = 30 * time.Second
	MaxWait          = 300 * time.Second
)

// Config configures a [Server].
type Config struct {
	// Engine is the queue the API serves (required).
	Engine *queue.Engine
	// Recipes lists and reloads recipe files; nil serves only the engine's recipe names.
	Recipes Catalog
	// Tokens are the accepted API tokens; nil or empty leaves the API open.
	Tokens *Tokens
	// MaxBody caps request bodies in bytes (default 4 MiB; larger bodies get 413).
	MaxBody int64
	// Heartbeat is the interval of SSE heartbeat events (default 15s).
	Heartbeat time.Duration
	// Metrics serves /metrics; nil answers 404 there.
	Metrics http.Handler
	// UI serves the dashboard at / and at other GET paths outside /api (see [PlaceholderUI]);
	// nil serves nothing there.
	UI http.Handler
	// Logger receives request errors (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server is the API's http.Handler.
type Server struct {
	engine    *queue.Engine
	recipes   Catalog
	tokens    *Tokens
	maxBody   int64
	heartbeat time.Duration
	metrics   http.Handler
	ui        http.Handler
	log       *slog.Logger
	now       func() time.Time

	mux     *http.ServeMux
	handler http.Handler

	// drainCtx ends when Drain is called: streams and long-polls watch it.
	drainCtx    context.Context
	drainCancel context.CancelFunc
}

// New returns the API server for cfg.
func New(cfg Config) *Server {
	s := &Server{
		engine:    cfg.Engine,
		recipes:   cfg.Recipes,
		tokens:    cfg.Tokens,
		maxBody:   cfg.MaxBody,
		heartbeat: cfg.Heartbeat,
		metrics:   cfg.Metrics,
		ui:        cfg.UI,
		log:       cfg.Logger,
		now:       cfg.Now,
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.recipes == nil {
		s.recipes = engineCatalog{s.engine}
	}
	s.drainCtx, s.drainCancel = context.WithCancel(context.Background())
	s.mux = http.NewServeMux()
	for _, rt := range s.routes() {
		h := rt.handler
		if strings.HasPrefix(rt.path, "/api/") {
			h = s.authenticate(h)
		}
		s.mux.Handle(rt.method+" "+rt.path, h)
	}
	apiFallback := s.authenticate(http.HandlerFunc(s.fallback))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			apiFallback.ServeHTTP(w, r) // unknown API paths are not revealed without a token
			return
		}
		s.fallback(w, r)
	})
	s.handler = recoverPanics(s.log, s.mux)
	return s
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Drain ends open streams and long-polls and makes /readyz answer 503, so a graceful
// shutdown is not held up by clients that never hang up. Call it before http.Server.Shutdown.
func (s *Server) Drain() { s.drainCancel() }

// route is one endpoint: the mux pattern and its handler. routes() is the single list the
// mux and the OpenAPI test both read.
type route struct {
	method, path string
	handler      http.Handler
}

func (s *Server) routes() []route {
	h := func(method, path string, f http.HandlerFunc) route { return route{method, path, f} }
	return []route{
		h("POST", "/api/v1/runs", s.submit),
		h("GET", "/api/v1/runs", s.list),
		h("POST", "/api/v1/runs/batch", s.submitBatch),
		h("POST", "/api/v1/runs/clear", s.clear),
		h("GET", "/api/v1/runs/{id}", s.get),
		h("DELETE", "/api/v1/runs/{id}", s.delete),
		h("GET", "/api/v1/runs/{id}/result", s.result),
		h("GET", "/api/v1/runs/{id}/wait", s.wait),
		h("GET", "/api/v1/runs/{id}/events", s.events),
		h("GET", "/api/v1/runs/{id}/stream", s.stream),
		h("GET", "/api/v1/runs/{id}/webhooks", s.webhooks),
		h("POST", "/api/v1/runs/{id}/cancel", s.cancel),
		h("POST", "/api/v1/runs/{id}/retry", s.retry),
		h("POST", "/api/v1/runs/{id}/pause", s.pause),
		h("POST", "/api/v1/runs/{id}/resume", s.resume),
		h("GET", "/api/v1/stats", s.stats),
		h("GET", "/api/v1/recipes", s.listRecipes),
		h("GET", "/api/v1/recipes/{name}", s.getRecipe),
		h("POST", "/api/v1/recipes/reload", s.reloadRecipes),
		h("GET", "/api/v1/nodes", s.nodes),
		h("POST", "/api/v1/schedules", s.createSchedule),
		h("GET", "/api/v1/schedules", s.listSchedules),
		h("GET", "/api/v1/schedules/{id}", s.getSchedule),
		h("DELETE", "/api/v1/schedules/{id}", s.deleteSchedule),
		h("POST", "/api/v1/schedules/{id}/pause", s.pauseSchedule),
		h("POST", "/api/v1/schedules/{id}/resume", s.resumeSchedule),
		h("POST", "/api/v1/schedules/{id}/trigger", s.triggerSchedule),
		h("GET", "/healthz", s.healthz),
		h("GET", "/readyz", s.readyz),
		h("GET", "/metrics", s.serveMetrics),
		h("GET", "/openapi.json", s.openapi),
		h("GET", "/{$}", s.index),
	}
}

// probeMethods are the methods tried to tell a wrong method (405) from an unknown path (404).
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// fallback answers requests no route matched: 405 with Allow when the path exists for
// other methods, else 404, both as problem documents.
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	if s.ui != nil && !strings.HasPrefix(r.URL.Path, "/api/") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		s.ui.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range probeMethods {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		if contains(allow, http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		WriteProblem(w, ProblemFor(spool.Errorf(spool.CodeMethodNotAllow,
			"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", "))))
		return
	}
	WriteProblem(w, ProblemFor(spool.Errorf(spool.CodeNotFound, "no endpoint at %s", r.URL.Path)))
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// recoverPanics turns a handler panic into a 500 problem instead of a dropped connection.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				WriteProblem(w, ProblemFor(spool.Errorf(spool.CodeInternal, "internal error; see the server log")))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	select {
	case <-s.drainCtx.Done():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
		return
	default:
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.engine.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("database not ready: " + err.Error() + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		WriteProblem(w, ProblemFor(spool.Errorf(spool.CodeNotFound, "metrics are not enabled")))
		return
	}
	s.metrics.ServeHTTP(w, r)
}

const placeholderPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Spool</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto">
<h1>Spool</h1>
<p>The job server is running. The API is under <a href="/api/v1/runs">/api/v1</a>;
its description is at <a href="/openapi.json">/openapi.json</a>.</p>
</body></html>
`

// PlaceholderUI is served at / until the dashboard exists.
var PlaceholderUI http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		WriteProblem(w, ProblemFor(spool.Errorf(spool.CodeNotFound, "no page at %s", r.URL.Path)))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(placeholderPage))
})

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	if s.ui == nil {
		s.fallback(w, r)
		return
	}
	s.ui.ServeHTTP(w, r)
}
