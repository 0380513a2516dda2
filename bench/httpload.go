package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spool-run/spool/internal/server"
	"github.com/spool-run/spool/queue"
)

// startServer starts the real `spool server` (package internal/server) in this process on a
// free loopback port, with the noop recipe as a Go handler and no recipe directory.
func startServer(ctx context.Context, db string, workers int, handler queue.Handler) (*server.Server, error) {
	cfg := server.DefaultConfig()
	cfg.Port = 0
	cfg.DB = db
	cfg.MaxConcurrent = workers
	cfg.MaxQueueSize = 0 // unlimited
	cfg.Retention = 0    // keep runs: nothing is swept while measuring
	cfg.UI = true
	cfg.NoRecipeDir = true
	cfg.GoRecipes = []*queue.Recipe{{Name: "noop", Handler: handler}}
	cfg.Logger = discardLogger()
	s, err := server.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("starting spool server: %w", err)
	}
	return s, nil
}

// httpResult is one run of the HTTP submit workload.
type httpResult struct {
	rate    float64 // submits per second
	streams int     // SSE streams that ended with the run's result
}

// httpSubmit has clients goroutines POST n noop runs to /api/v1/runs over loopback, each
// waiting for its answer before the next. With ssePer > 0, every ssePer-th run also gets an
// SSE stream (GET /api/v1/runs/{id}/stream) read to its end in the background. The rate
// counts from the first submit to the last answer.
func (s *spoolSystem) httpSubmit(ctx context.Context, b *backend, n, clients, ssePer int) (httpResult, error) {
	db, err := b.fresh(ctx, "spool")
	if err != nil {
		return httpResult{}, err
	}
	defer db.drop()
	srv, err := startServer(ctx, db.spoolDB(), s.workers, queue.HandlerFunc(noop))
	if err != nil {
		return httpResult{}, err
	}
	defer srv.Shutdown(context.WithoutCancel(ctx))
	if err := db.settle(ctx); err != nil {
		return httpResult{}, err
	}
	hc := &http.Client{
		Transport: &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: clients + n/max(ssePer, 1) + 1},
		Timeout:   time.Minute,
	}
	defer hc.CloseIdleConnections()
	base := srv.URL()

	var (
		next, okStreams atomic.Int64
		streams         sync.WaitGroup
		errOnce         sync.Once
		firstErr        error
		submitters      sync.WaitGroup
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	body := []byte(`{"recipe_name":"noop"}`)
	if b.waits && b.kind == postgresBackend {
		w := b.startWaitSampler(ctx, spoolAppName, 10*time.Millisecond)
		defer w.stop("Spool's HTTP submits")
	}
	start := time.Now()
	for range clients {
		submitters.Add(1)
		go func() {
			defer submitters.Done()
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				id, err := postRun(ctx, hc, base, body)
				if err != nil {
					fail(err)
					return
				}
				if ssePer > 0 && i%int64(ssePer) == 0 {
					streams.Add(1)
					go func() {
						defer streams.Done()
						if err := readStream(ctx, hc, base, id); err != nil {
							fail(err)
							return
						}
						okStreams.Add(1)
					}()
				}
			}
		}()
	}
	submitters.Wait()
	elapsed := time.Since(start)
	streams.Wait()
	if firstErr != nil {
		return httpResult{}, firstErr
	}
	return httpResult{rate: rate(n, elapsed), streams: int(okStreams.Load())}, nil
}

func postRun(ctx context.Context, hc *http.Client, base string, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/runs", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("POST /api/v1/runs: %w", err)
	}
	defer resp.Body.Close()
	var v struct {
		ID string `json:"job_id"`
	}
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("POST /api/v1/runs: %s: %s", resp.Status, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.ID == "" {
		return "", fmt.Errorf("POST /api/v1/runs: no job_id in the answer (%v)", err)
	}
	return v.ID, nil
}

// readStream reads a run's SSE stream to its end and checks that it carried the result.
func readStream(ctx context.Context, hc *http.Client, base, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/runs/"+id+"/stream", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("stream of %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stream of %s: %s", id, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	var types []string
	for sc.Scan() {
		if t, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "event:"); ok {
			types = append(types, strings.TrimSpace(t))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("stream of %s: %w", id, err)
	}
	if !slices.Contains(types, "result") {
		state := "unknown"
		var run struct {
			Status string `json:"status"`
		}
		if _, err := getJSON(ctx, hc, base+"/api/v1/runs/"+id, &run); err == nil {
			state = run.Status
		}
		return fmt.Errorf("stream of %s ended without the run's result: it carried events %v; the run is now %s", id, types, state)
	}
	return nil
}
