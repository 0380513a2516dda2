package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// SubmitOptions are the inputs of `spool submit`.
type SubmitOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	Recipe           string
	Input            string
	Config           string
	Priority         string
	Agent            string
	Workspace        string
	SessionID        string
	Timeout          int
	MaxRetries       int
	SetMaxRetries    bool
	IdempotencyKey   string
	IdempotencyScope string
	WebhookURL       string
	Delay            time.Duration
	RunAt            string
	Wait             bool
	Follow           bool
}

// NewCmdSubmit returns `spool submit RECIPE`.
func NewCmdSubmit(f *Factory, runF func(*SubmitOptions) error) *cobra.Command {
	opts := &SubmitOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "submit RECIPE",
		Short: "Submit a run of a recipe",
		Long: `Submit a run of RECIPE and print its id.

--input takes JSON, @FILE to read it from a file, or - to read standard input; text that
is not JSON is sent as a JSON string. With --wait the command waits for the run to finish
and prints its result; with --follow it streams the run's output as it is produced. Both
exit with 1 when the run fails or is cancelled.`,
		Example: `  spool submit echo --input '{"text": "hello"}'
  spool submit summarize --input @article.json --priority high --wait
  ID=$(spool submit countdown --input 5) && spool logs -f "$ID"`,
		Args: exactArgs(1, "RECIPE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Recipe = args[0]
			opts.JSON = f.JSON
			opts.SetMaxRetries = cmd.Flags().Changed("max-retries")
			if opts.Wait && opts.Follow {
				return flagErrorf("--wait and --follow cannot be used together")
			}
			if runF != nil {
				return runF(opts)
			}
			return submitRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Input, "input", "i", "", "Input: JSON, @FILE, or - for standard input")
	fl.StringVarP(&opts.Config, "config", "c", "", "Config overrides as a JSON object")
	fl.StringVarP(&opts.Priority, "priority", "p", "", "Priority: urgent, high, normal or low")
	fl.StringVar(&opts.Agent, "agent", "", "Concurrency group (default: the recipe name)")
	fl.StringVarP(&opts.Workspace, "workspace", "w", "", "Workspace (default: default)")
	fl.StringVarP(&opts.SessionID, "session-id", "s", "", "Session: runs of one session execute one at a time, in order")
	fl.IntVar(&opts.Timeout, "timeout", 0, "Timeout of one attempt in seconds (default: the recipe's, else the server's)")
	fl.IntVar(&opts.MaxRetries, "max-retries", 0, "Automatic retries after a retryable failure")
	fl.StringVar(&opts.IdempotencyKey, "idempotency-key", "", "Submitting the same key again returns the existing run")
	fl.StringVar(&opts.IdempotencyScope, "idempotency-scope", "", "Scope of the key: global, session or none")
	fl.StringVar(&opts.WebhookURL, "webhook-url", "", "URL to POST the outcome to")
	fl.DurationVar(&opts.Delay, "delay", 0, "Start no sooner than this from now (e.g. 90s, 5m)")
	fl.StringVar(&opts.RunAt, "run-at", "", "Start no sooner than this time (RFC 3339)")
	fl.DurationVar(&opts.Delay, "in", 0, "Same as --delay")
	fl.StringVar(&opts.RunAt, "at", "", "Same as --run-at")
	fl.BoolVar(&opts.Wait, "wait", false, "Wait for the run to finish and print its result")
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "Stream the run's output until it finishes")
	return cmd
}

// request builds the submit request from the options.
func (opts *SubmitOptions) request() (*spool.SubmitRequest, error) {
	req := &spool.SubmitRequest{
		Recipe:           opts.Recipe,
		Agent:            opts.Agent,
		Workspace:        opts.Workspace,
		SessionID:        opts.SessionID,
		TimeoutSec:       opts.Timeout,
		IdempotencyKey:   opts.IdempotencyKey,
		IdempotencyScope: opts.IdempotencyScope,
		WebhookURL:       opts.WebhookURL,
		Delay:            spool.Duration(opts.Delay),
	}
	if opts.Input != "" {
		in, err := readJSONArg(opts.IO.In, "input", opts.Input, true)
		if err != nil {
			return nil, err
		}
		req.Input = in
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
		req.Config = cfg
	}
	if opts.Priority != "" {
		p, err := spool.ParsePriority(opts.Priority)
		if err != nil {
			return nil, &FlagError{Err: fmt.Errorf("--priority: %w", err)}
		}
		req.Priority = &p
	}
	if opts.Timeout < 0 {
		return nil, flagErrorf("--timeout must not be negative")
	}
	if opts.SetMaxRetries {
		if opts.MaxRetries < 0 {
			return nil, flagErrorf("--max-retries must not be negative")
		}
		n := opts.MaxRetries
		req.MaxRetries = &n
	}
	if opts.RunAt != "" {
		t, err := time.Parse(time.RFC3339, opts.RunAt)
		if err != nil {
			return nil, flagErrorf("--run-at must be an RFC 3339 time such as 2025-01-02T15:04:05Z: %v", err)
		}
		req.RunAt = &t
	}
	return req, nil
}

func submitRun(ctx context.Context, opts *SubmitOptions) error {
	req, err := opts.request()
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var run spool.Run
	raw, err := apiCall(ctx, c, http.MethodPost, "/runs", req, &run)
	if err != nil {
		return err
	}
	ios := opts.IO
	switch {
	case opts.Follow:
		if !opts.JSON && ios.IsStderrTTY() {
			fmt.Fprintf(ios.ErrOut, "%s Submitted %s (%s)\n", ios.ErrColorScheme().SuccessIcon(), run.ID, run.Recipe)
		}
		final, sawOutput, err := followRun(ctx, ios, c, run.ID, opts.JSON)
		if err != nil {
			return err
		}
		if opts.JSON {
			return jsonOutcome(final)
		}
		return reportOutcome(ios, final, !sawOutput)
	case opts.Wait:
		if !opts.JSON && ios.IsStderrTTY() {
			fmt.Fprintf(ios.ErrOut, "%s Submitted %s (%s)\n", ios.ErrColorScheme().SuccessIcon(), run.ID, run.Recipe)
		}
		final, err := waitForRun(ctx, ios, c, run.ID, 0)
		if err != nil {
			return err
		}
		return finish(ctx, ios, c, final, opts.JSON, true)
	case opts.JSON:
		return writeJSON(ios, raw)
	case ios.IsStdoutTTY():
		cs := ios.ColorScheme()
		fmt.Fprintf(ios.Out, "%s Submitted %s (%s, %s)\n", cs.SuccessIcon(), cs.Bold(run.ID), run.Recipe, stateLabel(ios, run.State))
		fmt.Fprintf(ios.Out, "  Status: spool status %s\n  Output: spool logs -f %s\n", run.ID, run.ID)
	default:
		fmt.Fprintln(ios.Out, run.ID)
	}
	return nil
}

// jsonOutcome maps a finished run to the exit status of a --json follow.
func jsonOutcome(run *spool.Run) error {
	if run.State == spool.StateFailed || run.State == spool.StateCancelled {
		return errRunFailed
	}
	return nil
}
