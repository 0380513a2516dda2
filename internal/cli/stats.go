package cli

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/cli/tableprinter"
	"github.com/spool-run/spool/internal/cli/text"
)

// StatsOptions are the inputs of `spool stats`.
type StatsOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*spool.Client, error)
	JSON   bool
}

// NewCmdStats returns `spool stats`.
func NewCmdStats(f *Factory, runF func(*StatsOptions) error) *cobra.Command {
	opts := &StatsOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:   "stats",
		Short: "Show queue statistics",
		Long: `Show how many runs are in each state, the average wait and duration, the queued runs by
priority and the concurrency limits. Piped, each line is "key<TAB>value".`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JSON = f.JSON
			if runF != nil {
				return runF(opts)
			}
			return statsRun(cmd.Context(), opts)
		},
	}
}

func statsRun(ctx context.Context, opts *StatsOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var st statsBody
	raw, err := apiCall(ctx, c, http.MethodGet, "/stats", nil, &st)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.IO, raw)
	}
	printStats(opts.IO, &st)
	return nil
}

// statsBody is the answer of GET /api/v1/stats: the run statistics and the runs waiting on
// rate limits (absent from older servers and with a workspace filter).
type statsBody struct {
	spool.Stats
	RateLimited       *int64     `json:"rate_limited_count"`
	RateLimitedNextAt *time.Time `json:"rate_limited_next_at"`
}

func printStats(ios *iostreams.IOStreams, body *statsBody) {
	st := &body.Stats
	tty := ios.IsStdoutTTY()
	cs := ios.ColorScheme()
	counts := []struct {
		state spool.State
		n     int64
	}{
		{spool.StateQueued, st.Queued}, {spool.StateScheduled, st.Scheduled}, {spool.StateRunning, st.Running},
		{spool.StatePaused, st.Paused}, {spool.StateSucceeded, st.Succeeded}, {spool.StateFailed, st.Failed},
		{spool.StateCancelled, st.Cancelled},
	}
	tp := tableprinter.New(ios.Out, tty, ios.TerminalWidth())
	for _, c := range counts {
		addStateField(tp, ios, c.state)
		tp.AddField(strconv.FormatInt(c.n, 10))
		tp.EndRow()
	}
	tp.AddField("total", tableprinter.WithColor(cs.Bold))
	tp.AddField(strconv.FormatInt(st.Total, 10))
	tp.EndRow()
	if tty {
		tp.AddField("avg wait")
		tp.AddField(text.Duration(st.AvgWaitSeconds))
		tp.EndRow()
		tp.AddField("avg duration")
		tp.AddField(text.Duration(st.AvgDurationSeconds))
		tp.EndRow()
	} else {
		tp.AddField("avg_wait_seconds")
		tp.AddField(strconv.FormatFloat(st.AvgWaitSeconds, 'f', 3, 64))
		tp.EndRow()
		tp.AddField("avg_duration_seconds")
		tp.AddField(strconv.FormatFloat(st.AvgDurationSeconds, 'f', 3, 64))
		tp.EndRow()
	}
	for _, p := range []string{"urgent", "high", "normal", "low"} {
		if tty {
			tp.AddField("queued " + p)
		} else {
			tp.AddField("queued_" + p)
		}
		tp.AddField(strconv.FormatInt(st.QueuedByPriority[p], 10))
		tp.EndRow()
	}
	limit := func(n int) string {
		if n <= 0 {
			return "unlimited"
		}
		return strconv.Itoa(n)
	}
	for _, l := range []struct {
		key, label string
		n          int
	}{
		{"max_concurrent", "max concurrent", st.Limits.Global},
		{"max_per_agent", "max per agent", st.Limits.PerAgent},
		{"max_per_workspace", "max per workspace", st.Limits.PerWorkspace},
	} {
		if tty {
			tp.AddField(l.label)
		} else {
			tp.AddField(l.key)
		}
		tp.AddField(limit(l.n))
		tp.EndRow()
	}
	if len(st.Limits.Agents) > 0 {
		names := make([]string, 0, len(st.Limits.Agents))
		for a := range st.Limits.Agents {
			names = append(names, a)
		}
		sort.Strings(names)
		var parts []string
		for _, a := range names {
			parts = append(parts, fmt.Sprintf("%s=%d", a, st.Limits.Agents[a]))
		}
		if tty {
			tp.AddField("agent limits")
		} else {
			tp.AddField("agent_limits")
		}
		tp.AddField(strings.Join(parts, ","))
		tp.EndRow()
	}
	if body.RateLimited != nil {
		next := "-"
		if t := body.RateLimitedNextAt; t != nil {
			next = t.UTC().Format(time.RFC3339)
			if tty {
				next = text.RelativeTime(time.Now(), *t)
			}
		}
		if tty {
			tp.AddField("rate limited")
			tp.AddField(fmt.Sprintf("%d (next start %s)", *body.RateLimited, next))
			tp.EndRow()
		} else {
			tp.AddField("rate_limited")
			tp.AddField(strconv.FormatInt(*body.RateLimited, 10))
			tp.EndRow()
			tp.AddField("rate_limited_next_at")
			tp.AddField(next)
			tp.EndRow()
		}
	}
	tp.Render()
}
