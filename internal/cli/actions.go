package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// ActionOptions are the inputs of the one-run commands cancel, retry, pause, resume and rm.
type ActionOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	ID string
}

func newActionCmd(f *Factory, runF func(*ActionOptions) error, use, short, long string, run func(context.Context, *ActionOptions) error) *cobra.Command {
	opts := &ActionOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Long:  long,
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
}

// NewCmdCancel returns `spool cancel ID`.
func NewCmdCancel(f *Factory, runF func(*ActionOptions) error) *cobra.Command {
	return newActionCmd(f, runF, "cancel", "Cancel a run",
		`Cancel a run. A queued, scheduled or paused run is cancelled at once; a running run is
stopped (its process gets SIGTERM, then SIGKILL) and ends cancelled shortly after.
Cancelling a run that has already finished changes nothing and is not an error.`, cancelRun)
}

// cancelOutcome is what a cancel did.
type cancelOutcome int

const (
	cancelDone      cancelOutcome = iota // the run is cancelled
	cancelRequested                      // the run is running and will stop
	cancelNoEffect                       // the run had already finished
)

// cancelOne cancels run id and says what happened, with the run verbatim for --json.
func cancelOne(ctx context.Context, c *spool.Client, id string) (*spool.Run, []byte, cancelOutcome, error) {
	var run spool.Run
	raw, err := apiCall(ctx, c, http.MethodPost, runPath(id, "/cancel"), nil, &run)
	var apiErr *spool.Error
	if errors.As(err, &apiErr) && apiErr.Code == spool.CodeConflict {
		r, raw, err := getRun(ctx, c, id)
		if err != nil {
			return nil, nil, 0, err
		}
		if r.State.IsTerminal() {
			return r, raw, cancelNoEffect, nil
		}
		return nil, nil, 0, apiErr
	}
	if err != nil {
		return nil, nil, 0, err
	}
	if run.State == spool.StateCancelled {
		return &run, raw, cancelDone, nil
	}
	return &run, raw, cancelRequested, nil
}

func cancelRun(ctx context.Context, opts *ActionOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	run, raw, outcome, err := cancelOne(ctx, c, opts.ID)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	ios := opts.IO
	cs := ios.ColorScheme()
	switch outcome {
	case cancelDone:
		if ios.IsStdoutTTY() {
			fmt.Fprintf(ios.Out, "%s Cancelled %s\n", cs.SuccessIcon(), run.ID)
		} else {
			fmt.Fprintf(ios.Out, "%s\tcancelled\n", run.ID)
		}
	case cancelRequested:
		if ios.IsStdoutTTY() {
			fmt.Fprintf(ios.Out, "%s Cancelling %s (it is %s; it stops shortly)\n", cs.SuccessIcon(), run.ID, run.State)
		} else {
			fmt.Fprintf(ios.Out, "%s\tcancel_requested\n", run.ID)
		}
	case cancelNoEffect:
		if ios.IsStdoutTTY() {
			fmt.Fprintf(ios.Out, "%s %s already %s; nothing to cancel\n", cs.WarningIcon(), run.ID, run.State)
		} else {
			fmt.Fprintf(ios.Out, "%s\t%s\n", run.ID, run.State)
		}
	}
	return nil
}

// NewCmdRetry returns `spool retry ID`.
func NewCmdRetry(f *Factory, runF func(*ActionOptions) error) *cobra.Command {
	return newActionCmd(f, runF, "retry", "Run a finished run again, as a new run",
		`Submit a new run that repeats a finished (succeeded, failed or cancelled) run: same recipe,
input and settings, linked to it by retry_of. Prints the new run's id.`, retryRun)
}

func retryRun(ctx context.Context, opts *ActionOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var run spool.Run
	raw, err := apiCall(ctx, c, http.MethodPost, runPath(opts.ID, "/retry"), nil, &run)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	if opts.IO.IsStdoutTTY() {
		fmt.Fprintf(opts.IO.Out, "%s Retrying %s as %s\n", opts.IO.ColorScheme().SuccessIcon(), opts.ID, run.ID)
	} else {
		fmt.Fprintln(opts.IO.Out, run.ID)
	}
	return nil
}

// NewCmdPause returns `spool pause ID`.
func NewCmdPause(f *Factory, runF func(*ActionOptions) error) *cobra.Command {
	return newActionCmd(f, runF, "pause", "Hold a queued run",
		`Hold a queued or scheduled run: it does not start until 'spool resume', and keeps its place.`,
		func(ctx context.Context, opts *ActionOptions) error {
			return stateChangeRun(ctx, opts, "/pause", "Paused")
		})
}

// NewCmdResume returns `spool resume ID`.
func NewCmdResume(f *Factory, runF func(*ActionOptions) error) *cobra.Command {
	return newActionCmd(f, runF, "resume", "Release a paused run",
		`Release a paused run back to its original place in the queue.`,
		func(ctx context.Context, opts *ActionOptions) error {
			return stateChangeRun(ctx, opts, "/resume", "Resumed")
		})
}

func stateChangeRun(ctx context.Context, opts *ActionOptions, suffix, verb string) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var run spool.Run
	raw, err := apiCall(ctx, c, http.MethodPost, runPath(opts.ID, suffix), nil, &run)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	if opts.IO.IsStdoutTTY() {
		fmt.Fprintf(opts.IO.Out, "%s %s %s (%s)\n", opts.IO.ColorScheme().SuccessIcon(), verb, run.ID, stateLabel(opts.IO, run.State))
	} else {
		fmt.Fprintf(opts.IO.Out, "%s\t%s\n", run.ID, run.State)
	}
	return nil
}

// NewCmdRm returns `spool rm ID`.
func NewCmdRm(f *Factory, runF func(*ActionOptions) error) *cobra.Command {
	cmd := newActionCmd(f, runF, "rm", "Delete a finished run",
		`Delete a finished run with its events. An active run must be cancelled first.`, rmRun)
	cmd.Aliases = []string{"delete"}
	return cmd
}

func rmRun(ctx context.Context, opts *ActionOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.Delete(ctx, opts.ID); err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, map[string]any{"job_id": opts.ID, "deleted": true})
	}
	if opts.IO.IsStdoutTTY() {
		fmt.Fprintf(opts.IO.Out, "%s Deleted %s\n", opts.IO.ColorScheme().SuccessIcon(), opts.ID)
	}
	return nil
}
