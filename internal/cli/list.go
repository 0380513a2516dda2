package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/cli/tableprinter"
)

// ListOptions are the inputs of `spool ls`.
type ListOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	Now    func() time.Time
	JSON   bool

	Status    []string
	Recipe    string
	Agent     string
	SessionID string
	Workspace string
	Page      int
	PageSize  int
	Watch     bool
	Interval  time.Duration
}

// NewCmdList returns `spool ls`.
func NewCmdList(f *Factory, runF func(*ListOptions) error) *cobra.Command {
	return newCmdList(f, runF, nil)
}

// newCmdList returns `ls`, listing runs in defaultStatus unless --status is given.
func newCmdList(f *Factory, runF func(*ListOptions) error, defaultStatus []string) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List runs, newest first",
		Long: `List runs, newest first, one page at a time.

On a terminal: an aligned table with state icons and relative times. Piped: one run per
line, tab-separated: id, status, recipe, agent, priority, progress, created_at (RFC 3339),
duration in seconds, session_id.`,
		Example: `  spool ls --status running,queued
  spool ls --recipe summarize --page 2
  spool ls --watch`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.JSON
			if len(opts.Status) == 0 {
				opts.Status = append([]string(nil), defaultStatus...)
			}
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&opts.Status, "status", nil, "Only runs in these states (queued, scheduled, running, paused, succeeded, failed, cancelled; pending and completed too)")
	fl.StringVarP(&opts.Recipe, "recipe", "r", "", "Only runs of this recipe")
	fl.StringVar(&opts.Agent, "agent", "", "Only runs of this agent")
	fl.StringVarP(&opts.SessionID, "session-id", "s", "", "Only runs of this session")
	fl.StringVarP(&opts.Workspace, "workspace", "w", "", "Only runs of this workspace")
	fl.IntVar(&opts.Page, "page", 1, "Page number")
	fl.IntVar(&opts.PageSize, "page-size", 20, "Runs per page (at most 1000)")
	fl.BoolVar(&opts.Watch, "watch", false, "Refresh the list until interrupted")
	fl.DurationVar(&opts.Interval, "interval", 2*time.Second, "Refresh interval of --watch")
	return cmd
}

func (opts *ListOptions) validate() error {
	for i, s := range opts.Status {
		if _, err := spool.ParseState(s); err != nil {
			return &FlagError{Err: fmt.Errorf("--status: %w", err)}
		}
		opts.Status[i] = strings.ToLower(strings.TrimSpace(s))
	}
	if opts.Page < 1 {
		return flagErrorf("--page must be at least 1")
	}
	if opts.PageSize < 1 || opts.PageSize > 1000 {
		return flagErrorf("--page-size must be between 1 and 1000")
	}
	if opts.Watch && opts.Interval < 100*time.Millisecond {
		return flagErrorf("--interval must be at least 100ms")
	}
	return nil
}

// query is the list request's query string.
func (opts *ListOptions) query() string {
	q := url.Values{}
	if len(opts.Status) > 0 {
		q.Set("status", strings.Join(opts.Status, ","))
	}
	for k, v := range map[string]string{"recipe_name": opts.Recipe, "agent": opts.Agent, "session_id": opts.SessionID, "workspace": opts.Workspace} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("page", strconv.Itoa(opts.Page))
	q.Set("page_size", strconv.Itoa(opts.PageSize))
	return q.Encode()
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if !opts.Watch {
		return listOnce(ctx, opts, c)
	}
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	for {
		if opts.IO.IsStdoutTTY() && !opts.JSON {
			fmt.Fprint(opts.IO.Out, "\x1b[H\x1b[2J") // home and clear the screen
		}
		if err := listOnce(ctx, opts, c); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if opts.IO.IsStdoutTTY() && !opts.JSON {
			fmt.Fprintf(opts.IO.Out, "\n%s\n", opts.IO.ColorScheme().Gray("Every "+opts.Interval.String()+" (Ctrl-C to stop) · "+opts.Now().Format("15:04:05")))
		} else if !opts.JSON {
			fmt.Fprintln(opts.IO.Out)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func listOnce(ctx context.Context, opts *ListOptions, c *spool.Client) error {
	var list spool.RunList
	raw, err := apiCall(ctx, c, http.MethodGet, "/runs?"+opts.query(), nil, &list)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	ios := opts.IO
	if len(list.Runs) == 0 {
		if ios.IsStdoutTTY() {
			fmt.Fprintln(ios.Out, "No runs match.")
		}
		return nil
	}
	now := opts.Now()
	tty := ios.IsStdoutTTY()
	cs := ios.ColorScheme()
	tp := tableprinter.New(ios.Out, tty, ios.TerminalWidth())
	if tty {
		tp.AddHeader(cs.Bold, "ID", "STATUS", "RECIPE", "PRIORITY", "PROGRESS", "CREATED", "DURATION")
	}
	for _, r := range list.Runs {
		tp.AddField(r.ID, tableprinter.WithColor(cs.Cyan))
		addStateField(tp, ios, r.State)
		if tty {
			tp.AddField(r.Recipe, tableprinter.WithTruncate())
		} else {
			tp.AddField(r.Recipe)
			tp.AddField(r.Agent)
		}
		tp.AddField(r.Priority.String())
		tp.AddField(formatProgress(r))
		tp.AddField(formatTime(ios, now, &r.CreatedAt), tableprinter.WithColor(cs.Gray))
		tp.AddField(formatDuration(ios, r, now))
		if !tty {
			tp.AddField(r.SessionID)
		}
		tp.EndRow()
	}
	if err := tp.Render(); err != nil {
		return err
	}
	if tty && list.Total > int64(len(list.Runs)) {
		fmt.Fprintln(ios.Out, cs.Gray(fmt.Sprintf("Showing %d of %d runs (page %d; --page for more)", len(list.Runs), list.Total, list.Page)))
	}
	return nil
}
