package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// Exit codes; docs/cli.md documents them.
const (
	ExitOK          = 0   // success
	ExitFailed      = 1   // the run failed or was cancelled (waiting commands); any other failure
	ExitUsage       = 2   // bad flag, bad arguments, unknown command
	ExitUnreachable = 3   // no server answered at --server / SPOOL_URL
	ExitAPI         = 4   // the server refused the request (not found, conflict, invalid, ...)
	ExitTimeout     = 5   // wait --timeout passed before the run finished
	ExitInterrupted = 130 // interrupted (Ctrl-C)
)

// FlagError is a usage error: a bad flag or bad arguments. It exits with ExitUsage.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// flagErrorf builds a FlagError.
func flagErrorf(format string, args ...any) error {
	return &FlagError{Err: fmt.Errorf(format, args...)}
}

// ExitError ends the command with Code; Err, when not nil, is printed first.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// errRunFailed ends a waiting command whose run failed or was cancelled; the outcome has
// already been printed.
var errRunFailed = &ExitError{Code: ExitFailed}

// jsonErrorPrinted marks an error already reported as a JSON document on stdout.
type jsonErrorPrinted struct{ err error }

func (e *jsonErrorPrinted) Error() string { return e.err.Error() }
func (e *jsonErrorPrinted) Unwrap() error { return e.err }

// isUsageError recognises cobra's own usage errors, which are plain errors.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command ", "unknown flag", "unknown shorthand flag", "required flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "too many arguments"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// ExitCode returns the exit code for err.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var exitErr *ExitError
	var flagErr *FlagError
	var connErr *spool.ConnectionError
	var apiErr *spool.Error
	switch {
	case errors.As(err, &exitErr):
		return exitErr.Code
	case errors.As(err, &flagErr), isUsageError(err):
		return ExitUsage
	case errors.As(err, &connErr):
		return ExitUnreachable
	case errors.As(err, &apiErr):
		return ExitAPI
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	}
	return ExitFailed
}

// printError writes err to w as one line (two for an unreachable server: the second says
// how to start one), followed by a usage hint for usage errors.
func printError(w io.Writer, ios *iostreams.IOStreams, cmd *cobra.Command, err error) {
	var jsonErr *jsonErrorPrinted
	if errors.As(err, &jsonErr) {
		return
	}
	var exitErr *ExitError
	if errors.As(err, &exitErr) && exitErr.Err == nil {
		return
	}
	cs := ios.ErrColorScheme()
	fmt.Fprintln(w, cs.Red("error:"), ErrorMessage(err))
	var connErr *spool.ConnectionError
	var apiErr *spool.Error
	switch {
	case errors.As(err, &connErr):
		fmt.Fprintf(w, "Is a Spool server running at %s? Start one with `spool server`, or point --server / SPOOL_URL at one.\n", connErr.URL)
	case errors.As(err, &apiErr) && apiErr.Code == spool.CodeUnauthorized:
		fmt.Fprintln(w, "Pass a token with --token or SPOOL_TOKEN.")
	case ExitCode(err) == ExitUsage && cmd != nil:
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
}

// ErrorMessage is err as one line for a person: an API error's detail (its code when there
// is no detail), a connection error's cause.
func ErrorMessage(err error) string {
	var connErr *spool.ConnectionError
	var apiErr *spool.Error
	switch {
	case errors.As(err, &connErr):
		return "cannot reach the Spool server at " + connErr.URL + ": " + rootCause(connErr.Err)
	case errors.As(err, &apiErr):
		msg := apiErr.Message
		if msg == "" {
			msg = apiErr.Error()
		}
		if len(apiErr.Fields) > 1 {
			var parts []string
			for _, f := range apiErr.Fields {
				parts = append(parts, f.Field+": "+f.Reason)
			}
			msg += " (" + strings.Join(parts, "; ") + ")"
		}
		return oneLine(msg)
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return oneLine(err.Error())
}

// rootCause returns the innermost error's text, which for a refused connection is
// "connect: connection refused".
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil || next.Error() == "" {
			return err.Error()
		}
		if !strings.Contains(err.Error(), next.Error()) {
			return err.Error()
		}
		err = next
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
