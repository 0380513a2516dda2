package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/cli/text"
)

// The `background` group is PraisonAI's `praisonai background` with its flags, words and
// outputs: states are pending, running, completed, failed and cancelled, and --json errors
// are {"ok": false, "error": ...} on standard output.

// NewCmdBackground returns the `spool background` group.
func NewCmdBackground(f *Factory) *cobra.Command {
	cmd := newGroup("background", "Manage background tasks (PraisonAI's background commands)")
	cmd.Long = `Manage runs with the commands and outputs of PraisonAI's 'praisonai background':
states are reported as pending (queued, scheduled, paused), running, completed (succeeded),
failed and cancelled.`
	for _, c := range []*cobra.Command{
		NewCmdBackgroundList(f, nil), NewCmdBackgroundStatus(f, nil), NewCmdBackgroundCancel(f, nil),
		NewCmdBackgroundClear(f, nil), NewCmdBackgroundSubmit(f, nil),
	} {
		c.RunE = seedJSONErrors(f, c.RunE)
		cmd.AddCommand(c)
	}
	return cmd
}

// seedJSONErrors makes a --json command report its error as {"ok": false, "error": ...} on
// standard output, as PraisonAI's background commands do. The exit code is unchanged.
func seedJSONErrors(f *Factory, runE func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := runE(cmd, args)
		if err == nil || !f.JSON || ExitCode(err) == ExitUsage {
			return err
		}
		if exitErr, ok := err.(*ExitError); ok && exitErr.Err == nil {
			return err
		}
		writeJSON(f.IOStreams, struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}{false, ErrorMessage(err)})
		return &jsonErrorPrinted{err: err}
	}
}

