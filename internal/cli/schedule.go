package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/cli/tableprinter"
)

// scheduleView is a schedule as the API answers it (GET /api/v1/schedules/{id}).
type scheduleView struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Workspace    string          `json:"workspace"`
	Recipe       string          `json:"recipe_name"`
	Source       string          `json:"source"`
	Cron         string          `json:"cron"`
	Every        string          `json:"every"`
	Timezone     string          `json:"timezone"`
	Catchup      string          `json:"catchup"`
	Overlap      string          `json:"overlap"`
	Paused       bool            `json:"paused"`
	Input        json.RawMessage `json:"input"`
	Priority     *spool.Priority `json:"priority"`
	Agent        string          `json:"agent"`
	NextAt       *time.Time      `json:"next_run_at"`
	NextRunTimes []time.Time     `json:"next_run_times"`
	LastAt       *time.Time      `json:"last_run_at"`
	LastRunID    string          `json:"last_run_id"`
	CreatedAt    time.Time       `json:"created_at"`
}

// when is the schedule's timing as a person reads it.
func (s *scheduleView) when() string {
	w := s.Cron
	if w == "" {
		w = "every " + s.Every
	}
	if s.Timezone != "" && s.Timezone != "UTC" {
		w += " (" + s.Timezone + ")"
	}
	return w
}

func (s *scheduleView) state() string {
	if s.Paused {
		return "paused"
	}
	return "active"
}

func schedulePath(idOrName, suffix string) string {
	return "/schedules/" + url.PathEscape(idOrName) + suffix
}

// NewCmdSchedule returns the `spool schedule` group.
func NewCmdSchedule(f *Factory) *cobra.Command {
	cmd := newGroup("schedule", "Start runs on a cron expression or an interval")
	cmd.Aliases = []string{"schedules"}
	cmd.Long = `Schedules start runs of a recipe on a cron expression (five fields, or six with
seconds first, or @daily, @hourly, @every 10m) in a time zone, or at a fixed interval. Each
tick starts exactly one run across all nodes. Recipes define schedules too
(runtime.schedules); those are named RECIPE:NAME and change with the recipe.`
	cmd.AddCommand(NewCmdScheduleAdd(f, nil), NewCmdScheduleList(f, nil), NewCmdScheduleShow(f, nil),
		newScheduleActionCmd(f, "pause", "Stop a schedule from firing", "/pause", "Paused"),
		newScheduleActionCmd(f, "resume", "Let a paused schedule fire again from its next tick", "/resume", "Resumed"),
		NewCmdScheduleRm(f, nil), NewCmdScheduleTrigger(f, nil))
	return cmd
}

// ScheduleAddOptions are the inputs of `spool schedule add`.
type ScheduleAddOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	Now    func() time.Time
	JSON   bool

	Name, Recipe                       string
	Cron, Every, Timezone              string
	Input, Config, Priority            string
	Catchup, Overlap, Agent, Workspace string
	Timeout, MaxRetries                int
	SetMaxRetries, Paused              bool
}

