package cli

import (
	"context"
	"encoding/json"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// LogsOptions are the inputs of `spool logs`.
type LogsOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	ID     string
	Follow bool
}

// NewCmdLogs returns `spool logs ID [-f]`.
func NewCmdLogs(f *Factory, runF func(*LogsOptions) error) *cobra.Command {
	opts := &LogsOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a run's output",
		Long: `Print a run's output (its output events) on standard output and its logs (log
events, an exec recipe's stderr) on standard error.

With -f the output is streamed live until the run finishes, with a progress line on a
terminal, and the command exits with 1 when the run failed or was cancelled. --json prints
every event as one line of JSON.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return logsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "Stream the output until the run finishes")
	return cmd
}

func logsRun(ctx context.Context, opts *LogsOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ios := opts.IO
	if opts.Follow {
		run, _, err := followRun(ctx, ios, c, opts.ID, opts.JSON)
		if err != nil {
			return err
		}
		if opts.JSON {
			return jsonOutcome(run)
		}
		return reportOutcome(ios, run, false)
	}
	var after int64
	for {
		evs, err := c.Events(ctx, opts.ID, after)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		for _, ev := range evs {
			after = max(after, ev.Seq)
			if opts.JSON {
				b, err := json.Marshal(ev)
				if err != nil {
					return err
				}
				ios.Out.Write(append(b, '\n'))
				continue
			}
			switch ev.Type {
			case spool.EventOutput:
				ios.Out.Write([]byte(ev.Text))
			case spool.EventLog:
				ios.ErrOut.Write([]byte(ev.Text))
			}
		}
	}
}
