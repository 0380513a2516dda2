// Package server wires Spool's pieces into the `spool server` and `spool worker` processes:
// the engine, the recipe directory, the HTTP API, webhook delivery and metrics, with their
// configuration (flags, environment, config file) and a graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/httpapi"
	"github.com/spool-run/spool/internal/metrics"
	"github.com/spool-run/spool/internal/recipe"
	"github.com/spool-run/spool/internal/ui"
	"github.com/spool-run/spool/internal/webhook"
	"github.com/spool-run/spool/queue"
)

// Server is a running Spool node: an engine, webhook delivery and (for `spool server`) the
// HTTP API. Start it with [Start]; stop it with [Server.Shutdown].
type Server struct {
	cfg      Config
	log      *slog.Logger
	engine   *queue.Engine
	recipes  *recipeCatalog
	deliver  *webhook.Deliverer
	metrics  *metrics.Metrics
	api      *httpapi.Server
	http     *http.Server
	listener net.Listener

	serveErr chan error
	stopOnce sync.Once
	stopErr  error
}

// Start opens the database, loads the recipes, starts the engine and webhook delivery and,
// when listen is true, the HTTP API. It returns once everything accepts work.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	return start(ctx, cfg, true)
}

// StartWorker is Start without the HTTP API (`spool worker`).
func StartWorker(ctx context.Context, cfg Config) (*Server, error) {
	return start(ctx, cfg, false)
}

// Run starts a server and serves until ctx ends, then shuts it down gracefully.
func Run(ctx context.Context, cfg Config) error {
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-s.serveErr:
		_ = s.Shutdown(context.WithoutCancel(ctx))
		return err
	}
	return s.Shutdown(context.WithoutCancel(ctx))
}

func start(ctx context.Context, cfg Config, listen bool) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		var err error
		if log, err = newLogger(cfg.LogFormat, os.Stderr); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, log: log, serveErr: make(chan error, 1)}

	var tokens *httpapi.Tokens
	if listen {
		var err error
		if tokens, err = loadTokens(cfg); err != nil {
			return nil, err
		}
		if !tokens.Enabled() && !cfg.Insecure && !isLoopback(cfg.Host) {
			return nil, fmt.Errorf("refusing to listen on %s without API tokens: set --api-key or --tokens, "+
				"or pass --insecure to serve an open API on a non-loopback address", cfg.Host)
		}
	}
	var secret []byte
	if cfg.WebhookSecret != "" {
		var err error
		if secret, err = webhook.ParseSecret(cfg.WebhookSecret); err != nil {
			return nil, fmt.Errorf("--webhook-secret: %w", err)
		}
	}
	if cfg.Workers == 0 && !listen {
		return nil, errors.New("--workers 0 leaves a worker with nothing to do")
	}

	guard := &webhook.Guard{AllowPrivate: cfg.AllowPrivateWebhooks}
	if listen {
		s.metrics = metrics.New()
	}
	ecfg := engineConfig(cfg, log)
	ecfg.ValidateWebhookURL = guard.CheckURL
	ecfg.OnSubmit = func(run *spool.Run) {
		if s.metrics != nil {
			s.metrics.RunSubmitted(run)
		}
	}
	ecfg.OnStart = func(run *spool.Run) {
		if s.metrics != nil {
			s.metrics.RunStarted(run)
		}
	}
	ecfg.OnComplete = func(run *spool.Run) {
		if s.metrics != nil {
			s.metrics.RunCompleted(run)
		}
		if s.deliver != nil && run.WebhookURL != "" {
			s.deliver.Wake()
		}
	}
	if cfg.Engine != nil {
		cfg.Engine(&ecfg)
	}
	engine, err := queue.New(ecfg)
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	s.engine = engine

	s.recipes = &recipeCatalog{engine: engine, goRecipes: cfg.GoRecipes, log: log}
	if !cfg.NoRecipeDir {
		src, err := recipe.Open(cfg.Recipes, nil)
		if err != nil {
			_ = engine.Stop(ctx)
			return nil, fmt.Errorf("--recipes: %w", err)
		}
		s.recipes.src = src
		log.Info("recipes loaded", "dir", src.Dir, "bundled", src.Bundled, "count", len(src.Set().List()), "errors", len(src.Set().Errors()))
		for _, fe := range src.Set().Errors() {
			log.Warn("recipe not loaded", "file", fe.File, "err", fe.Error())
		}
	}
	s.recipes.install()

	var onAttempt func(string)
	if s.metrics != nil {
		onAttempt = s.metrics.WebhookAttempt
	}
	s.deliver = webhook.New(webhook.Config{
		Store:        engine.Store(),
		Node:         engine.Node(),
		Secret:       secret,
		Guard:        guard,
		RetryBase:    cfg.WebhookRetryBase,
		RetryWindow:  cfg.WebhookRetryWindow,
		PollInterval: cfg.WebhookPollInterval,
		Logger:       log.With("component", "webhook"),
		OnAttempt:    onAttempt,
	})

	if err := engine.Start(ctx); err != nil {
		_ = engine.Stop(ctx)
		return nil, fmt.Errorf("starting the engine: %w", err)
	}
	if err := s.deliver.Start(ctx); err != nil {
		_ = engine.Stop(ctx)
		return nil, err
	}
	if !listen {
		log.Info("worker started", "node", engine.Node(), "db", engine.DatabaseName(), "workers", cfg.Workers)
		return s, nil
	}

	s.metrics.SetStats(func(ctx context.Context) (*spool.Stats, error) { return engine.Stats(ctx, "") })
	s.metrics.SetRateStats(func(ctx context.Context) (int64, *time.Time, error) {
		st, err := engine.TimeStats(ctx)
		if err != nil {
			return 0, nil, err
		}
		return st.RateLimited, st.RateLimitedNextAt, nil
	})
	var uiHandler http.Handler
	if cfg.UI {
		uiHandler = ui.Handler(ui.Options{AuthRequired: tokens.Enabled(), Database: engine.DatabaseName()})
	}
	s.api = httpapi.New(httpapi.Config{
		Engine:    engine,
		Recipes:   s.recipes,
		Tokens:    tokens,
		MaxBody:   cfg.MaxBody,
		Heartbeat: cfg.Heartbeat,
		Metrics:   s.metrics.Handler(),
		UI:        uiHandler,
		Logger:    log.With("component", "http"),
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)))
	if err != nil {
		s.deliver.Stop()
		_ = engine.Stop(ctx)
		return nil, fmt.Errorf("listening: %w", err)
	}
	s.listener = ln
	s.http = &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- err
		}
	}()
	log.Info("spool server listening", "url", s.URL(), "node", engine.Node(), "db", engine.DatabaseName(),
		"auth", tokens.Enabled(), "max_concurrent", cfg.MaxConcurrent, "workers", cfg.Workers)
	return s, nil
}