// NewCmdScheduleAdd returns `spool schedule add NAME RECIPE`.
func NewCmdScheduleAdd(f *Factory, runF func(*ScheduleAddOptions) error) *cobra.Command {
	opts := &ScheduleAddOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "add NAME RECIPE (--cron EXPR | --every DURATION)",
		Short: "Create a schedule",
		Long: `Create a schedule named NAME that starts runs of RECIPE. Give --cron (with --timezone
for wall-clock times in a zone) or --every. Ticks missed while no node was running follow
--catchup: none (the default: fire the latest only if at most a minute late), last, or all.
Piped, it prints the schedule's id.`,
		Example: `  spool schedule add nightly-digest digest --cron "30 2 * * *" --timezone Europe/Berlin
  spool schedule add poll-feeds fetch --every 5m --overlap skip --input '{"feed": "news"}'
  spool schedule add heartbeat ping --cron "*/10 * * * * *"`,
		Args: exactArgs(2, "NAME RECIPE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name, opts.Recipe = args[0], args[1]
			opts.JSON = f.JSON
			opts.SetMaxRetries = cmd.Flags().Changed("max-retries")
			if (opts.Cron == "") == (opts.Every == "") {
				return flagErrorf("give --cron or --every (one of them)")
			}
			if runF != nil {
				return runF(opts)
			}
			return scheduleAddRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Cron, "cron", "", "Cron expression: 5 fields, 6 with seconds first, or @daily, @hourly, @every 10m")
	fl.StringVar(&opts.Every, "every", "", "Interval such as 15m or 1h (counted from the Unix epoch)")
	fl.StringVar(&opts.Timezone, "timezone", "", "IANA time zone of the cron expression, such as Europe/Berlin (default UTC)")
	fl.StringVarP(&opts.Input, "input", "i", "", "Input of each run: JSON, @FILE, or - for standard input")
	fl.StringVarP(&opts.Config, "config", "c", "", "Config overrides of each run as a JSON object")
	fl.StringVarP(&opts.Priority, "priority", "p", "", "Priority of each run: urgent, high, normal or low")
	fl.StringVar(&opts.Catchup, "catchup", "", "Ticks missed while down: none, last or all (default none)")
	fl.StringVar(&opts.Overlap, "overlap", "", "allow, or skip a tick while the previous run is active (default allow)")
	fl.StringVar(&opts.Agent, "agent", "", "Concurrency group of each run (default: the recipe name)")
	fl.StringVarP(&opts.Workspace, "workspace", "w", "", "Workspace (default: default)")
	fl.IntVar(&opts.Timeout, "timeout", 0, "Timeout of one attempt in seconds (default: the recipe's, else the server's)")
	fl.IntVar(&opts.MaxRetries, "max-retries", 0, "Automatic retries after a retryable failure")
	fl.BoolVar(&opts.Paused, "paused", false, "Create the schedule paused")
	return cmd
}

// request builds the create body from the options.
func (opts *ScheduleAddOptions) request() (map[string]any, error) {
	body := map[string]any{"name": opts.Name, "recipe_name": opts.Recipe}
	set := func(k, v string) {
		if v != "" {
			body[k] = v
		}
	}
	set("cron", opts.Cron)
	set("every", opts.Every)
	set("timezone", opts.Timezone)
	set("catchup", opts.Catchup)
	set("overlap", opts.Overlap)
	set("agent", opts.Agent)
	set("workspace", opts.Workspace)
	if opts.Input != "" {
		in, err := readJSONArg(opts.IO.In, "input", opts.Input, true)
		if err != nil {
			return nil, err
		}
		body["input"] = in
	}
	if opts.Config != "" {
		cfg, err := readJSONArg(opts.IO.In, "config", opts.Config, false)
		if err != nil {
			return nil, err
		}
		var obj map[string]any
		if json.Unmarshal(cfg, &obj) != nil {
			return nil, flagErrorf("--config must be a JSON object")
		}
		body["config"] = cfg
	}
	if opts.Priority != "" {
		p, err := spool.ParsePriority(opts.Priority)
		if err != nil {
			return nil, &FlagError{Err: fmt.Errorf("--priority: %w", err)}
		}
		body["priority"] = p
	}
	if opts.Timeout < 0 {
		return nil, flagErrorf("--timeout must not be negative")
	}
	if opts.Timeout > 0 {
		body["timeout"] = opts.Timeout
	}
	if opts.SetMaxRetries {
		if opts.MaxRetries < 0 {
			return nil, flagErrorf("--max-retries must not be negative")
		}
		body["max_retries"] = opts.MaxRetries
	}
	if opts.Paused {
		body["paused"] = true
	}
	return body, nil
}

func scheduleAddRun(ctx context.Context, opts *ScheduleAddOptions) error {
	body, err := opts.request()
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var sc scheduleView
	raw, err := apiCall(ctx, c, http.MethodPost, "/schedules", body, &sc)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	ios := opts.IO
	if !ios.IsStdoutTTY() {
		fmt.Fprintln(ios.Out, sc.ID)
		return nil
	}
	cs := ios.ColorScheme()
	fmt.Fprintf(ios.Out, "%s Created schedule %s (%s): %s\n", cs.SuccessIcon(), cs.Bold(sc.Name), sc.ID, sc.when())
	if sc.NextAt != nil {
		fmt.Fprintf(ios.Out, "  next run %s (%s)\n", formatTime(ios, opts.Now(), sc.NextAt), sc.NextAt.Format(time.RFC3339))
	}
	return nil
}

