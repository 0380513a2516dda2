package background_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/spool-run/spool/background"
)

// The seed's quick start: a runner for at most three tasks at once, one task submitted, then
// waited for.
func Example() {
	ctx := context.Background()

	// Create a runner with its config.
	runner := background.NewRunner(background.Config{MaxConcurrentTasks: 3})
	defer runner.Stop(ctx)

	// Define a task.
	myTask := func(name string) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			select {
			case <-time.After(20 * time.Millisecond): // the work
			case <-ctx.Done():
				return "", ctx.Err()
			}
			return fmt.Sprintf("Task %s completed", name), nil
		}
	}

	// Submit it.
	task, err := background.Submit(ctx, runner, myTask("example"), background.Name("my_task"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("Submitted:", task.Name())

	// Wait for completion, for at most 10 seconds.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	result, err := task.Wait(waitCtx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("Result:", result) // result is a string: Submit is generic
	// Output:
	// Submitted: my_task
	// Result: Task example completed
}

// The seed's task management: list all tasks, the running ones and the pending ones, then
// clear the finished ones.
func ExampleRunner_Tasks() {
	ctx := context.Background()
	runner := background.NewRunner(background.Config{MaxConcurrentTasks: 1})
	defer runner.Stop(ctx)

	release := make(chan struct{})
	for _, name := range []string{"fetch", "summarize", "publish"} {
		_, err := background.Submit(ctx, runner, func(ctx context.Context) (string, error) {
			<-release
			return name + " done", nil
		}, background.Name(name))
		if err != nil {
			log.Fatal(err)
		}
	}

	// List all tasks.
	for _, task := range runner.Tasks() {
		fmt.Printf("%s: %s\n", task.Name(), task.Status())
	}
	// Get running and pending tasks.
	fmt.Println("running:", len(runner.Running()), "pending:", len(runner.Pending()))

	close(release)
	for _, task := range runner.Tasks() {
		<-task.Done()
	}
	// Clear completed tasks.
	fmt.Println("cleared:", runner.ClearCompleted(), "left:", len(runner.Tasks()))
	// Output:
	// fetch: running
	// summarize: pending
	// publish: pending
	// running: 1 pending: 2
	// cleared: 3 left: 0
}

// The seed's status check.
func ExampleTask_Status() {
	ctx := context.Background()
	runner := background.NewRunner(background.Config{})
	defer runner.Stop(ctx)

	task, err := background.Submit(ctx, runner, func(ctx context.Context) (int, error) {
		return 0, errors.New("no data for this week")
	})
	if err != nil {
		log.Fatal(err)
	}
	<-task.Done()

	switch task.Status() {
	case background.StatusCompleted:
		fmt.Println("Result:", task.Result())
	case background.StatusFailed:
		fmt.Println("Error:", task.Err())
	case background.StatusRunning:
		fmt.Println("Still running...")
	}
	// Output:
	// Error: no data for this week
}

// A task's function reports its progress; anyone holding the task reads it.
func ExampleReportProgress() {
	ctx := context.Background()
	runner := background.NewRunner(background.Config{})
	defer runner.Stop(ctx)

	halfway, finish := make(chan struct{}), make(chan struct{})
	task, err := background.Submit(ctx, runner, func(ctx context.Context) (int, error) {
		background.ReportProgress(ctx, 50, "indexed 5 of 10 files")
		close(halfway)
		<-finish
		return 10, nil
	})
	if err != nil {
		log.Fatal(err)
	}

	<-halfway
	p := task.Progress()
	fmt.Printf("%.0f%% %s\n", p.Percent, p.Message)

	close(finish)
	if _, err := task.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.0f%%\n", task.Progress().Percent)
	// Output:
	// 50% indexed 5 of 10 files
	// 100%
}

// Cancel ends a running task at once and cancels its context.
func ExampleTask_Cancel() {
	ctx := context.Background()
	runner := background.NewRunner(background.Config{})
	defer runner.Stop(ctx)

	started := make(chan struct{})
	task, err := background.Submit(ctx, runner, func(ctx context.Context) (string, error) {
		close(started)
		<-ctx.Done() // a long job that honours its context
		return "", ctx.Err()
	})
	if err != nil {
		log.Fatal(err)
	}

	<-started
	task.Cancel()
	_, err = task.Wait(ctx)
	fmt.Println(task.Status(), errors.Is(err, background.ErrCancelled))
	// Output:
	// cancelled true
}

// A task that runs past its timeout fails with ErrTimeout, which also matches
// context.DeadlineExceeded.
func ExampleTimeout() {
	ctx := context.Background()
	runner := background.NewRunner(background.Config{})
	defer runner.Stop(ctx)

	task, err := background.Submit(ctx, runner, func(ctx context.Context) (string, error) {
		<-ctx.Done() // far slower than its timeout
		return "", ctx.Err()
	}, background.Timeout(10*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}

	_, err = task.Wait(ctx)
	fmt.Println(task.Status())
	fmt.Println(err)
	fmt.Println(errors.Is(err, background.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// failed
	// task timed out after 10ms: context deadline exceeded
	// true true
}

// OnComplete takes a callback typed by the task's result.
func ExampleOnComplete() {
	ctx := context.Background()
	runner := background.NewRunner(background.Config{})

	_, err := background.Submit(ctx, runner, func(ctx context.Context) (int, error) {
		return 42, nil
	}, background.Name("answer"), background.OnComplete(func(task *background.Task[int]) {
		fmt.Println(task.Name(), task.Status(), task.Result())
	}))
	if err != nil {
		log.Fatal(err)
	}

	// Wait for every task and its callback, then stop.
	if err := runner.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	if err := runner.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// answer completed 42
}
