// Package execx runs exec recipes: a command (argv, never a shell string) that gets the run's
// input as JSON on stdin, streams stdout as output and stderr as log, and may report progress
// and its result as JSON lines on file descriptor 3.
//
// The command runs in its own process group. When the run is cancelled or times out, the
// group gets SIGTERM, then SIGKILL after the grace period; when the command exits, whatever it
// left running in its group is killed. On Linux the group is led by a small sh guard that gets
// a parent-death signal and then kills the whole group, so a node killed with SIGKILL leaves
// no process of its runs behind. The name avoids shadowing os/exec.
package execx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/queue"
)

// Defaults of [Config].
const (
	DefaultGrace     = 10 * time.Second
	DefaultOutputCap = 1 << 20
	// RetryableExitCode is the exit status (EX_TEMPFAIL) that marks a failure as retryable.
	RetryableExitCode = 75
)

// Config describes one exec recipe's command.
type Config struct {
	// Command is the argv. A relative path with a slash (./run.sh) is taken from Dir.
	Command []string
	// Dir is the working directory, relative to the recipe's folder; "" is the folder.
	Dir string
	// Env adds variables to the child's environment (after Spool's secrets are removed).
	Env map[string]string
	// Grace is the time between SIGTERM and SIGKILL when a run is stopped; 0 is DefaultGrace,
	// a negative value sends SIGKILL at once.
	Grace time.Duration
	// OutputCap bounds the stdout kept for the result {"output": ...} when the command
	// reports no result; the last OutputCap bytes are kept. 0 is DefaultOutputCap.
	OutputCap int
}

// secretEnv lists the variables a child never inherits: Spool's own secrets and settings.
// Every other SPOOL_* variable is dropped as well; a recipe that wants one passes it on
// through exec.env (for example SPOOL_URL: ${SPOOL_URL}).
var secretEnv = map[string]bool{
	"PRAISONAI_JOBS_API_KEY":        true,
	"PRAISONAI_JOBS_WEBHOOK_SECRET": true,
}

// handler runs one exec recipe.
type handler struct {
	argv      []string
	dir       string
	env       map[string]string
	grace     time.Duration
	outputCap int
}

// New returns a handler that runs cfg.Command for each run, in recipeDir (or cfg.Dir
// relative to it).
func New(recipeDir string, cfg Config) queue.Handler {
	h := &handler{
		argv:      append([]string(nil), cfg.Command...),
		dir:       recipeDir,
		env:       cfg.Env,
		grace:     cfg.Grace,
		outputCap: cfg.OutputCap,
	}
	if cfg.Dir != "" {
		if filepath.IsAbs(cfg.Dir) {
			h.dir = cfg.Dir
		} else {
			h.dir = filepath.Join(recipeDir, cfg.Dir)
		}
	}
	if h.grace == 0 {
		h.grace = DefaultGrace
	}
	if h.outputCap <= 0 {
		h.outputCap = DefaultOutputCap
	}
	return h
}

