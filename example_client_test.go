package spool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/server"
)

// serverURL is the address of a running `spool server`, such as http://127.0.0.1:8005.
// TestMain starts one on loopback, serving the example recipes of recipes/.
var serverURL string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "spool-sdk-test-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(dir)

	cfg := server.DefaultConfig()
	cfg.Port = 0
	cfg.DB = filepath.Join(dir, "spool.db")
	cfg.Recipes = "recipes"
	cfg.UI = false
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.ShutdownGrace = time.Second
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		log.Printf("starting the test server: %v", err)
		return 1
	}
	serverURL = srv.URL()

	code := m.Run()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Printf("stopping the test server: %v", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			log.Printf("goroutines left running: %v", err)
			code = 1
		}
	}
	return code
}

// Submit a run, wait for it to finish and read its result.
func Example() {
	ctx := context.Background()
	client := spool.NewClient(serverURL)
	defer client.Close()

	job, err := client.Submit(ctx, &spool.SubmitRequest{
		Recipe: "echo",
		Input:  json.RawMessage(`{"hello": "world"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	run, err := job.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	var result struct{ Hello string }
	if err := json.Unmarshal(run.Result, &result); err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.State)
	fmt.Println("hello", result.Hello)
	// Output:
	// succeeded
	// hello world
}

// Stream a run's output and progress while it runs. The iterator ends after the run's
// terminal event, and resumes by itself if the connection drops.
func ExampleJob_Events() {
	ctx := context.Background()
	client := spool.NewClient(serverURL)
	defer client.Close()

	job, err := client.Submit(ctx, &spool.SubmitRequest{
		Recipe: "countdown",
		Input:  json.RawMessage(`{"n": 3, "delay": 0}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	var lastProgress float64
	for ev, err := range job.Events(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Type {
		case spool.EventOutput:
			fmt.Print(ev.Text)
		case spool.EventProgress:
			lastProgress = ev.Progress.Percentage
		case spool.EventResult:
			fmt.Printf("progress %.0f%%, result %s\n", lastProgress, compact(ev.Result))
		}
	}
	// Output:
	// 3
	// 2
	// 1
	// liftoff
	// progress 100%, result {"counted":3}
}

// Cancel a running run. Cancelling it again, once it has finished, has no effect and is not
// an error.
func ExampleJob_Cancel() {
	ctx := context.Background()
	client := spool.NewClient(serverURL)
	defer client.Close()

	job, err := client.Submit(ctx, &spool.SubmitRequest{
		Recipe: "sleep",
		Input:  json.RawMessage(`{"seconds": 60}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := job.Cancel(ctx); err != nil {
		log.Fatal(err)
	}
	run, err := job.Wait(ctx, spool.WaitTimeout(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.State)
	fmt.Println("cancel again:", job.Cancel(ctx))
	// Output:
	// cancelled
	// cancel again: <nil>
}

// Errors from the server are *spool.Error values with a stable code; errors.Is matches
// them against the sentinels.
func ExampleClient_Get_notFound() {
	client := spool.NewClient(serverURL)
	defer client.Close()

	_, err := client.Get(context.Background(), "run_does_not_exist")
	fmt.Println(errors.Is(err, spool.ErrNotFound))
	var e *spool.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code)
	}
	// Output:
	// true
	// not_found
}

// A repeated idempotency key returns the run it first created.
func ExampleClient_Submit_idempotency() {
	ctx := context.Background()
	client := spool.NewClient(serverURL)
	defer client.Close()

	req := &spool.SubmitRequest{Recipe: "echo", Input: json.RawMessage(`"once"`), IdempotencyKey: "order-42"}
	first, err := client.Submit(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	second, err := client.Submit(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(first.ID == second.ID, first.Existing, second.Existing)
	// Output:
	// true false true
}

// The result of a finished run, with its metrics.
func ExampleJob_Result() {
	ctx := context.Background()
	client := spool.NewClient(serverURL)
	defer client.Close()

	job, err := client.Submit(ctx, &spool.SubmitRequest{Recipe: "echo", Input: json.RawMessage(`[1, 2, 3]`)})
	if err != nil {
		log.Fatal(err)
	}
	// Until the run has finished, Result is an error matching spool.ErrConflict.
	if _, err := job.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	res, err := job.Result(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.State, compact(res.Result), "attempt", res.Metrics.Attempt)
	// Output:
	// succeeded [1,2,3] attempt 1
}

// compact removes the insignificant space of a JSON value.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}
