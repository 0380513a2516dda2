package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Application names the systems' PostgreSQL connections carry, so that pg_stat_activity
// tells them apart from other users of the server.
const (
	spoolAppName = "spool-bench"
	riverAppName = "river-bench"
)

// waitSampler is a poor man's profile of the PostgreSQL server: it samples what the
// connections of one application are doing (pg_stat_activity: state, wait event, query) and
// counts each combination.
type waitSampler struct {
	counts  map[string]int
	samples int
	cancel  context.CancelFunc
	done    chan struct{}
}

// startWaitSampler samples the connections named app every interval until stop.
func (b *backend) startWaitSampler(ctx context.Context, app string, interval time.Duration) *waitSampler {
	ctx, cancel := context.WithCancel(ctx)
	w := &waitSampler{counts: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rows, err := b.admin.Query(ctx, `SELECT state, coalesce(wait_event_type, ''), coalesce(wait_event, ''),
				left(regexp_replace(query, '\s+', ' ', 'g'), 70)
				FROM pg_stat_activity WHERE application_name = $1`, app)
			if err != nil {
				continue
			}
			w.samples++
			for rows.Next() {
				var state, wtype, wevent, query string
				if rows.Scan(&state, &wtype, &wevent, &query) != nil {
					continue
				}
				key := "idle: waiting for the client"
				if state != "idle" {
					ev := "on CPU"
					if wtype != "" {
						ev = wtype + ":" + wevent
					}
					key = fmt.Sprintf("%s, %s | %s", state, ev, query)
				}
				w.counts[key]++
			}
			rows.Close()
		}
	}()
	return w
}

// stop ends the sampling and writes the most frequent states, as the average number of
// connections in each.
func (w *waitSampler) stop(title string) {
	w.cancel()
	<-w.done
	if w.samples == 0 {
		return
	}
	keys := slices.SortedFunc(maps.Keys(w.counts), func(a, b string) int { return cmp.Compare(w.counts[b], w.counts[a]) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "    pg_stat_activity of %s, %d samples (average connections in each state):\n", title, w.samples)
	for i, k := range keys {
		if i == 15 {
			break
		}
		fmt.Fprintf(&sb, "      %5.2f  %s\n", float64(w.counts[k])/float64(w.samples), k)
	}
	progress("%s", strings.TrimRight(sb.String(), "\n"))
}
