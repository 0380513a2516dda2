// Package spool is the Go SDK of Spool, a job server and queue for long-running AI-agent work.
//
// It holds the domain types ([Run], [State], [Priority], [Event], [Error]) and an HTTP client
// for a Spool server. The embeddable engine lives in package queue; an in-process runner for
// Go functions lives in package background.
//
// # Quick start
//
//	c := spool.NewClient("http://127.0.0.1:8005", spool.WithToken(os.Getenv("SPOOL_TOKEN")))
//	job, err := c.Submit(ctx, &spool.SubmitRequest{Recipe: "echo", Input: json.RawMessage(`{"hi":1}`)})
//	if err != nil { ... }
//	for ev, err := range job.Events(ctx) { // live output, resumed across dropped connections
//		if err != nil { ... }
//		fmt.Print(ev.Text)
//	}
//	run, err := job.Wait(ctx) // the finished run: run.State, run.Result, run.Error
//
// # Errors
//
// Errors from the server are *[Error] values with a stable code; compare them with
// errors.Is(err, [ErrNotFound]), [ErrConflict], [ErrQueueFull] or [ErrInvalid]. A server that
// cannot be reached gives a *[ConnectionError]. [Job.Cancel] of a finished run is not an
// error: it has no effect.
//
// This package imports only the standard library.
package spool
