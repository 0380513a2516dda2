package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// ServerCommands builds the commands that run a server process, which live in another
// package: `spool server` (also mounted as `spool jobs server`) and `spool worker`. Each
// func is called once per place the command is mounted.
type ServerCommands struct {
	Server func() *cobra.Command
	Worker func() *cobra.Command
}

// Main runs the spool command line with the process's arguments and streams and returns
// the exit code.
func Main(version string, sc ServerCommands) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, NewFactory(iostreams.System(), version), sc, os.Args[1:])
}

// Run runs the command line args with f and returns the exit code. Errors are printed to
// f.IOStreams.ErrOut.
func Run(ctx context.Context, f *Factory, sc ServerCommands, args []string) int {
	defer f.Close()
	root := NewCmdRoot(f, sc)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		printError(f.IOStreams.ErrOut, f.IOStreams, cmd, err)
	}
	return ExitCode(err)
}

// NewCmdRoot returns the root command with every subcommand.
func NewCmdRoot(f *Factory, sc ServerCommands) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spool <command>",
		Short: "Spool: a job server and queue for long-running AI-agent work",
		Long: `Spool runs recipes (agents, scripts, LLM prompts) as queued runs with priorities,
concurrency limits, retries, streaming output and stored results.

Start a server with 'spool server', then submit runs to it with 'spool submit'.
Client commands talk to --server (or SPOOL_URL, default http://127.0.0.1:8005).`,
		Example: `  spool server &
  spool submit echo --input '{"hello": "world"}' --wait
  spool ls
  spool logs -f run_01JD...`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       f.Version,
		Args:          noArgsOrUnknown,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.SetOut(f.IOStreams.Out)
	cmd.SetErr(f.IOStreams.ErrOut)
	cmd.SetIn(f.IOStreams.In)
	cmd.SetVersionTemplate("spool version {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &FlagError{Err: err}
	})

	getenv := f.Getenv
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.ServerURL, "server", getenv("SPOOL_URL"), "Spool server URL (env SPOOL_URL; default http://127.0.0.1:8005)")
	pf.StringVar(&f.Token, "token", getenv("SPOOL_TOKEN"), "API token (env SPOOL_TOKEN)")
	pf.BoolVar(&f.JSON, "json", false, "Print JSON (the API's objects) instead of text")

	cmd.AddGroup(
		&cobra.Group{ID: "runs", Title: "Run commands:"},
		&cobra.Group{ID: "server", Title: "Server commands:"},
		&cobra.Group{ID: "compat", Title: "PraisonAI-compatible command groups:"},
	)
	for _, c := range []*cobra.Command{
		NewCmdSubmit(f, nil), NewCmdList(f, nil), NewCmdStatus(f, nil), NewCmdLogs(f, nil),
		NewCmdWait(f, nil), NewCmdResult(f, nil), NewCmdCancel(f, nil), NewCmdRetry(f, nil),
		NewCmdPause(f, nil), NewCmdResume(f, nil), NewCmdRm(f, nil), NewCmdStats(f, nil),
		NewCmdClear(f, nil), NewCmdRecipe(f), NewCmdSchedule(f),
	} {
		c.GroupID = "runs"
		cmd.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		mountServer(sc.Server, "server", "Run the Spool HTTP server and work runs"),
		mountServer(sc.Worker, "worker", "Work runs from a shared database without serving HTTP"),
	} {
		c.GroupID = "server"
		cmd.AddCommand(c)
	}
	for _, c := range []*cobra.Command{NewCmdBackground(f), NewCmdQueue(f), NewCmdJobs(f, sc)} {
		c.GroupID = "compat"
		cmd.AddCommand(c)
	}
	cmd.AddCommand(NewCmdVersion(f, nil), NewCmdCompletion(f))
	return cmd
}

// mountServer returns the command build makes, or a placeholder saying the binary was built
// without it.
func mountServer(build func() *cobra.Command, use, short string) *cobra.Command {
	if build != nil {
		if c := build(); c != nil {
			return c
		}
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("this spool binary was built without the %q command", use)
		},
	}
}

// NewCmdJobs returns the `jobs` group of PraisonAI's CLI: `spool jobs server --port N` is
// `spool server`.
func NewCmdJobs(f *Factory, sc ServerCommands) *cobra.Command {
	cmd := newGroup("jobs", "PraisonAI's jobs group: 'spool jobs server' is 'spool server'")
	cmd.AddCommand(mountServer(sc.Server, "server", "Run the Spool HTTP server (same as 'spool server')"))
	return cmd
}

// newGroup returns a command that only holds subcommands: alone it prints its help, with an
// unknown subcommand it is a usage error.
func newGroup(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " <command>",
		Short: short,
		Args:  noArgsOrUnknown,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
}

// noArgsOrUnknown refuses positional arguments to a command group as an unknown command.
func noArgsOrUnknown(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return flagErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

// exactArgs requires exactly n arguments, naming them in the error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < n:
			return flagErrorf("missing argument: %s", names)
		case len(args) > n:
			return flagErrorf("too many arguments: %s takes %s", cmd.CommandPath(), names)
		}
		return nil
	}
}
