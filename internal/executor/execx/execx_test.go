package execx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/executor/execx"
	"github.com/spool-run/spool/queue"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	goleak.VerifyTestMain(m)
}

// testBundle is a recipe folder with one script, run.sh.
type testBundle struct {
	dir string
}

func setup(t *testing.T, script string) *testBundle {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testBundle{dir: dir}
}

func (b *testBundle) path(name string) string { return filepath.Join(b.dir, name) }

func testRun(input string) *spool.Run {
	r := &spool.Run{ID: "run_test1", Recipe: "test", Agent: "test", Workspace: "default", SessionID: "sess1", Attempt: 2}
	if input != "" {
		r.Input = json.RawMessage(input)
	}
	return r
}

type outcome struct {
	res any
	err error
}

// start runs the handler in the background with a recording context.
func start(ctx context.Context, h queue.Handler, run *spool.Run) (*queue.Recorder, <-chan outcome) {
	ctx, rec := queue.NewTestContext(ctx)
	ch := make(chan outcome, 1)
	go func() {
		res, err := h.Work(ctx, run)
		ch <- outcome{res, err}
	}()
	return rec, ch
}

func work(t *testing.T, b *testBundle, cfg execx.Config, input string) (any, error, *queue.Recorder) {
	t.Helper()
	if cfg.Command == nil {
		cfg.Command = []string{"sh", "run.sh"}
	}
	rec, ch := start(t.Context(), execx.New(b.dir, cfg), testRun(input))
	select {
	case o := <-ch:
		return o.res, o.err, rec
	case <-time.After(20 * time.Second):
		t.Fatal("handler did not return")
		return nil, nil, nil
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func joined(chunks []string) string { return strings.Join(chunks, "") }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStdoutStreamsChunksAsProduced(t *testing.T) {
	t.Parallel()
	// Each token is written without a newline, and the script goes on only once the test
	// has seen the token as an output event: line buffering would deadlock here.
	b := setup(t, `
printf 'Hel'
while [ ! -e go1 ]; do sleep 0.01; done
printf 'lo'
while [ ! -e go2 ]; do sleep 0.01; done
printf ' world\n'
`)
	rec, ch := start(t.Context(), execx.New(b.dir, execx.Config{Command: []string{"sh", "run.sh"}}), testRun(""))
	waitFor(t, "Hel", func() bool { return joined(rec.Outputs()) == "Hel" })
	os.WriteFile(b.path("go1"), nil, 0o644)
	waitFor(t, "lo", func() bool { return joined(rec.Outputs()) == "Hello" })
	os.WriteFile(b.path("go2"), nil, 0o644)
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	if got, want := rec.Outputs(), []string{"Hel", "lo", " world\n"}; !reflect.DeepEqual(got, want) {
		t.Errorf("chunks = %q, want %q", got, want)
	}
	if got := mustJSON(t, o.res); got != `{"output":"Hello world\n"}` {
		t.Errorf("result = %s", got)
	}
}

func TestOutputNeverSplitsUTF8(t *testing.T) {
	t.Parallel()
	// é is \303\251: the first byte arrives alone, the second only after the test saw the
	// first read happen (nothing can be emitted until the sequence is complete).
	b := setup(t, `
printf 'a\303'
while [ ! -e go ]; do sleep 0.01; done
printf '\251b\n'
`)
	rec, ch := start(t.Context(), execx.New(b.dir, execx.Config{Command: []string{"sh", "run.sh"}}), testRun(""))
	waitFor(t, "a", func() bool { return joined(rec.Outputs()) == "a" })
	os.WriteFile(b.path("go"), nil, 0o644)
	if o := <-ch; o.err != nil {
		t.Fatal(o.err)
	}
	for _, c := range rec.Outputs() {
		if !utf8.ValidString(c) {
			t.Errorf("chunk %q is not valid UTF-8", c)
		}
	}
	if got := joined(rec.Outputs()); got != "aéb\n" {
		t.Errorf("output = %q", got)
	}
}

func TestStderrIsLog(t *testing.T) {
	t.Parallel()
	b := setup(t, `echo out; echo err >&2`)
	_, err, rec := work(t, b, execx.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := joined(rec.Outputs()); got != "out\n" {
		t.Errorf("output = %q", got)
	}
	if got := joined(rec.Logs()); got != "err\n" {
		t.Errorf("logs = %q", got)
	}
}

func TestControlFD3ProgressAndResult(t *testing.T) {
	t.Parallel()
	b := setup(t, `
printf '{"steps_total": 4}\n' >&3
printf '{"progress": 45, "message": "halfway"}\n' >&3
printf 'this is not json\n' >&3
printf '{"progress": "lots"}\n' >&3
printf '{"steps_completed": 2}\n' >&3
echo some output
printf '{"result": {"answer": 42, "list": [1, "two"]}}\n' >&3
`)
	res, err, rec := work(t, b, execx.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := res.(json.RawMessage)
	if !ok || string(raw) != `{"answer": 42, "list": [1, "two"]}` {
		t.Errorf("result = %#v, want the fd 3 result exactly", res)
	}
	var got []string
	for _, u := range rec.Progress() {
		var parts []string
		if u.Percentage != nil {
			parts = append(parts, fmt.Sprintf("pct=%v", *u.Percentage))
		}
		if u.Message != nil {
			parts = append(parts, "msg="+*u.Message)
		}
		if u.StepsTotal != nil {
			parts = append(parts, fmt.Sprintf("total=%d", *u.StepsTotal))
		}
		if u.StepsCompleted != nil {
			parts = append(parts, fmt.Sprintf("done=%d", *u.StepsCompleted))
		}
		got = append(got, strings.Join(parts, ","))
	}
	want := []string{"total=4", "pct=45,msg=halfway", "done=2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("progress = %q, want %q", got, want)
	}
	logs := joined(rec.Logs())
	if !strings.Contains(logs, "malformed") || !strings.Contains(logs, "this is not json") || !strings.Contains(logs, "progress must be a number") {
		t.Errorf("malformed control lines are not logged: %q", logs)
	}
}

func TestResultDefaultsToCappedStdout(t *testing.T) {
	t.Parallel()
	b := setup(t, `printf '0123456789abcdefghij'`)
	res, err, _ := work(t, b, execx.Config{OutputCap: 8}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, res); got != `{"output":"cdefghij","output_truncated":true}` {
		t.Errorf("result = %s", got)
	}
}

func TestInputOnStdinNeverReachesAShell(t *testing.T) {
	t.Parallel()
	b := setup(t, `cat; printf '%s\n' "$@"`)
	marker := b.path("pwned")
	input := fmt.Sprintf(`{"cmd": "$(touch %s)", "more": "; touch %s; rm -rf /", "tick": "`+"`touch %s`"+`"}`, marker, marker, marker)
	res, err, _ := work(t, b, execx.Config{Command: []string{"sh", "run.sh", "fixed-arg"}}, input)
	if err != nil {
		t.Fatal(err)
	}
	var compact strings.Builder
	json.NewEncoder(&compact).Encode(json.RawMessage(input)) // compact, then a newline
	want := compact.String() + "fixed-arg\n"
	if got := res.(map[string]any)["output"]; got != want {
		t.Errorf("stdin echoed = %q, want %q", got, want)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("input was executed: %s exists", marker)
	}
}

func TestStdinForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, input, want string }{
		{"string", `"hello $(world)"`, `"hello $(world)"` + "\n"},
		{"none", ``, "null\n"},
		{"pretty object compacted", "{\n  \"a\": [1,\n 2]\n}", `{"a":[1,2]}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, `cat`)
			res, err, _ := work(t, b, execx.Config{}, tc.input)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.(map[string]any)["output"]; got != tc.want {
				t.Errorf("stdin = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLargeInputAndOutput(t *testing.T) {
	t.Parallel()
	// Bigger than a pipe's buffer both ways: stdin must be written while stdout is read.
	big := strings.Repeat("x", 300<<10)
	b := setup(t, `cat`)
	res, err, rec := work(t, b, execx.Config{}, `"`+big+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if got := joined(rec.Outputs()); got != `"`+big+`"`+"\n" {
		t.Errorf("output has %d bytes, want %d", len(got), len(big)+3)
	}
	if got := res.(map[string]any)["output"].(string); len(got) != len(big)+3 {
		t.Errorf("result output has %d bytes", len(got))
	}
}

func TestEnvironmentAndWorkingDir(t *testing.T) {
	t.Parallel()
	b := setup(t, `
echo "pwd=$(pwd)"
echo "run=$SPOOL_RUN_ID session=$SPOOL_SESSION_ID attempt=$SPOOL_ATTEMPT workspace=$SPOOL_WORKSPACE"
echo "extra=$EXTRA"
`)
	os.Mkdir(b.path("sub"), 0o755)
	os.WriteFile(b.path("sub/run.sh"), []byte(`echo "pwd=$(pwd)"`), 0o644)
	res, err, _ := work(t, b, execx.Config{Env: map[string]string{"EXTRA": "v a l"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("pwd=%s\nrun=run_test1 session=sess1 attempt=2 workspace=default\nextra=v a l\n", b.dir)
	if got := res.(map[string]any)["output"]; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}

	res, err, _ = work(t, b, execx.Config{Dir: "sub"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := res.(map[string]any)["output"]; got != "pwd="+b.path("sub")+"\n" {
		t.Errorf("exec.dir: output = %q", got)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		script    string
		permanent bool
		msg       []string
	}{
		{"failure", "echo working; echo 'first problem' >&2; echo 'it broke: disk full' >&2; exit 3", true,
			[]string{"exit status 3", "it broke: disk full", "first problem"}},
		{"retryable", "echo 'try again later' >&2; exit 75", false, []string{"exit status 75", "try again later"}},
		{"signal", "kill -s KILL $$", true, []string{"137", "killed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tc.script)
			_, err, _ := work(t, b, execx.Config{}, "")
			if err == nil {
				t.Fatal("want an error")
			}
			if queue.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", queue.IsPermanent(err), tc.permanent, err)
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestExitZeroSucceedsEvenWithStderr(t *testing.T) {
	t.Parallel()
	b := setup(t, `echo warning >&2; exit 0`)
	if _, err, _ := work(t, b, execx.Config{}, ""); err != nil {
		t.Fatal(err)
	}
}

func TestMissingProgramIsPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t, ``)
	for _, argv := range [][]string{{"no-such-program-spool"}, {"./missing.sh"}} {
		_, err, _ := work(t, b, execx.Config{Command: argv}, "")
		if err == nil || !queue.IsPermanent(err) || !strings.Contains(err.Error(), argv[0]) {
			t.Errorf("%v: err = %v, want a permanent error naming the program", argv, err)
		}
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper counts as gone).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) STATE ...
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// grandchildScript starts a grandchild that would outlive its parent, records both pids,
// then waits.
const grandchildScript = `
sleep 1000 &
echo $! > grandchild.pid.tmp && mv grandchild.pid.tmp grandchild.pid
echo $$ > child.pid.tmp && mv child.pid.tmp child.pid
echo ready
wait
`

func checkGone(t *testing.T, b *testBundle) {
	t.Helper()
	for _, f := range []string{"child.pid", "grandchild.pid"} {
		pid := readPid(t, b.path(f))
		waitFor(t, f+" to die", func() bool { return !alive(pid) })
	}
}

func TestCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	b := setup(t, grandchildScript)
	ctx, cancel := context.WithCancel(t.Context())
	rec, ch := start(ctx, execx.New(b.dir, execx.Config{Command: []string{"sh", "run.sh"}, Grace: 5 * time.Second}), testRun(""))
	waitFor(t, "ready", func() bool { return strings.Contains(joined(rec.Outputs()), "ready") })
	began := time.Now()
	cancel()
	o := <-ch
	if !errors.Is(o.err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", o.err)
	}
	if d := time.Since(began); d > 4*time.Second {
		t.Errorf("stopping took %s: the script should have died on SIGTERM", d)
	}
	checkGone(t, b)
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	b := setup(t, grandchildScript)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, ch := start(ctx, execx.New(b.dir, execx.Config{Command: []string{"sh", "run.sh"}}), testRun(""))
	o := <-ch
	if !errors.Is(o.err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", o.err)
	}
	checkGone(t, b)
}

func TestLeftoversAreKilledWhenCommandExits(t *testing.T) {
	t.Parallel()
	// The grandchild keeps stdout open: without killing it, Work would wait for it forever.
	b := setup(t, `
sleep 1000 &
echo $! > grandchild.pid
echo $$ > child.pid
echo done
`)
	res, err, _ := work(t, b, execx.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := res.(map[string]any)["output"]; got != "done\n" {
		t.Errorf("output = %q", got)
	}
	checkGone(t, b)
}

func TestSigtermThenGraceThenSigkill(t *testing.T) {
	t.Parallel()
	t.Run("clean exit on SIGTERM", func(t *testing.T) {
		t.Parallel()
		b := setup(t, `
trap 'echo got TERM; exit 0' TERM
echo ready
sleep 1000 &
wait
`)
		ctx, cancel := context.WithCancel(t.Context())
		rec, ch := start(ctx, execx.New(b.dir, execx.Config{Command: []string{"sh", "run.sh"}, Grace: 10 * time.Second}), testRun(""))
		waitFor(t, "ready", func() bool { return strings.Contains(joined(rec.Outputs()), "ready") })
		cancel()
		o := <-ch
		if !strings.Contains(joined(rec.Outputs()), "got TERM") {
			t.Errorf("the command did not see SIGTERM; output %q", joined(rec.Outputs()))
		}
		// Stopped runs end as stopped, even when the command exits 0 in its grace period.
		if !errors.Is(o.err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", o.err)
		}
	})
	t.Run("SIGKILL after grace", func(t *testing.T) {
		t.Parallel()
		b := setup(t, `
trap '' TERM
echo $$ > child.pid
echo ready
while :; do sleep 0.05; done
`)
		const grace = 400 * time.Millisecond
		ctx, cancel := context.WithCancel(t.Context())
		rec, ch := start(ctx, execx.New(b.dir, execx.Config{Command: []string{"sh", "run.sh"}, Grace: grace}), testRun(""))
		waitFor(t, "ready", func() bool { return strings.Contains(joined(rec.Outputs()), "ready") })
		began := time.Now()
		cancel()
		<-ch
		if d := time.Since(began); d < grace || d > grace+5*time.Second {
			t.Errorf("stopped after %s, want about the grace period %s", d, grace)
		}
		pid := readPid(t, b.path("child.pid"))
		waitFor(t, "child to die", func() bool { return !alive(pid) })
	})
}

func TestEscapedDaemonDoesNotHangTheRun(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	// A process that leaves the group (setsid) cannot be killed with it; it still holds
	// stdout open. Work returns after a bounded drain wait.
	b := setup(t, `
setsid sh -c 'echo $$ > daemon.pid.tmp; mv daemon.pid.tmp daemon.pid; exec sleep 1000' &
while [ ! -e daemon.pid ]; do sleep 0.01; done
echo started
`)
	t.Cleanup(func() {
		if pid := readPid(t, b.path("daemon.pid")); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	began := time.Now()
	_, err, rec := work(t, b, execx.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(joined(rec.Outputs()), "started") {
		t.Errorf("output = %q", joined(rec.Outputs()))
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("Work took %s", d)
	}
	if pid := readPid(t, b.path("daemon.pid")); !alive(pid) {
		t.Errorf("the daemon died: the test did not exercise the drain timeout")
	}
}

// The helper process runs a handler whose command starts a grandchild, then is killed with
// SIGKILL by the test: the node's death must take the whole process group with it.
const helperEnv = "SPOOL_EXECX_TEST_HELPER_DIR"

func runHelper() int {
	dir := os.Getenv(helperEnv)
	h := execx.New(dir, execx.Config{Command: []string{"sh", "run.sh"}})
	h.Work(context.Background(), testRun(""))
	return 0
}

func TestNodeDeathKillsProcessGroup(t *testing.T) {
	t.Parallel()
	b := setup(t, grandchildScript)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+b.dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := readPid(t, b.path("child.pid"))
	grandchild := readPid(t, b.path("grandchild.pid"))
	cmd.Process.Kill()
	cmd.Wait()
	waitFor(t, "the command to die with its node", func() bool { return !alive(child) })
	waitFor(t, "the grandchild to die with its node", func() bool { return !alive(grandchild) })
}