// Addr returns the address the HTTP API listens on ("" for a worker).
func (s *Server) Addr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// URL returns the API's base URL, such as http://127.0.0.1:8005 ("" for a worker).
func (s *Server) URL() string {
	if s.listener == nil {
		return ""
	}
	return "http://" + s.Addr()
}

// Engine returns the server's engine.
func (s *Server) Engine() *queue.Engine { return s.engine }

// Handler returns the HTTP API handler (nil for a worker).
func (s *Server) Handler() http.Handler {
	if s.api == nil {
		return nil
	}
	return s.api
}

// ReloadRecipes reads the recipe directory again (SIGHUP).
func (s *Server) ReloadRecipes(ctx context.Context) error { return s.recipes.Reload(ctx) }

// Shutdown stops the server gracefully: it ends streams and long-polls, stops accepting
// requests and lets running ones finish, stops webhook delivery, then stops the engine,
// which lets running runs finish until the shutdown grace (or ctx) ends. It is safe to call
// more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx) })
	return s.stopErr
}

func (s *Server) shutdown(ctx context.Context) error {
	var errs []error
	if s.http != nil {
		s.api.Drain()
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.http.Shutdown(hctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping HTTP: %w", err))
			_ = s.http.Close()
		}
		cancel()
	}
	s.deliver.Stop()
	if err := s.engine.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stopping the engine: %w", err))
	}
	s.log.Info("spool stopped")
	return errors.Join(errs...)
}

// engineConfig maps the settings to the engine's configuration.
func engineConfig(cfg Config, log *slog.Logger) queue.Config {
	ec := queue.Config{
		DB:             cfg.DB,
		DefaultTimeout: cfg.DefaultTimeout,
		Logger:         log.With("component", "engine"),
		ShutdownGrace:  cfg.ShutdownGrace,
	}
	if ec.ShutdownGrace <= 0 {
		ec.ShutdownGrace = 25 * time.Second
	}
	ec.Limits.Global = cfg.MaxConcurrent
	if cfg.MaxConcurrent <= 0 {
		ec.Limits.Global = -1 // unlimited
	}
	ec.AgentRates, ec.WorkspaceRates = cfg.AgentRates, cfg.WorkspaceRates
	ec.Limits.PerAgent = max(cfg.MaxPerAgent, 0)
	ec.Limits.PerWorkspace = max(cfg.MaxPerWorkspace, 0)
	ec.MaxQueueSize = cfg.MaxQueueSize
	if cfg.MaxQueueSize <= 0 {
		ec.MaxQueueSize = -1
	}
	ec.Retention = cfg.Retention
	if cfg.Retention <= 0 {
		ec.Retention = -1 // keep forever
	}
	switch {
	case cfg.Workers == 0:
		ec.APIOnly = true
	case cfg.Workers > 0:
		ec.Workers = cfg.Workers
	default:
		ec.Workers = -1
	}
	return ec
}

func loadTokens(cfg Config) (*httpapi.Tokens, error) {
	var list []httpapi.Token
	if cfg.APIKey != "" {
		list = append(list, httpapi.Token{Token: cfg.APIKey})
	}
	if cfg.TokensFile != "" {
		more, err := httpapi.LoadTokens(cfg.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("--tokens: %w", err)
		}
		list = append(list, more...)
	}
	return httpapi.NewTokens(list)
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newLogger builds the process logger: text on a terminal, JSON otherwise.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, not %q", format)
}
