package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// WaitOptions are the inputs of `spool wait`.
type WaitOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	ID      string
	Timeout int
}

// NewCmdWait returns `spool wait ID`.
func NewCmdWait(f *Factory, runF func(*WaitOptions) error) *cobra.Command {
	opts := &WaitOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for a run to finish and print its result",
		Long: `Wait for a run to finish, with a spinner and progress bar on a terminal, then print
its result. Exits with 1 when the run failed or was cancelled, and with 5 when --timeout
passes first. --json prints the finished run object.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if opts.Timeout < 0 {
				return flagErrorf("--timeout must not be negative")
			}
			if runF != nil {
				return runF(opts)
			}
			return waitRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Timeout, "timeout", 0, "Give up after this many seconds (0: wait for ever)")
	return cmd
}

func waitRun(ctx context.Context, opts *WaitOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	run, err := waitForRun(ctx, opts.IO, c, opts.ID, time.Duration(opts.Timeout)*time.Second)
	if err != nil {
		return err
	}
	return finish(ctx, opts.IO, c, run, opts.JSON, true)
}