// seedTask is a run in the shape of PraisonAI's background task (task.to_dict()), plus the
// fields Spool adds.
type seedTask struct {
	TaskID          string          `json:"task_id"`
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	Recipe          string          `json:"recipe"`
	SessionID       *string         `json:"session_id"`
	Status          string          `json:"status"`
	State           spool.State     `json:"state"`
	Progress        float64         `json:"progress"`
	Percentage      float64         `json:"percentage"`
	CurrentStep     string          `json:"current_step,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
	StartedAt       *time.Time      `json:"started_at"`
	CompletedAt     *time.Time      `json:"completed_at"`
	DurationSeconds *float64        `json:"duration_seconds"`
	Result          json.RawMessage `json:"result"`
	Error           *string         `json:"error"`
	ErrorCode       string          `json:"error_code,omitempty"`
}

func newSeedTask(run *spool.Run, now time.Time) seedTask {
	t := seedTask{
		TaskID: run.ID, ID: run.ID, Name: run.Recipe, Recipe: run.Recipe,
		Status: run.State.SeedState(), State: run.State,
		Progress: run.Progress.Percentage / 100, Percentage: run.Progress.Percentage,
		CurrentStep: run.Progress.CurrentStep,
		CreatedAt:   run.CreatedAt, StartedAt: run.StartedAt, CompletedAt: run.CompletedAt,
		DurationSeconds: run.DurationSeconds(now),
		Result:          run.Result, ErrorCode: run.ErrorCode,
	}
	if run.SessionID != "" {
		t.SessionID = &run.SessionID
	}
	if run.Error != "" {
		t.Error = &run.Error
	}
	if len(t.Result) == 0 {
		t.Result = json.RawMessage("null")
	}
	return t
}

// seedStatusColor colours a seed state word as PraisonAI does.
func seedStatusColor(cs *iostreams.ColorScheme, status string) string {
	switch status {
	case "running":
		return cs.Yellow(status)
	case "completed":
		return cs.Green(status)
	case "failed":
		return cs.Red(status)
	}
	return cs.Gray(status)
}

// seedStates turns PraisonAI's state words into Spool's.
func seedStates(words []string) ([]string, error) {
	var out []string
	for _, w := range words {
		switch strings.ToLower(strings.TrimSpace(w)) {
		case "pending":
			out = append(out, "queued", "scheduled", "paused")
		case "completed":
			out = append(out, "succeeded")
		default:
			st, err := spool.ParseState(w)
			if err != nil {
				return nil, err
			}
			out = append(out, string(st))
		}
	}
	return out, nil
}

// BackgroundListOptions are the inputs of `spool background list`.
type BackgroundListOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	Now    func() time.Time
	JSON   bool

	Status   string
	Page     int
	PageSize int
}

// NewCmdBackgroundList returns `spool background list`.
func NewCmdBackgroundList(f *Factory, runF func(*BackgroundListOptions) error) *cobra.Command {
	opts := &BackgroundListOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List background tasks",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.JSON
			if opts.Page < 1 || opts.PageSize < 1 || opts.PageSize > 1000 {
				return flagErrorf("--page must be at least 1 and --page-size between 1 and 1000")
			}
			if runF != nil {
				return runF(opts)
			}
			return backgroundListRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Status, "status", "", "Filter by status: pending, running, completed, failed, cancelled")
	cmd.Flags().IntVar(&opts.Page, "page", 1, "Page number")
	cmd.Flags().IntVar(&opts.PageSize, "page-size", 20, "Tasks per page")
	return cmd
}

func backgroundListRun(ctx context.Context, opts *BackgroundListOptions) error {
	q := url.Values{"page": {strconv.Itoa(opts.Page)}, "page_size": {strconv.Itoa(opts.PageSize)}}
	if opts.Status != "" {
		states, err := seedStates(strings.Split(opts.Status, ","))
		if err != nil {
			return &FlagError{Err: fmt.Errorf("--status: %w", err)}
		}
		q.Set("status", strings.Join(states, ","))
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var list spool.RunList
	if _, err := apiCall(ctx, c, http.MethodGet, "/runs?"+q.Encode(), nil, &list); err != nil {
		return err
	}
	now := opts.Now()
	ios := opts.IO
	if opts.JSON {
		tasks := make([]seedTask, len(list.Runs))
		for i, r := range list.Runs {
			tasks[i] = newSeedTask(r, now)
		}
		return writeJSON(ios, map[string]any{"ok": true, "tasks": tasks, "total": list.Total, "page": list.Page, "page_size": list.PageSize})
	}
	if !ios.IsStdoutTTY() {
		for _, r := range list.Runs {
			dur := ""
			if d := r.DurationSeconds(now); d != nil {
				dur = strconv.FormatFloat(*d, 'f', 1, 64)
			}
			fmt.Fprintf(ios.Out, "%s\t%s\t%s\t%s\n", r.ID, r.State.SeedState(), r.Recipe, dur)
		}
		return nil
	}
	cs := ios.ColorScheme()
	if len(list.Runs) == 0 {
		fmt.Fprintln(ios.Out, cs.Yellow("No background tasks"))
		return nil
	}
	// PraisonAI's "Background Tasks" box.
	lines := make([]string, len(list.Runs))
	plain := make([]string, len(list.Runs))
	for i, r := range list.Runs {
		status := r.State.SeedState()
		suffix := ""
		if d := r.DurationSeconds(now); d != nil && r.State == spool.StateRunning {
			suffix = " (" + text.Duration(*d) + ")"
		}
		plain[i] = fmt.Sprintf("%s [%s] %s - %s%s", stateIcon(r.State), r.ID, r.Recipe, status, suffix)
		lines[i] = fmt.Sprintf("%s [%s] %s - %s%s", stateIcon(r.State), cs.Cyan(r.ID), r.Recipe, seedStatusColor(cs, status), suffix)
	}
	width := 40
	for _, p := range plain {
		width = max(width, text.DisplayWidth(p)+4)
	}
	title := "─ Background Tasks "
	fmt.Fprintf(ios.Out, "╭%s%s╮\n", cs.Bold(title), strings.Repeat("─", max(width-text.DisplayWidth(title), 0)))
	for i, l := range lines {
		fmt.Fprintf(ios.Out, "│  %s%s│\n", l, strings.Repeat(" ", max(width-2-text.DisplayWidth(plain[i]), 0)))
	}
	fmt.Fprintf(ios.Out, "╰%s╯\n", strings.Repeat("─", width))
	if list.Total > int64(len(list.Runs)) {
		fmt.Fprintln(ios.Out, cs.Gray(fmt.Sprintf("Showing %d of %d tasks (page %d)", len(list.Runs), list.Total, list.Page)))
	}
	return nil
}

// BackgroundStatusOptions are the inputs of `spool background status`.
type BackgroundStatusOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	Now    func() time.Time
	JSON   bool

	ID string
}

// NewCmdBackgroundStatus returns `spool background status TASK_ID`.
func NewCmdBackgroundStatus(f *Factory, runF func(*BackgroundStatusOptions) error) *cobra.Command {
	opts := &BackgroundStatusOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	return &cobra.Command{
		Use:   "status TASK_ID",
		Short: "Get task status",
		Long: `Get a task's status. --json prints an object whose "status" is one of pending, running,
completed, failed and cancelled, so a script can poll until "completed" or "failed".`,
		Args: exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return backgroundStatusRun(cmd.Context(), opts)
		},
	}
}

func backgroundStatusRun(ctx context.Context, opts *BackgroundStatusOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	run, _, err := getRun(ctx, c, opts.ID)
	if err != nil {
		return err
	}
	now := opts.Now()
	t := newSeedTask(run, now)
	ios := opts.IO
	if opts.JSON {
		return writeJSON(ios, struct {
			OK bool `json:"ok"`
			seedTask
		}{true, t})
	}
	cs := ios.ColorScheme()
	var b strings.Builder
	fmt.Fprintf(&b, "Task: %s\n", run.ID)
	fmt.Fprintf(&b, "Status: %s\n", seedStatusColor(cs, t.Status))
	fmt.Fprintf(&b, "Progress: %s%%\n", strconv.FormatFloat(run.Progress.Percentage, 'f', 0, 64))
	if t.DurationSeconds != nil {
		fmt.Fprintf(&b, "Duration: %.1fs\n", *t.DurationSeconds)
	} else {
		b.WriteString("Duration: -\n")
	}
	fmt.Fprintf(&b, "Recipe: %s\n", run.Recipe)
	if run.SessionID != "" {
		fmt.Fprintf(&b, "Session: %s\n", run.SessionID)
	}
	if run.Error != "" {
		fmt.Fprintf(&b, "Error: %s\n", cs.Red(text.OneLine(run.Error)))
	}
	if run.State == spool.StateSucceeded {
		if r := resultText(run.Result, false); r != "" {
			fmt.Fprintf(&b, "Result: %s\n", text.Truncate(text.OneLine(r), 200))
		}
	}
	_, err = fmt.Fprint(ios.Out, b.String())
	return err
}

// BackgroundCancelOptions are the inputs of `spool background cancel`.
type BackgroundCancelOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	ID string
}

// NewCmdBackgroundCancel returns `spool background cancel TASK_ID`.
func NewCmdBackgroundCancel(f *Factory, runF func(*BackgroundCancelOptions) error) *cobra.Command {
	opts := &BackgroundCancelOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   "cancel TASK_ID",
		Short: "Cancel a running task",
		Args:  exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return backgroundCancelRun(cmd.Context(), opts)
		},
	}
}

func backgroundCancelRun(ctx context.Context, opts *BackgroundCancelOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	run, _, outcome, err := cancelOne(ctx, c, opts.ID)
	if err != nil {
		return err
	}
	ios := opts.IO
	if opts.JSON {
		return writeJSON(ios, map[string]any{"ok": true, "task_id": run.ID, "cancelled": outcome != cancelNoEffect, "status": run.State.SeedState()})
	}
	cs := ios.ColorScheme()
	if outcome == cancelNoEffect {
		fmt.Fprintf(ios.Out, "%s Task already %s: %s\n", cs.WarningIcon(), run.State.SeedState(), run.ID)
		return nil
	}
	fmt.Fprintf(ios.Out, "%s Task cancelled: %s\n", cs.SuccessIcon(), run.ID)
	return nil
}

// BackgroundClearOptions are the inputs of `spool background clear`.
type BackgroundClearOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	All       bool
	OlderThan int
}

// NewCmdBackgroundClear returns `spool background clear`.
func NewCmdBackgroundClear(f *Factory, runF func(*BackgroundClearOptions) error) *cobra.Command {
	opts := &BackgroundClearOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "clear",
		Short: "Clear completed tasks",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.JSON
			if opts.OlderThan < 0 {
				return flagErrorf("--older-than must not be negative")
			}
			if runF != nil {
				return runF(opts)
			}
			return backgroundClearRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.All, "all", false, "Clear all tasks including running")
	cmd.Flags().IntVar(&opts.OlderThan, "older-than", 0, "Clear tasks older than N seconds")
	return cmd
}

func backgroundClearRun(ctx context.Context, opts *BackgroundClearOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	n, _, err := clearRuns(ctx, c, opts.All, time.Duration(opts.OlderThan)*time.Second)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, map[string]any{"ok": true, "cleared": n})
	}
	what := "completed tasks"
	if opts.All {
		what = "tasks"
	}
	fmt.Fprintf(opts.IO.Out, "%s Cleared %d %s\n", opts.IO.ColorScheme().SuccessIcon(), n, what)
	return nil
}

// BackgroundSubmitOptions are the inputs of `spool background submit`.
type BackgroundSubmitOptions struct {
	Submit *SubmitOptions
}

// NewCmdBackgroundSubmit returns `spool background submit --recipe NAME`.
func NewCmdBackgroundSubmit(f *Factory, runF func(*BackgroundSubmitOptions) error) *cobra.Command {
	opts := &BackgroundSubmitOptions{Submit: &SubmitOptions{IO: f.IOStreams, Client: f.Client}}
	so := opts.Submit
	cmd := &cobra.Command{
		Use:   "submit --recipe NAME",
		Short: "Submit a recipe as background task",
		Long: `Submit a recipe as a background task. --input that is not JSON is sent as
{"input": TEXT}, as PraisonAI does. With --json it prints
{"ok": true, "task_id": ..., "recipe": ..., "session_id": ...}.`,
		Example: `  spool background submit --recipe my-recipe --input '{"query": "test"}' --json`,
		Args:    exactArgs(0, "no arguments (the recipe is --recipe)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			so.JSON = f.JSON
			if so.Input != "" && !json.Valid([]byte(so.Input)) {
				b, _ := json.Marshal(map[string]string{"input": so.Input})
				so.Input = string(b)
			}
			if runF != nil {
				return runF(opts)
			}
			return submitBackground(cmd.Context(), so)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&so.Recipe, "recipe", "", "Recipe name to execute (required)")
	fl.StringVarP(&so.Input, "input", "i", "", "Input data as JSON string")
	fl.StringVarP(&so.Config, "config", "c", "", "Config overrides as JSON string")
	fl.StringVarP(&so.SessionID, "session-id", "s", "", "Session ID for conversation continuity")
	fl.IntVar(&so.Timeout, "timeout", 300, "Timeout in seconds")
	cmd.MarkFlagRequired("recipe")
	return cmd
}

// submitBackground submits a run and prints it the way PraisonAI's background submit does.
func submitBackground(ctx context.Context, so *SubmitOptions) error {
	req, err := so.request()
	if err != nil {
		return err
	}
	c, err := so.Client()
	if err != nil {
		return err
	}
	var run spool.Run
	if _, err := apiCall(ctx, c, http.MethodPost, "/runs", req, &run); err != nil {
		return err
	}
	ios := so.IO
	if so.JSON {
		var session any
		if run.SessionID != "" {
			session = run.SessionID
		}
		return writeJSON(ios, struct {
			OK        bool   `json:"ok"`
			TaskID    string `json:"task_id"`
			Recipe    string `json:"recipe"`
			SessionID any    `json:"session_id"`
		}{true, run.ID, run.Recipe, session})
	}
	if !ios.IsStdoutTTY() {
		fmt.Fprintln(ios.Out, run.ID)
		return nil
	}
	cs := ios.ColorScheme()
	fmt.Fprintf(ios.Out, "%s Recipe '%s' submitted to background\n", cs.SuccessIcon(), run.Recipe)
	fmt.Fprintf(ios.Out, "  Task ID: %s\n", run.ID)
	if run.SessionID != "" {
		fmt.Fprintf(ios.Out, "  Session: %s\n", run.SessionID)
	}
	fmt.Fprintf(ios.Out, "\nCheck status with: spool background status %s\n", run.ID)
	return nil
}
