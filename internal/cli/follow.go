package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/cli/text"
)

// waitForRun waits until run id has finished and returns it. On a terminal it shows a
// spinner, and a progress bar fed by the run's progress events. timeout 0 waits for ever;
// when it passes the error is an ExitError with ExitTimeout.
func waitForRun(ctx context.Context, ios *iostreams.IOStreams, c *spool.Client, id string, timeout time.Duration) (*spool.Run, error) {
	p := ios.StartProgress("waiting for " + id)
	defer p.Stop()

	var wg sync.WaitGroup
	watchCtx, stopWatch := context.WithCancel(ctx)
	if ios.IsStderrTTY() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev, err := range c.Stream(watchCtx, id, 0) {
				if err != nil {
					return // the spinner goes on; Wait reports what matters
				}
				showEvent(p, id, ev)
			}
		}()
	}
	defer func() {
		stopWatch()
		wg.Wait()
	}()

	var opts []spool.WaitOption
	if timeout > 0 {
		opts = append(opts, spool.WaitTimeout(timeout))
	}
	run, err := c.Wait(ctx, id, opts...)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		state := "still active"
		if run != nil {
			state = "still " + string(run.State)
		}
		return run, &ExitError{Code: ExitTimeout, Err: fmt.Errorf("run %s is %s after %s", id, state, timeout)}
	}
	return run, err
}

// showEvent updates the status line from one event.
func showEvent(p *iostreams.Progress, id string, ev *spool.Event) {
	switch ev.Type {
	case spool.EventProgress:
		if ev.Progress != nil {
			p.SetPercent(ev.Progress.Percentage, ev.Progress.CurrentStep)
		}
	case spool.EventStatus:
		if ev.Status != "" {
			p.SetLabel(id + " " + string(ev.Status))
		}
	}
}

// followRun streams run id's output (stdout) and logs (stderr) until it finishes, with a
// status line on a terminal, and returns the finished run and whether any output came. With
// asJSON it prints each event as one line of JSON instead.
func followRun(ctx context.Context, ios *iostreams.IOStreams, c *spool.Client, id string, asJSON bool) (*spool.Run, bool, error) {
	var p *iostreams.Progress
	if !asJSON {
		p = ios.StartProgress(id + " waiting")
		defer p.Stop()
	}
	sawOutput := false
	for ev, err := range c.Stream(ctx, id, 0) {
		if err != nil {
			return nil, sawOutput, err
		}
		if asJSON {
			b, err := json.Marshal(ev)
			if err != nil {
				return nil, sawOutput, err
			}
			if _, err := ios.Out.Write(append(b, '\n')); err != nil {
				return nil, sawOutput, err
			}
			continue
		}
		switch ev.Type {
		case spool.EventOutput:
			sawOutput = sawOutput || ev.Text != ""
			if err := p.Write(ios.Out, []byte(ev.Text)); err != nil {
				return nil, sawOutput, err
			}
		case spool.EventLog:
			p.Write(ios.ErrOut, []byte(ev.Text))
		default:
			showEvent(p, id, ev)
		}
	}
	if p != nil {
		p.Stop()
	}
	run, err := c.Get(ctx, id)
	return run, sawOutput, err
}

// reportOutcome tells how a finished run ended, on standard error: a line with its icon on a
// terminal; only failures when piped. With showResult it prints the result (or nothing for
// a failure) on standard output. A failed or cancelled run returns errRunFailed.
func reportOutcome(ios *iostreams.IOStreams, run *spool.Run, showResult bool) error {
	cs := ios.ErrColorScheme()
	w := ios.ErrOut
	dur := ""
	if d := run.DurationSeconds(time.Now()); d != nil {
		dur = text.Duration(*d)
	}
	switch run.State {
	case spool.StateSucceeded:
		if ios.IsStderrTTY() {
			msg := fmt.Sprintf("%s %s %s", stateIcon(run.State), run.ID, cs.Green("succeeded"))
			if dur != "" {
				msg += " in " + dur
			}
			fmt.Fprintln(w, msg)
		}
		if showResult {
			printResult(ios.Out, ios, run.Result)
		}
		return nil
	case spool.StateFailed, spool.StateCancelled:
		msg := run.ID + " " + string(run.State)
		if ios.IsStderrTTY() {
			msg = stateIcon(run.State) + " " + run.ID + " " + stateColor(cs, run.State)(string(run.State))
		}
		if dur != "" {
			msg += " after " + dur
		}
		if run.Error != "" {
			msg += ": " + run.Error
		}
		if run.ErrorCode != "" && run.ErrorCode != spool.CodeCancelled {
			msg += " (" + run.ErrorCode + ")"
		}
		fmt.Fprintln(w, msg)
		return errRunFailed
	}
	fmt.Fprintf(w, "%s is %s\n", run.ID, run.State)
	return nil
}

// finish prints a finished run as --json wants it (the run object, fetched again so that it
// is the server's verbatim) or as reportOutcome does.
func finish(ctx context.Context, ios *iostreams.IOStreams, c *spool.Client, run *spool.Run, asJSON, showResult bool) error {
	if asJSON {
		_, raw, err := getRun(ctx, c, run.ID)
		if err != nil {
			return err
		}
		if err := writeJSON(ios, raw); err != nil {
			return err
		}
		if run.State == spool.StateFailed || run.State == spool.StateCancelled {
			return errRunFailed
		}
		return nil
	}
	return reportOutcome(ios, run, showResult)
}
