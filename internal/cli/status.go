package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/cli/text"
)

// StatusOptions are the inputs of `spool status`.
type StatusOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	Now    func() time.Time
	JSON   bool

	ID string
}

// NewCmdStatus returns `spool status ID`.
func NewCmdStatus(f *Factory, runF func(*StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "status ID",
		Aliases: []string{"get", "show"},
		Short:   "Show a run",
		Long: `Show a run: its state, progress, recipe, times and error.

Piped, each line is "key<TAB>value" with RFC 3339 times; --json prints the API's run object.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return statusRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func statusRun(ctx context.Context, opts *StatusOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	run, raw, err := getRun(ctx, c, opts.ID)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	printRunDetails(opts.IO, run, opts.Now())
	return nil
}

// printRunDetails prints a run as "Key: value" lines.
func printRunDetails(ios *iostreams.IOStreams, run *spool.Run, now time.Time) {
	d := &detailPrinter{ios: ios}
	tty := ios.IsStdoutTTY()
	cs := ios.ColorScheme()
	d.add("Run", run.ID)
	d.add("Status", stateLabel(ios, run.State))
	if run.CancelRequestedAt != nil && !run.State.IsTerminal() {
		d.add("Cancel", "requested "+formatTime(ios, now, run.CancelRequestedAt))
	}
	progress := formatProgress(run)
	if run.Progress.CurrentStep != "" {
		progress += " " + run.Progress.CurrentStep
	}
	d.add("Progress", progress)
	d.add("Recipe", run.Recipe)
	if run.Agent != "" && (tty && run.Agent != run.Recipe || !tty) {
		d.add("Agent", run.Agent)
	}
	if run.Workspace != "" {
		d.add("Workspace", run.Workspace)
	}
	if run.SessionID != "" || !tty {
		d.add("Session", run.SessionID)
	}
	d.add("Priority", run.Priority.String())
	attempt := strconv.Itoa(run.Attempt)
	if run.MaxRetries > 0 {
		attempt += fmt.Sprintf(" of %d", run.MaxRetries+1)
	}
	d.add("Attempt", attempt)
	d.add("Created", formatTime(ios, now, &run.CreatedAt))
	if run.RunAt != nil && run.StartedAt == nil {
		d.add("Run at", formatTime(ios, now, run.RunAt))
	}
	d.add("Started", formatTime(ios, now, run.StartedAt))
	d.add("Completed", formatTime(ios, now, run.CompletedAt))
	d.add("Duration", formatDuration(ios, run, now))
	if run.RetryOf != "" {
		d.add("Retry of", run.RetryOf)
	}
	if run.Error != "" {
		e := run.Error
		if run.ErrorCode != "" {
			e += " (" + run.ErrorCode + ")"
		}
		d.add("Error", cs.Red(e))
	}
	if run.State == spool.StateSucceeded {
		r := resultText(run.Result, false)
		if tty {
			r = text.Truncate(text.OneLine(r), 200)
		}
		d.add("Result", r)
	}
	d.render()
}
