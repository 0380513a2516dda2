package cli

import (
	"context"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// ResultOptions are the inputs of `spool result`.
type ResultOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool

	ID string
}

// NewCmdResult returns `spool result ID`.
func NewCmdResult(f *Factory, runF func(*ResultOptions) error) *cobra.Command {
	opts := &ResultOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "result ID",
		Short: "Print the result of a finished run",
		Long: `Print the result of a finished run: a string result as text, {"output": TEXT} as TEXT,
any other result as JSON. A failed or cancelled run prints its error on standard error
and exits with 1; a run still active is an API error (exit 4). --json prints the API's
result object.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return resultRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func resultRun(ctx context.Context, opts *ResultOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var res spool.RunResult
	raw, err := apiCall(ctx, c, http.MethodGet, runPath(opts.ID, "/result"), nil, &res)
	if err != nil {
		return err
	}
	if opts.JSON {
		if err := writeJSON(opts.IO, raw); err != nil {
			return err
		}
		if res.State != spool.StateSucceeded {
			return errRunFailed
		}
		return nil
	}
	if res.State != spool.StateSucceeded {
		msg := fmt.Sprintf("%s %s", res.ID, res.State)
		if res.Error != "" {
			msg += ": " + res.Error
		}
		if res.ErrorCode != "" && res.ErrorCode != spool.CodeCancelled {
			msg += " (" + res.ErrorCode + ")"
		}
		fmt.Fprintln(opts.IO.ErrOut, msg)
		return errRunFailed
	}
	printResult(opts.IO.Out, opts.IO, res.Result)
	return nil
}
