package cli

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// ClearOptions are the inputs of `spool clear`.
type ClearOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	All       bool
	OlderThan time.Duration
	Force     bool
}

// NewCmdClear returns `spool clear`.
func NewCmdClear(f *Factory, runF func(*ClearOptions) error) *cobra.Command {
	opts := &ClearOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "clear",
		Short: "Delete finished runs",
		Long: `Delete finished runs (succeeded, failed, cancelled), or only those older than
--older-than. With --all active runs are cancelled and deleted too, which asks for
confirmation on a terminal and needs --force otherwise.`,
		Example: `  spool clear --older-than 24h
  spool clear --all --force`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.JSON
			if opts.OlderThan < 0 {
				return flagErrorf("--older-than must not be negative")
			}
			if opts.All && !opts.Force && (!opts.IO.CanPrompt() || opts.JSON) {
				return flagErrorf("--all cancels and deletes active runs too: pass --force to confirm")
			}
			if runF != nil {
				return runF(opts)
			}
			return clearRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.All, "all", false, "Also cancel and delete active runs")
	cmd.Flags().DurationVar(&opts.OlderThan, "older-than", 0, "Only runs older than this (e.g. 24h, 30m)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "Do not ask for confirmation")
	return cmd
}

func clearRun(ctx context.Context, opts *ClearOptions) error {
	if opts.All && !opts.Force {
		ok, err := confirm(opts.IO, "Cancel and delete every run, active ones included?")
		if err != nil {
			return err
		}
		if !ok {
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("cancelled: nothing deleted")}
		}
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	n, raw, err := clearRuns(ctx, c, opts.All, opts.OlderThan)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	if opts.IO.IsStdoutTTY() {
		fmt.Fprintf(opts.IO.Out, "%s Deleted %d %s\n", opts.IO.ColorScheme().SuccessIcon(), n, plural(n, "run", "runs"))
	} else {
		fmt.Fprintln(opts.IO.Out, n)
	}
	return nil
}

// clearRuns asks the server to clear runs and returns how many it deleted, with its answer.
func clearRuns(ctx context.Context, c *spool.Client, all bool, olderThan time.Duration) (int64, []byte, error) {
	body := map[string]any{"all": all}
	if olderThan > 0 {
		body["older_than"] = olderThan.String()
	}
	var out struct {
		Deleted int64 `json:"deleted"`
	}
	raw, err := apiCall(ctx, c, http.MethodPost, "/runs/clear", body, &out)
	return out.Deleted, raw, err
}

// confirm asks a yes/no question on the terminal; the default is no.
func confirm(ios *iostreams.IOStreams, question string) (bool, error) {
	fmt.Fprintf(ios.ErrOut, "%s [y/N] ", question)
	line, err := bufio.NewReader(ios.In).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