// Work runs the command once. It returns only after the command's process group is gone and
// its pipes are drained.
func (h *handler) Work(ctx context.Context, run *spool.Run) (any, error) {
	if len(h.argv) == 0 || h.argv[0] == "" {
		return nil, queue.Permanent(errors.New("exec: empty command"))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := h.start(run)
	if err != nil {
		return nil, queue.Permanent(fmt.Errorf("exec: start %s: %w", h.argv[0], err))
	}
	return p.wait(ctx, h.grace)
}

// process is a started command with the goroutines that feed and drain it.
type process struct {
	cmd      *exec.Cmd
	exited   <-chan struct{} // closed when the leader has exited (a zombie until reaped)
	reap     func() error
	drained  chan struct{} // closed when stdout, stderr and fd 3 hit EOF
	readEnds []*os.File
	stdinW   *os.File

	stdout *tailBuffer
	stderr *tailBuffer
	ctl    *control
}

func (h *handler) start(run *spool.Run) (*process, error) {
	env := childEnv(os.Environ(), h.env, run)
	prog, err := lookPath(h.argv[0], h.dir, env)
	if err != nil {
		return nil, err
	}
	path, args := commandLine(prog, h.argv[1:])
	cmd := &exec.Cmd{Path: path, Args: args, Dir: h.dir, Env: env, SysProcAttr: sysProcAttr()}

	var parentEnds, childEnds []*os.File
	closeAll := func() {
		for _, f := range append(parentEnds, childEnds...) {
			f.Close()
		}
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	parentEnds, childEnds = append(parentEnds, stdinW), append(childEnds, stdinR)
	var readEnds []*os.File
	for range 3 { // stdout, stderr, fd 3
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		parentEnds, childEnds = append(parentEnds, r), append(childEnds, w)
		readEnds = append(readEnds, r)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, childEnds[1], childEnds[2]
	cmd.ExtraFiles = []*os.File{childEnds[3]}
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, err
	}
	for _, f := range childEnds {
		f.Close()
	}

	p := &process{
		cmd:      cmd,
		drained:  make(chan struct{}),
		readEnds: readEnds,
		stdinW:   stdinW,
		stdout:   newTailBuffer(h.outputCap),
		stderr:   newTailBuffer(stderrKeep),
	}
	p.exited, p.reap = watchExit(cmd)
	go writeInput(stdinW, run.Input)
	return p, nil
}

// stderrKeep is how much of stderr is kept for error messages.
const stderrKeep = 8 << 10

// wait streams the command's output until it exits or ctx is done, then tears it down.
func (p *process) wait(ctx context.Context, grace time.Duration) (any, error) {
	var wg sync.WaitGroup
	wg.Add(3)
	p.ctl = &control{}
	go func() { defer wg.Done(); stream(p.readEnds[0], p.stdout, func(s string) { queue.Output(ctx, s) }) }()
	go func() { defer wg.Done(); stream(p.readEnds[1], p.stderr, func(s string) { queue.Log(ctx, s) }) }()
	go func() { defer wg.Done(); p.ctl.read(ctx, p.readEnds[2]) }()
	go func() { wg.Wait(); close(p.drained) }()

	pid := p.cmd.Process.Pid
	stopped := false
	select {
	case <-p.exited:
	case <-ctx.Done():
		stopped = true
		p.stop(grace)
	}
	// The leader is a zombie until reaped below, so its pid (the group id) cannot be reused:
	// signalling the group now reaches only the command's own leftovers.
	killGroup(pid, syscall.SIGKILL)
	select {
	case <-p.drained:
	case <-time.After(drainTimeout):
		// Something outside the group (a daemon that called setsid) holds a pipe open.
		for _, f := range p.readEnds {
			f.Close()
		}
		<-p.drained
	}
	for _, f := range p.readEnds {
		f.Close()
	}
	p.stdinW.Close()
	waitErr := p.reap()

	if stopped {
		return nil, fmt.Errorf("exec: command stopped: %w", context.Cause(ctx))
	}
	return p.outcome(waitErr)
}

// drainTimeout bounds the wait for pipes after the process group is gone.
const drainTimeout = 2 * time.Second

// stop sends SIGTERM to the group and SIGKILL when the grace period is over.
func (p *process) stop(grace time.Duration) {
	pid := p.cmd.Process.Pid
	if grace < 0 {
		killGroup(pid, syscall.SIGKILL)
		<-p.exited
		return
	}
	killGroup(pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		killGroup(pid, syscall.SIGKILL)
		<-p.exited
	}
}

// outcome maps the exit status to a result or an error.
func (p *process) outcome(waitErr error) (any, error) {
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return nil, fmt.Errorf("exec: wait: %w", waitErr)
	}
	if waitErr == nil {
		if res, ok := p.ctl.result(); ok {
			return res, nil
		}
		out, truncated := p.stdout.String()
		if truncated {
			return map[string]any{"output": out, "output_truncated": true}, nil
		}
		return map[string]any{"output": out}, nil
	}

	status := describeExit(exitErr.ProcessState)
	msg := "exec: " + status
	if tail := lastLines(p.stderr, 10); tail != "" {
		msg += "; stderr:\n" + tail
	}
	err := queue.CodedError(spool.CodeExitStatus, errors.New(msg))
	if exitErr.ExitCode() == RetryableExitCode {
		return nil, err
	}
	return nil, queue.Permanent(err)
}

func describeExit(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	code := ps.ExitCode()
	if code == RetryableExitCode {
		return "exit status 75 (temporary failure)"
	}
	if code > 128 && code < 128+65 { // the guard shell reports a killed command as 128+N
		return fmt.Sprintf("exit status %d (signal: %s)", code, syscall.Signal(code-128))
	}
	return "exit status " + strconv.Itoa(code)
}

// lastLines returns up to n last non-empty lines of b.
func lastLines(b *tailBuffer, n int) string {
	s, _ := b.String()
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// writeInput writes the input as one line of compact JSON, then closes stdin. A child that
// never reads stdin makes the write fail once it exits; that is not an error.
func writeInput(w *os.File, input json.RawMessage) {
	defer w.Close()
	var buf bytes.Buffer
	if len(bytes.TrimSpace(input)) == 0 {
		buf.WriteString("null")
	} else if err := json.Compact(&buf, input); err != nil {
		buf.Reset()
		buf.Write(input)
	}
	buf.WriteByte('\n')
	w.Write(buf.Bytes())
}

// lookPath finds the program as the child will: a name with a slash is taken from the
// working directory, any other name is searched in the child's PATH (absolute entries only).
func lookPath(prog, dir string, env []string) (string, error) {
	if strings.ContainsRune(prog, '/') {
		p := prog
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := checkExecutable(p); err != nil {
			return "", err
		}
		return prog, nil
	}
	var pathVar string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, d := range filepath.SplitList(pathVar) {
		if !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, prog)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w in PATH", prog, exec.ErrNotFound)
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: %w", p, os.ErrPermission)
	}
	return nil
}

// childEnv builds the child's environment: the server's without Spool's settings and
// secrets, then extra, then the run's variables.
func childEnv(base []string, extra map[string]string, run *spool.Run) []string {
	env := map[string]string{}
	for _, kv := range base {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || secretEnv[k] || strings.HasPrefix(k, "SPOOL_") {
			continue
		}
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	env["SPOOL_RUN_ID"] = run.ID
	env["SPOOL_RECIPE"] = run.Recipe
	env["SPOOL_AGENT"] = run.Agent
	env["SPOOL_SESSION_ID"] = run.SessionID
	env["SPOOL_WORKSPACE"] = run.Workspace
	env["SPOOL_ATTEMPT"] = strconv.Itoa(run.Attempt)
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// stream copies r to emit as it is read (not line by line), keeping a tail in keep. A UTF-8
// sequence cut by a read is held back until it is complete.
func stream(r *os.File, keep *tailBuffer, emit func(string)) {
	buf := make([]byte, 32<<10)
	var carry []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := append(carry, buf[:n]...)
			cut := completeUTF8(chunk)
			carry = append([]byte(nil), chunk[cut:]...)
			if cut > 0 {
				keep.Write(chunk[:cut])
				emit(string(chunk[:cut]))
			}
		}
		if err != nil {
			break
		}
	}
	if len(carry) > 0 {
		keep.Write(carry)
		emit(string(carry))
	}
}

// completeUTF8 returns how much of b can be emitted without splitting a UTF-8 sequence.
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-t.max:]...)
		t.truncated = true
	}
}

// String returns the kept tail, starting on a rune boundary, and whether bytes were dropped.
func (t *tailBuffer) String() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, truncated := t.buf, t.truncated
	if len(b) > t.max {
		b, truncated = b[len(b)-t.max:], true
	}
	if truncated {
		for n := 0; n < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); n++ {
			b = b[1:]
		}
	}
	return string(b), truncated
}
