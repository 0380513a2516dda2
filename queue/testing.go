package queue

import (
	"context"
	"sync"
)

// Recorder collects what a handler reports through its context, for tests of handlers
// that run without an engine. See [NewTestContext].
type Recorder struct {
	mu      sync.Mutex
	outputs []string
	logs    []string
	updates []ProgressUpdate
}

// NewTestContext returns a context in which [Output], [Log] and [UpdateProgress] record
// into the returned Recorder instead of a run's event stream.
func NewTestContext(ctx context.Context) (context.Context, *Recorder) {
	r := &Recorder{}
	return withReporter(ctx, r), r
}

func (r *Recorder) output(text string) {
	r.mu.Lock()
	r.outputs = append(r.outputs, text)
	r.mu.Unlock()
}

func (r *Recorder) log(text string) {
	r.mu.Lock()
	r.logs = append(r.logs, text)
	r.mu.Unlock()
}

func (r *Recorder) progress(u ProgressUpdate) {
	r.mu.Lock()
	r.updates = append(r.updates, u)
	r.mu.Unlock()
}

// Outputs returns the output chunks in order.
func (r *Recorder) Outputs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.outputs...)
}

// Logs returns the log chunks in order.
func (r *Recorder) Logs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.logs...)
}

// Progress returns the progress updates in order.
func (r *Recorder) Progress() []ProgressUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ProgressUpdate(nil), r.updates...)
}
