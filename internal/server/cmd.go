package server

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// NewServerCmd returns the `spool server` command (also mounted as `spool jobs server`).
func NewServerCmd() *cobra.Command {
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the HTTP API and dashboard, and work runs",
		Long: `Serve Spool's HTTP API (under /api/v1), the web dashboard, /metrics and
/openapi.json, and execute runs of the recipes in the recipe directory.

Every setting is a flag, an environment variable and a key of an optional --config file
(flag > env > file > default). SIGINT or SIGTERM shuts down gracefully (a second one
stops at once); SIGHUP reloads the recipes.`,
		Example: `  spool server
  spool server --port 9000 --recipes ./recipes --max-concurrent 4
  SPOOL_API_KEY=secret spool server --host 0.0.0.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvAndFile(cmd.Flags(), os.Getenv); err != nil {
				return err
			}
			return runWithSignals(cmd.Context(), cfg, true)
		},
	}
	cmd.Flags().SortFlags = false
	bindFlags(cmd.Flags(), &cfg, true)
	return cmd
}

// NewWorkerCmd returns the `spool worker` command: a node that works runs from a shared
// database without serving HTTP.
func NewWorkerCmd() *cobra.Command {
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Work runs from the database without serving HTTP",
		Long: `Execute runs from the database, as one more node beside 'spool server'. It takes
the same settings as 'spool server' except the HTTP ones. With PostgreSQL any number of
workers share the queue; a SQLite database belongs to one process.`,
		Example: `  spool worker --db postgres://spool@db/spool --recipes ./recipes`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvAndFile(cmd.Flags(), os.Getenv); err != nil {
				return err
			}
			return runWithSignals(cmd.Context(), cfg, false)
		},
	}
	cmd.Flags().SortFlags = false
	bindFlags(cmd.Flags(), &cfg, false)
	return cmd
}

// runWithSignals runs a node until SIGINT or SIGTERM, reloading recipes on SIGHUP. A second
// SIGINT or SIGTERM cuts the graceful shutdown short.
func runWithSignals(ctx context.Context, cfg Config, listen bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	s, err := start(ctx, cfg, listen)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return s.Shutdown(context.WithoutCancel(ctx))
		case err := <-s.serveErr:
			_ = s.Shutdown(context.WithoutCancel(ctx))
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				_ = s.ReloadRecipes(ctx)
				continue
			}
			s.log.Info("shutting down", "signal", sig.String())
			stopCtx, force := context.WithCancel(context.WithoutCancel(ctx))
			go func() {
				for {
					select {
					case <-stopCtx.Done():
						return
					case sig := <-sigs:
						if sig != syscall.SIGHUP {
							s.log.Warn("stopping now", "signal", sig.String())
							force()
							return
						}
					}
				}
			}()
			err := s.Shutdown(stopCtx)
			force()
			return err
		}
	}
}