// ScheduleListOptions are the inputs of `spool schedule ls`.
type ScheduleListOptions struct {
	IO        *iostreams.IOStreams
	Client    func() (*spool.Client, error)
	Now       func() time.Time
	JSON      bool
	Workspace string
}

// NewCmdScheduleList returns `spool schedule ls`.
func NewCmdScheduleList(f *Factory, runF func(*ScheduleListOptions) error) *cobra.Command {
	opts := &ScheduleListOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List schedules with their next run times",
		Long: `List the schedules with their timing, next and last run, and state. Piped: id, name,
recipe, timing, next run, last run, state, tab-separated, times in RFC 3339.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return scheduleListRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Workspace, "workspace", "w", "", "Only the schedules of this workspace")
	return cmd
}

func scheduleListRun(ctx context.Context, opts *ScheduleListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	path := "/schedules"
	if opts.Workspace != "" {
		path += "?workspace=" + url.QueryEscape(opts.Workspace)
	}
	var list struct {
		Schedules []*scheduleView `json:"schedules"`
	}
	raw, err := apiCall(ctx, c, http.MethodGet, path, nil, &list)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	ios := opts.IO
	tty := ios.IsStdoutTTY()
	if tty && len(list.Schedules) == 0 {
		fmt.Fprintln(ios.ErrOut, "No schedules. Add one with 'spool schedule add' or in a recipe's runtime.schedules.")
		return nil
	}
	cs := ios.ColorScheme()
	now := opts.Now()
	tp := tableprinter.New(ios.Out, tty, ios.TerminalWidth())
	tp.AddHeader(cs.Bold, "NAME", "RECIPE", "WHEN", "NEXT RUN", "LAST RUN", "STATE") // terminal only
	for _, s := range list.Schedules {
		if !tty {
			tp.AddField(s.ID)
		}
		tp.AddField(s.Name, tableprinter.WithColor(cs.Cyan))
		tp.AddField(s.Recipe)
		tp.AddField(s.when(), tableprinter.WithTruncate())
		tp.AddField(formatTime(ios, now, s.NextAt))
		tp.AddField(formatTime(ios, now, s.LastAt))
		state := s.state()
		if tty && s.Paused {
			tp.AddField(state, tableprinter.WithColor(cs.Yellow))
		} else {
			tp.AddField(state)
		}
		tp.EndRow()
	}
	return tp.Render()
}

// ScheduleShowOptions are the inputs of `spool schedule show`.
type ScheduleShowOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	Now    func() time.Time
	JSON   bool
	ID     string
}

// NewCmdScheduleShow returns `spool schedule show ID|NAME`.
func NewCmdScheduleShow(f *Factory, runF func(*ScheduleShowOptions) error) *cobra.Command {
	opts := &ScheduleShowOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	return &cobra.Command{
		Use:   "show ID|NAME",
		Short: "Show a schedule and its next run times",
		Args:  exactArgs(1, "ID|NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return scheduleShowRun(cmd.Context(), opts)
		},
	}
}

func scheduleShowRun(ctx context.Context, opts *ScheduleShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var sc scheduleView
	raw, err := apiCall(ctx, c, http.MethodGet, schedulePath(opts.ID, ""), nil, &sc)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	ios := opts.IO
	now := opts.Now()
	d := &detailPrinter{ios: ios}
	d.add("ID", sc.ID)
	d.add("Name", sc.Name)
	d.add("Recipe", sc.Recipe)
	d.add("Workspace", sc.Workspace)
	d.add("When", sc.when())
	d.add("State", sc.state())
	d.add("Source", sc.Source)
	d.add("Catchup", sc.Catchup)
	d.add("Overlap", sc.Overlap)
	if sc.Priority != nil {
		d.add("Priority", sc.Priority.String())
	}
	if sc.Agent != "" {
		d.add("Agent", sc.Agent)
	}
	if len(sc.Input) > 0 {
		d.add("Input", string(sc.Input))
	}
	d.add("Last run", formatTime(ios, now, sc.LastAt)+lastRunSuffix(&sc))
	next := make([]string, len(sc.NextRunTimes))
	for i, t := range sc.NextRunTimes {
		next[i] = t.UTC().Format(time.RFC3339)
		if ios.IsStdoutTTY() && sc.Timezone != "" {
			if loc, err := time.LoadLocation(sc.Timezone); err == nil {
				next[i] = t.In(loc).Format("2006-01-02 15:04:05 MST")
			}
		}
	}
	if len(next) == 0 {
		next = []string{"-"}
	}
	sep := ", "
	if ios.IsStdoutTTY() {
		width := len("Next runs") + 1 // the detail printer pads "Key:" to the longest key
		for _, k := range d.keys {
			width = max(width, len(k)+1)
		}
		sep = "\n" + strings.Repeat(" ", width+1)
	}
	d.add("Next runs", strings.Join(next, sep))
	d.render()
	return nil
}

func lastRunSuffix(sc *scheduleView) string {
	if sc.LastRunID == "" {
		return ""
	}
	return " (" + sc.LastRunID + ")"
}

// scheduleActionOptions are the inputs of `spool schedule pause|resume`.
type scheduleActionOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool
	ID     string
}

func newScheduleActionCmd(f *Factory, use, short, suffix, done string) *cobra.Command {
	opts := &scheduleActionOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   use + " ID|NAME",
		Short: short,
		Args:  exactArgs(1, "ID|NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			c, err := opts.Client()
			if err != nil {
				return err
			}
			var sc scheduleView
			raw, err := apiCall(cmd.Context(), c, http.MethodPost, schedulePath(opts.ID, suffix), nil, &sc)
			if err != nil {
				return err
			}
			if opts.JSON {
				return writeJSON(opts.IO, raw)
			}
			ios := opts.IO
			if !ios.IsStdoutTTY() {
				fmt.Fprintln(ios.Out, sc.ID)
				return nil
			}
			fmt.Fprintf(ios.Out, "%s %s schedule %s\n", ios.ColorScheme().SuccessIcon(), done, ios.ColorScheme().Bold(sc.Name))
			return nil
		},
	}
}

// ScheduleRmOptions are the inputs of `spool schedule rm`.
type ScheduleRmOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool
	ID     string
}

// NewCmdScheduleRm returns `spool schedule rm ID|NAME`.
func NewCmdScheduleRm(f *Factory, runF func(*ScheduleRmOptions) error) *cobra.Command {
	opts := &ScheduleRmOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:     "rm ID|NAME",
		Aliases: []string{"delete"},
		Short:   "Delete a schedule (the runs it started stay)",
		Long: `Delete a schedule. The runs it started stay. A recipe's schedule is deleted by removing
it from the recipe's runtime.schedules; pause it to stop it meanwhile.`,
		Args: exactArgs(1, "ID|NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			c, err := opts.Client()
			if err != nil {
				return err
			}
			if _, err := apiCall(cmd.Context(), c, http.MethodDelete, schedulePath(opts.ID, ""), nil, nil); err != nil {
				return err
			}
			ios := opts.IO
			switch {
			case opts.JSON:
				return writeJSON(ios, map[string]any{"id": opts.ID, "deleted": true})
			case ios.IsStdoutTTY():
				fmt.Fprintf(ios.Out, "%s Deleted schedule %s\n", ios.ColorScheme().SuccessIcon(), opts.ID)
			}
			return nil
		},
	}
}

