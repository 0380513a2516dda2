package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// childServerFlag makes the bench binary serve as the `spool server` of the scale
// workload, so that its RSS is the server's alone.
const childServerFlag = "child-server"

// runChildServer serves the SQLite database at db with workers workers whose noop handler
// blocks until standard input closes: the server holds its workers busy, as a server
// facing a deep queue does, while it is measured. It prints its URL on standard output, and
// shuts down gracefully once standard input closes.
func runChildServer(db string, workers int) error {
	ctx := context.Background()
	gate := make(chan struct{})
	blocked := queue.HandlerFunc(func(ctx context.Context, _ *spool.Run) (any, error) {
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return nil, nil
	})
	srv, err := startServer(ctx, db, workers, blocked)
	if err != nil {
		return err
	}
	fmt.Println(srv.URL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	close(gate)
	return srv.Shutdown(ctx)
}

// scaleResult is what the scale workload measures (times in milliseconds, RSS in MB).
type scaleResult struct {
	queued      int
	prefill     float64 // runs/s of the SubmitMany prefill
	rssSettled  float64 // once the server holds its workers busy
	rssAfter    float64 // after the stats and list requests
	rssPeak     float64 // VmHWM at the end
	requests    map[string][]float64
	drains      []float64 // work rate at depth, runs/s, one per repetition
	emptyDrains []float64 // work rate of an empty queue, alternating with drains
}

// scaleRequests are the reads timed against the server holding the deep queue. The
// dashboard's runs page reads the same endpoint with page_size=50 and its filters.
var scaleRequests = []struct{ key, path string }{
	{"stats", "/api/v1/stats"},
	{"ls", "/api/v1/runs?page=1&page_size=20"},
	{"dash_first", "/api/v1/runs?page_size=50"},
	{"dash_queued_recipe", "/api/v1/runs?status=queued&recipe_name=noop&page_size=50"},
	{"dash_running", "/api/v1/runs?status=running&page_size=50"},
	{"dash_failed", "/api/v1/runs?status=failed&page_size=50"},
	{"dash_agent_none", "/api/v1/runs?agent=nobody&page_size=50"},
	{"dash_keyset", "/api/v1/runs?page_size=50&after={after}"},
}

// scale fills a SQLite database with queued runs, serves it from a child `spool server`
// process to time stats and list requests and read its RSS, then measures the work rate
// at that depth in this process, reps times (each drains drain runs).
func (s *spoolSystem) scale(ctx context.Context, b *backend, queued, drain, reps, samples int) (*scaleResult, error) {
	res := &scaleResult{queued: queued, requests: map[string][]float64{}}
	db, err := b.fresh(ctx, "spool")
	if err != nil {
		return nil, err
	}
	defer db.drop()

	e, err := s.newEngine(ctx, db, nil)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = submitNoops(ctx, e, queued, nil)
	res.prefill = rate(queued, time.Since(start))
	if serr := e.Stop(ctx); err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	progress("    prefilled %s runs at %s runs/s", commas(float64(queued)), commas(res.prefill))

	if err := s.measureServer(ctx, db.path, res, samples); err != nil {
		return nil, err
	}

	// The work rate at depth, alternating with the work rate of an empty queue.
	for rep := 0; rep < reps; rep++ {
		deep := func() error {
			c := newCompletionCounter(drain)
			e, err := s.newEngine(ctx, db, func(cfg *queue.Config) { cfg.OnComplete = c.onComplete })
			if err != nil {
				return err
			}
			r, err := s.timeDrain(ctx, b, e, c, "scale")
			if serr := e.Stop(ctx); err == nil {
				err = serr
			}
			if err != nil {
				return err
			}
			progress("    work rate at depth, rep %d/%d: %s runs/s", rep+1, reps, commas(r.rate))
			res.drains = append(res.drains, r.rate)
			return nil
		}
		empty := func() error {
			r, err := s.workRate(ctx, b, drain)
			if err != nil {
				return err
			}
			progress("    work rate of an empty queue, rep %d/%d: %s runs/s", rep+1, reps, commas(r.rate))
			res.emptyDrains = append(res.emptyDrains, r.rate)
			return nil
		}
		steps := []func() error{deep, empty}
		if rep%2 == 1 {
			steps[0], steps[1] = empty, deep
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// measureServer starts the child server on the database, waits until it holds its workers
// busy, then times the requests and reads the process's memory.
func (s *spoolSystem) measureServer(ctx context.Context, dbPath string, res *scaleResult, samples int) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the bench binary: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, "-"+childServerFlag, dbPath, "-workers", strconv.Itoa(s.workers))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the child server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("the child server did not start: %w", err)
	}
	base := strings.TrimSpace(line)
	hc := &http.Client{Timeout: time.Minute}

	// Wait until the server holds as many running runs as it has workers (or queued runs).
	want := int64(min(s.workers, res.queued))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var st spool.Stats
		if _, err := getJSON(ctx, hc, base+"/api/v1/stats", &st); err != nil {
			return err
		}
		if st.Running >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the child server runs %d runs after 2 minutes, want %d", st.Running, want)
		}
		time.Sleep(50 * time.Millisecond) // polling another process's state, with a deadline
	}
	time.Sleep(time.Second) // let start-up garbage be collected before reading RSS
	if res.rssSettled, err = readRSS(cmd.Process.Pid, "VmRSS"); err != nil {
		return err
	}

	var page struct {
		Jobs []struct {
			ID string `json:"job_id"`
		} `json:"jobs"`
	}
	if _, err := getJSON(ctx, hc, base+"/api/v1/runs?page_size=50", &page); err != nil {
		return err
	}
	after := ""
	if len(page.Jobs) > 0 {
		after = page.Jobs[len(page.Jobs)-1].ID
	}
	for _, r := range scaleRequests {
		path := strings.ReplaceAll(r.path, "{after}", url.QueryEscape(after))
		for range samples {
			d, err := getJSON(ctx, hc, base+path, nil)
			if err != nil {
				return err
			}
			res.requests[r.key] = append(res.requests[r.key], float64(d)/float64(time.Millisecond))
		}
		sorted := slices.Sorted(slices.Values(res.requests[r.key]))
		progress("    GET %s: median %.1f ms, max %.1f ms", path, median(sorted), sorted[len(sorted)-1])
	}
	if res.rssAfter, err = readRSS(cmd.Process.Pid, "VmRSS"); err != nil {
		return err
	}
	if res.rssPeak, err = readRSS(cmd.Process.Pid, "VmHWM"); err != nil {
		return err
	}
	progress("    server RSS: %.0f MB settled, %.0f MB after the requests, %.0f MB peak", res.rssSettled, res.rssAfter, res.rssPeak)
	return nil
}

// getJSON GETs u, decodes the answer into v when v is not nil, and returns the time from
// sending the request to having read the whole body.
func getJSON(ctx context.Context, hc *http.Client, u string, v any) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s: %.300s", u, resp.Status, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return 0, fmt.Errorf("GET %s: %w", u, err)
		}
	}
	return d, nil
}

// readRSS reads a memory field (VmRSS, VmHWM) of a process from /proc, in MB (10^6 bytes).
func readRSS(pid int, field string) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the server's memory: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %s %q: %w", field, rest, err)
		}
		return kb * 1024 / 1e6, nil
	}
	return 0, errors.New("no " + field + " in /proc/PID/status")
}
