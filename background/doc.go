// Package background runs Go functions in the background of one program, with no server and
// no database: submit a function, then wait for it, cancel it, watch its progress, or list the
// tasks of a [Runner].
//
// # Quick start
//
//	runner := background.NewRunner(background.Config{MaxConcurrentTasks: 3})
//	defer runner.Stop(context.Background())
//
//	task, err := background.Submit(ctx, runner, func(ctx context.Context) (string, error) {
//		background.ReportProgress(ctx, 50, "half way")
//		return "done", nil
//	}, background.Name("my_task"))
//	if err != nil {
//		return err
//	}
//	result, err := task.Wait(ctx) // result is a string
//
// # Behaviour
//
// A runner starts at most [Config.MaxConcurrentTasks] functions at once, in submit order
// (FIFO). Each task gets its own context, cancelled by [Task.Cancel], by [Runner.Stop] and at
// its timeout. A task ends the moment its function returns, its timeout passes, or it is
// cancelled, whichever comes first: a function that ignores its context is abandoned (its
// slot is given to the next task at once) and [Runner.Stop] waits for it to return. A panic
// in a function fails its task with a [*PanicError] that holds the stack.
//
// Tasks end in one of three states: [StatusCompleted], [StatusFailed] (the function returned
// an error, panicked, or timed out: see [ErrTimeout]) or [StatusCancelled] (see
// [ErrCancelled]). Finished tasks are forgotten after [Config.CleanupDelay] unless
// [Config.DisableAutoCleanup] is set; [Runner.ClearCompleted] forgets them at once.
//
// [Runner.Wait] waits until every task has finished; [Runner.Stop] cancels what is left and
// waits for every function to return. A graceful shutdown is Wait, then Stop:
//
//	waitCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//	defer cancel()
//	_ = runner.Wait(waitCtx) // let the tasks finish, for up to 30 s
//	stopCtx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
//	defer cancel2()
//	return runner.Stop(stopCtx) // cancel the rest; give their functions 5 s to return
//
// # Cost
//
// Importing the package starts nothing, and neither does [NewRunner]: a runner starts two
// goroutines per running task (the function and its supervisor) and none while idle.
package background