// ScheduleTriggerOptions are the inputs of `spool schedule trigger`.
type ScheduleTriggerOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool
	ID     string
}

// NewCmdScheduleTrigger returns `spool schedule trigger ID|NAME`.
func NewCmdScheduleTrigger(f *Factory, runF func(*ScheduleTriggerOptions) error) *cobra.Command {
	opts := &ScheduleTriggerOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   "trigger ID|NAME",
		Short: "Start a run of the schedule now",
		Long: `Start a run of the schedule now, outside its ticks, even when it is paused. Piped, it
prints the run's id.`,
		Args: exactArgs(1, "ID|NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			c, err := opts.Client()
			if err != nil {
				return err
			}
			var run spool.Run
			raw, err := apiCall(cmd.Context(), c, http.MethodPost, schedulePath(opts.ID, "/trigger"), nil, &run)
			if err != nil {
				return err
			}
			ios := opts.IO
			switch {
			case opts.JSON:
				return writeJSON(ios, raw)
			case ios.IsStdoutTTY():
				fmt.Fprintf(ios.Out, "%s Started run %s\n", ios.ColorScheme().SuccessIcon(), ios.ColorScheme().Bold(run.ID))
			default:
				fmt.Fprintln(ios.Out, run.ID)
			}
			return nil
		},
	}
}
