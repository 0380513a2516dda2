package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// NewCmdQueue returns the `spool queue` group: PraisonAI's `praisonai queue` commands.
func NewCmdQueue(f *Factory) *cobra.Command {
	cmd := newGroup("queue", "Inspect and manage the queue (PraisonAI's queue commands)")
	ls := newCmdList(f, nil, []string{"queued", "scheduled", "running", "paused"})
	ls.Short = "List queued and running runs"
	cmd.AddCommand(ls, NewCmdCancel(f, nil), NewCmdRetry(f, nil), NewCmdStats(f, nil), NewCmdQueueClear(f, nil))
	return cmd
}

// QueueClearOptions are the inputs of `spool queue clear`.
type QueueClearOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	Force bool
}

// NewCmdQueueClear returns `spool queue clear --force`.
func NewCmdQueueClear(f *Factory, runF func(*QueueClearOptions) error) *cobra.Command {
	opts := &QueueClearOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "clear --force",
		Short: "Cancel every run waiting in the queue",
		Long: `Cancel every run that waits to start (queued, scheduled or paused). Running runs
and finished runs are left alone. --force is required.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.JSON
			if !opts.Force {
				return flagErrorf("queue clear cancels every waiting run: pass --force to confirm")
			}
			if runF != nil {
				return runF(opts)
			}
			return queueClearRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "Confirm clearing the queue")
	return cmd
}

func queueClearRun(ctx context.Context, opts *QueueClearOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	q := url.Values{"status": {"queued,scheduled,paused"}, "page": {"1"}, "page_size": {"500"}}
	cancelled := 0
	seen := map[string]bool{}
	for {
		var list spool.RunList
		if _, err := apiCall(ctx, c, http.MethodGet, "/runs?"+q.Encode(), nil, &list); err != nil {
			return err
		}
		progressed := false
		for _, r := range list.Runs {
			if seen[r.ID] {
				continue
			}
			seen[r.ID] = true
			progressed = true
			_, _, outcome, err := cancelOne(ctx, c, r.ID)
			if err != nil {
				return err
			}
			if outcome != cancelNoEffect {
				cancelled++
			}
		}
		if !progressed || len(list.Runs) == 0 {
			break
		}
	}
	if opts.JSON {
		return writeJSON(opts.IO, map[string]any{"cancelled": cancelled})
	}
	if opts.IO.IsStdoutTTY() {
		fmt.Fprintf(opts.IO.Out, "%s Cancelled %d waiting %s\n", opts.IO.ColorScheme().SuccessIcon(), cancelled, plural(int64(cancelled), "run", "runs"))
	} else {
		fmt.Fprintln(opts.IO.Out, cancelled)
	}
	return nil
}
