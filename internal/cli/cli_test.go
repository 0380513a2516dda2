package cli

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/cli/text"
	"github.com/spool-run/spool/internal/server"
)

// decode parses one JSON document printed by a command.
func decode[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("stdout is not the JSON expected (%v): %v", err, r)
	}
	return v
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestSubmitJSON(t *testing.T) {
	t.Parallel()
	r := mustSucceed(t, runCmd(t, "submit", "echo", "--input", `{"a": 1}`, "--priority", "high",
		"--session-id", "sess-1", "--timeout", "20", "--max-retries", "0", "--json"))
	run := decode[map[string]any](t, r)
	id, _ := run["job_id"].(string)
	if !strings.HasPrefix(id, "run_") {
		t.Fatalf("job_id = %v, want a run id", run["job_id"])
	}
	for k, want := range map[string]any{"recipe_name": "echo", "priority": "high", "session_id": "sess-1",
		"poll_url": "/api/v1/runs/" + id, "timeout_sec": 20.0} {
		if run[k] != want {
			t.Errorf("%s = %v, want %v", k, run[k], want)
		}
	}
	if in, _ := run["input"].(map[string]any); in["a"] != 1.0 {
		t.Errorf("input = %v, want {\"a\": 1}", run["input"])
	}

	// Piped, submit prints only the id, for ID=$(spool submit ...).
	id2 := submitID(t, "", "echo", "--input", "plain text")
	st := decode[spool.Run](t, mustSucceed(t, runCmd(t, "status", id2, "--json")))
	var in string
	if json.Unmarshal(st.Input, &in) != nil || in != "plain text" {
		t.Errorf("input of --input 'plain text' = %s, want the JSON string", st.Input)
	}
}

func TestSubmitInputSources(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(file, []byte(`{"from": "file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustSucceed(t, runCmd(t, "submit", "echo", "--input", "@"+file, "--wait"))
	if got := strings.TrimSpace(r.stdout); got != `{"from":"file"}` {
		t.Errorf("--input @file --wait printed %q, want the result", got)
	}
	r = mustSucceed(t, runCmdWith(t, cliOpts{stdin: `["from", "stdin"]`}, "submit", "echo", "--input", "-", "--wait"))
	if got := strings.TrimSpace(r.stdout); got != `["from","stdin"]` {
		t.Errorf("--input - --wait printed %q, want the result", got)
	}
	r = runCmd(t, "submit", "echo", "--input", `{"broken": `)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--input must be JSON") {
		t.Errorf("broken JSON input: %v; want a usage error naming --input", r)
	}
}

func TestSubmitWaitAndFollow(t *testing.T) {
	t.Parallel()
	r := mustSucceed(t, runCmd(t, "submit", "echo", "--input", `"hello"`, "--wait"))
	if r.stdout != "hello\n" {
		t.Errorf("submit --wait printed %q, want the result", r.stdout)
	}
	r = mustSucceed(t, runCmd(t, "submit", "echo", "--input", `{"x": 2}`, "--wait", "--json"))
	run := decode[spool.Run](t, r)
	if run.State != spool.StateSucceeded || string(run.Result) != `{"x":2}` {
		t.Errorf("submit --wait --json = %+v, want the succeeded run with its result", run)
	}

	r = mustSucceed(t, runCmd(t, "submit", "countdown", "--input", `{"n": 3, "delay": 0}`, "--follow"))
	if r.stdout != "3\n2\n1\nliftoff\n" {
		t.Errorf("submit --follow printed %q, want the streamed output only", r.stdout)
	}

	r = runCmd(t, "submit", "fail", "--wait")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "failed") || !strings.Contains(r.stderr, "exit_status") {
		t.Errorf("submit --wait of a failing run: %v; want exit 1 with the error", r)
	}
	r = runCmd(t, "submit", "fail", "--follow")
	if r.code != ExitFailed || !strings.Contains(r.stdout, "about to fail") || !strings.Contains(r.stderr, "something broke") {
		t.Errorf("submit --follow of a failing run: %v; want its output, its stderr and exit 1", r)
	}
}

func TestListOutputs(t *testing.T) {
	t.Parallel()
	session := "list-" + strconv.FormatInt(time.Now().UnixNano(), 36) // unique across -count runs
	id := submitID(t, "", "echo", "--input", "1", "--session-id", session)
	mustSucceed(t, runCmd(t, "wait", id))
	id2 := submitID(t, "", "fail", "--session-id", session)
	runCmd(t, "wait", id2)

	list := decode[spool.RunList](t, mustSucceed(t, runCmd(t, "ls", "--session-id", session, "--json")))
	if list.Total != 2 || len(list.Runs) != 2 || list.Runs[0].ID != id2 || list.Runs[1].ID != id {
		t.Fatalf("ls --json = %+v, want the two runs, newest first", list)
	}

	// Piped: tab-separated, RFC 3339 times, no header, no colour.
	r := mustSucceed(t, runCmd(t, "ls", "--session-id", session))
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("piped ls printed %q, want two lines", r.stdout)
	}
	fields := strings.Split(lines[1], "\t")
	if len(fields) != 9 || fields[0] != id || fields[1] != "succeeded" || fields[2] != "echo" || fields[8] != session {
		t.Errorf("piped ls line = %q, want id, status, recipe, agent, priority, progress, created, duration, session", fields)
	}
	if _, err := time.Parse(time.RFC3339, fields[6]); err != nil {
		t.Errorf("created_at %q is not RFC 3339: %v", fields[6], err)
	}
	if ansi.MatchString(r.stdout) || strings.Contains(r.stdout, "✅") {
		t.Errorf("piped ls has colour or icons: %q", r.stdout)
	}

	// On a terminal: a header, icons, colours, relative times, aligned columns.
	r = mustSucceed(t, runCmdWith(t, cliOpts{tty: true, later: 5 * time.Minute}, "ls", "--session-id", session))
	plain := iostreams.StripANSI(r.stdout)
	for _, want := range []string{"ID", "STATUS", "✅ succeeded", "❌ failed", "5 minutes ago"} {
		if !strings.Contains(plain, want) {
			t.Errorf("TTY ls lacks %q:\n%s", want, plain)
		}
	}
	if !ansi.MatchString(r.stdout) {
		t.Errorf("TTY ls has no colour:\n%s", r.stdout)
	}
	tl := strings.Split(strings.TrimRight(plain, "\n"), "\n")
	column := func(line, word string) int { return text.DisplayWidth(line[:strings.Index(line, word)]) }
	if len(tl) != 3 || column(tl[0], "RECIPE") != column(tl[2], "echo") || column(tl[0], "PRIORITY") != column(tl[1], "normal") {
		t.Errorf("TTY ls columns are not aligned:\n%s", plain)
	}

	// NO_COLOR keeps the icons and drops the colours.
	r = mustSucceed(t, runCmdWith(t, cliOpts{tty: true, noColor: true}, "ls", "--session-id", session))
	if ansi.MatchString(r.stdout) || !strings.Contains(r.stdout, "✅") {
		t.Errorf("NO_COLOR ls = %q, want icons without colour", r.stdout)
	}

	// Filters, and the seed's state words.
	list = decode[spool.RunList](t, mustSucceed(t, runCmd(t, "ls", "--session-id", session, "--status", "completed", "--json")))
	if len(list.Runs) != 1 || list.Runs[0].ID != id {
		t.Errorf("ls --status completed = %+v, want the succeeded run", list.Runs)
	}
	if r := runCmd(t, "ls", "--status", "nope"); r.code != ExitUsage {
		t.Errorf("ls --status nope: %v, want a usage error", r)
	}
}

func TestListWatch(t *testing.T) {
	t.Parallel()
	session := "watch-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	id := submitID(t, "", "echo", "--input", "1", "--session-id", session)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ios, _, _, _ := iostreams.Test()
	out := &syncBuffer{}
	ios.Out = out
	done := make(chan int, 1)
	go func() {
		done <- runIn(t, cliOpts{ctx: ctx}, ios, []string{"ls", "--watch", "--interval", "100ms", "--session-id", session})
	}()
	// The list is printed again every interval until interrupted.
	eventually(t, 10*time.Second, "two refreshes", func() bool { return strings.Count(out.String(), id) >= 2 })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("ls --watch exited %d after an interrupt, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ls --watch did not stop when interrupted")
	}
}

func TestStatusOutputs(t *testing.T) {
	t.Parallel()
	id := submitID(t, "", "echo", "--input", `{"k": "v"}`, "--session-id", "s-status")
	mustSucceed(t, runCmd(t, "wait", id))

	run := decode[map[string]any](t, mustSucceed(t, runCmd(t, "status", id, "--json")))
	if run["job_id"] != id || run["status"] != "succeeded" || run["run_id"] != id || run["duration_seconds"] == nil {
		t.Errorf("status --json = %v, want the API's run object", run)
	}

	r := mustSucceed(t, runCmd(t, "status", id))
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("piped status line %q is not key<TAB>value", line)
		}
		kv[k] = v
	}
	if kv["run"] != id || kv["status"] != "succeeded" || kv["recipe"] != "echo" || kv["session"] != "s-status" {
		t.Errorf("piped status = %v", kv)
	}
	if _, err := time.Parse(time.RFC3339, kv["completed"]); err != nil {
		t.Errorf("completed %q is not RFC 3339", kv["completed"])
	}

	r = mustSucceed(t, runCmdWith(t, cliOpts{tty: true, later: time.Hour}, "status", id))
	plain := iostreams.StripANSI(r.stdout)
	if !strings.Contains(plain, "Status:") || !strings.Contains(plain, "✅ succeeded") || !strings.Contains(plain, "Completed: 1 hour ago") {
		t.Errorf("TTY status:\n%s", plain)
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	id := submitID(t, "", "countdown", "--input", `{"n": 3, "delay": 0.05}`)

	// -f streams until the end, then exits with the run's outcome.
	r := mustSucceed(t, runCmd(t, "logs", "-f", id))
	if r.stdout != "3\n2\n1\nliftoff\n" {
		t.Errorf("logs -f printed %q", r.stdout)
	}
	r = mustSucceed(t, runCmd(t, "logs", id))
	if r.stdout != "3\n2\n1\nliftoff\n" {
		t.Errorf("logs printed %q", r.stdout)
	}

	// --json: one event per line, in sequence, ending with the result.
	r = mustSucceed(t, runCmd(t, "logs", id, "--json"))
	var seqs []int64
	var last spool.Event
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatalf("logs --json line %q: %v", line, err)
		}
		seqs = append(seqs, last.Seq)
	}
	if !slices.IsSorted(seqs) || len(seqs) < 5 || last.Type != spool.EventResult {
		t.Errorf("logs --json: seqs %v, last %+v; want ordered events ending with the result", seqs, last)
	}

	// A failed run's stderr arrives on stderr, and -f exits 1.
	fid := submitID(t, "", "fail")
	r = runCmd(t, "logs", "-f", fid)
	if r.code != ExitFailed || !strings.Contains(r.stderr, "something broke") || !strings.Contains(r.stdout, "about to fail") {
		t.Errorf("logs -f of a failing run: %v", r)
	}
}

func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	id := submitID(t, "", "countdown", "--input", `{"n": 4, "delay": 0.1}`)
	r := mustSucceed(t, runCmdTTY(t, "wait", id))
	if !strings.Contains(r.stderr, "\r\x1b[K") || !strings.ContainsAny(r.stderr, "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏") {
		t.Errorf("wait on a terminal drew no spinner: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, "%") || !strings.Contains(r.stderr, "█") {
		t.Errorf("wait on a terminal drew no progress bar: %q", r.stderr)
	}
	if !strings.Contains(iostreams.StripANSI(r.stderr), "✅ "+id+" succeeded") {
		t.Errorf("wait on a terminal did not report the outcome: %q", r.stderr)
	}
	if !strings.Contains(r.stdout, `"counted": 4`) {
		t.Errorf("wait printed %q, want the indented result", r.stdout)
	}

	// Piped: no spinner, no escape codes.
	r = mustSucceed(t, runCmd(t, "wait", id))
	if r.stderr != "" || strings.Contains(r.stdout, "\x1b") || strings.TrimSpace(r.stdout) != `{"counted":4}` {
		t.Errorf("piped wait: %v", r)
	}
}

func TestWaitAndResult(t *testing.T) {
	t.Parallel()
	id := submitID(t, "", "echo", "--input", `"done"`)
	r := mustSucceed(t, runCmd(t, "wait", id, "--json"))
	if run := decode[spool.Run](t, r); run.State != spool.StateSucceeded {
		t.Errorf("wait --json = %+v", run)
	}
	if r := mustSucceed(t, runCmd(t, "result", id)); r.stdout != "done\n" {
		t.Errorf("result printed %q", r.stdout)
	}
	res := decode[map[string]any](t, mustSucceed(t, runCmd(t, "result", id, "--json")))
	if res["job_id"] != id || res["result"] != "done" || res["metrics"] == nil {
		t.Errorf("result --json = %v, want the API's result object", res)
	}

	fid := submitID(t, "", "fail")
	if r := runCmd(t, "wait", fid); r.code != ExitFailed || !strings.Contains(r.stderr, "something broke") {
		t.Errorf("wait of a failing run: %v", r)
	}
	if r := runCmd(t, "result", fid); r.code != ExitFailed || !strings.Contains(r.stderr, "failed") {
		t.Errorf("result of a failed run: %v", r)
	}

	sid := submitID(t, "", "sleep", "--input", `{"seconds": 30}`)
	defer func() {
		// Leave nothing running for the server's shutdown.
		mustSucceed(t, runCmd(t, "cancel", sid))
		if r := runCmd(t, "wait", sid); r.code != ExitFailed {
			t.Errorf("wait after cancel: %v", r)
		}
	}()
	if r := runCmd(t, "wait", sid, "--timeout", "1"); r.code != ExitTimeout || !strings.Contains(r.stderr, "still") {
		t.Errorf("wait --timeout 1 of a long run: %v; want exit %d", r, ExitTimeout)
	}
	if r := runCmd(t, "result", sid); r.code != ExitAPI || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("result of an active run: %v; want one line and exit %d", r, ExitAPI)
	}
}

func TestRunActions(t *testing.T) {
	t.Parallel()
	// A delayed run stays scheduled, so it can be paused and resumed.
	id := submitID(t, "", "echo", "--input", "1", "--delay", "1h")

	run := decode[spool.Run](t, mustSucceed(t, runCmd(t, "pause", id, "--json")))
	if run.State != spool.StatePaused {
		t.Errorf("pause --json: state %q", run.State)
	}
	if r := mustSucceed(t, runCmd(t, "resume", id)); r.stdout != id+"\tscheduled\n" {
		t.Errorf("piped resume printed %q", r.stdout)
	}
	if r := mustSucceed(t, runCmdTTY(t, "cancel", id)); !strings.Contains(r.stdout, "Cancelled "+id) {
		t.Errorf("cancel printed %q", r.stdout)
	}
	// Cancelling a finished run has no effect and is not an error.
	r := mustSucceed(t, runCmdTTY(t, "cancel", id))
	if !strings.Contains(r.stdout, "already cancelled") {
		t.Errorf("second cancel printed %q", r.stdout)
	}
	run = decode[spool.Run](t, mustSucceed(t, runCmd(t, "cancel", id, "--json")))
	if run.State != spool.StateCancelled {
		t.Errorf("cancel --json of a cancelled run: %+v", run)
	}

	retry := decode[map[string]any](t, mustSucceed(t, runCmd(t, "retry", id, "--json")))
	newID, _ := retry["job_id"].(string)
	if retry["retry_of"] != id || newID == id || newID == "" {
		t.Errorf("retry --json = %v, want a new run with retry_of", retry)
	}
	mustSucceed(t, runCmd(t, "cancel", newID))

	if r := runCmd(t, "rm", id, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"deleted":true`) {
		t.Errorf("rm --json: %v", r)
	}
	if r := runCmd(t, "status", id); r.code != ExitAPI {
		t.Errorf("status of a deleted run: %v, want exit %d", r, ExitAPI)
	}

	// A running run is cancelled through its process.
	sid := submitID(t, "", "sleep", "--input", `{"seconds": 30}`)
	eventually(t, 10*time.Second, "the run to start", func() bool {
		return decode[spool.Run](t, runCmd(t, "status", sid, "--json")).State == spool.StateRunning
	})
	mustSucceed(t, runCmd(t, "cancel", sid))
	if r := runCmd(t, "wait", sid); r.code != ExitFailed || !strings.Contains(r.stderr, "cancelled") {
		t.Errorf("wait of a cancelled run: %v", r)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	url := ownServer(t)
	id := submitID(t, url, "echo", "--input", "1", "--priority", "high")
	mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "wait", id))
	submitID(t, url, "echo", "--input", "1", "--delay", "1h")

	st := decode[map[string]any](t, mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "stats", "--json")))
	if st["succeeded_count"] != 1.0 || st["scheduled_count"] != 1.0 || st["total_runs"] != 2.0 {
		t.Errorf("stats --json = %v", st)
	}
	r := mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "stats"))
	if !strings.Contains(r.stdout, "succeeded\t1\n") || !strings.Contains(r.stdout, "total\t2\n") || !strings.Contains(r.stdout, "max_concurrent\t") {
		t.Errorf("piped stats:\n%s", r.stdout)
	}
	r = mustSucceed(t, runCmdWith(t, cliOpts{url: url, tty: true}, "stats"))
	if plain := iostreams.StripANSI(r.stdout); !strings.Contains(plain, "✅ succeeded") || !strings.Contains(plain, "avg duration") {
		t.Errorf("TTY stats:\n%s", plain)
	}
}

func TestClear(t *testing.T) {
	t.Parallel()
	url := ownServer(t)
	done := submitID(t, url, "echo", "--input", "1")
	mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "wait", done))
	waiting := submitID(t, url, "echo", "--input", "1", "--delay", "1h")

	out := decode[map[string]any](t, mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "clear", "--json")))
	if out["deleted"] != 1.0 {
		t.Errorf("clear --json = %v, want 1 deleted (the finished run only)", out)
	}
	if r := runCmdWith(t, cliOpts{url: url}, "status", waiting); r.code != 0 {
		t.Errorf("clear deleted the active run: %v", r)
	}
	if r := runCmdWith(t, cliOpts{url: url}, "clear", "--all"); r.code != ExitUsage || !strings.Contains(r.stderr, "--force") {
		t.Errorf("clear --all without --force: %v", r)
	}
	if r := mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "clear", "--all", "--force")); strings.TrimSpace(r.stdout) != "1" {
		t.Errorf("clear --all --force printed %q, want 1", r.stdout)
	}
	if r := runCmdWith(t, cliOpts{url: url}, "status", waiting); r.code != ExitAPI {
		t.Errorf("clear --all left the active run: %v", r)
	}
}

func TestRecipeCommands(t *testing.T) {
	t.Parallel()
	list := decode[map[string]any](t, mustSucceed(t, runCmd(t, "recipe", "ls", "--json")))
	recipes, _ := list["recipes"].([]any)
	var names []string
	for _, r := range recipes {
		names = append(names, r.(map[string]any)["name"].(string))
	}
	for _, want := range []string{"countdown", "echo", "fail", "my-recipe", "sleep"} {
		if !slices.Contains(names, want) {
			t.Errorf("recipe ls --json lacks %s: %v", want, names)
		}
	}
	r := mustSucceed(t, runCmd(t, "recipe", "ls"))
	if !strings.Contains(r.stdout, "echo\texec\t") {
		t.Errorf("piped recipe ls:\n%s", r.stdout)
	}
	show := decode[map[string]any](t, mustSucceed(t, runCmd(t, "recipe", "show", "countdown", "--json")))
	if show["name"] != "countdown" || show["kind"] != "exec" || show["input_schema"] == nil {
		t.Errorf("recipe show --json = %v", show)
	}
	if r := runCmd(t, "recipe", "show", "nope"); r.code != ExitAPI {
		t.Errorf("recipe show nope: %v", r)
	}

	// run streams the output and exits with the run's outcome.
	r = mustSucceed(t, runCmd(t, "recipe", "run", "countdown", "--input", `{"n": 2, "delay": 0}`))
	if r.stdout != "2\n1\nliftoff\n" {
		t.Errorf("recipe run printed %q", r.stdout)
	}
	if r := runCmd(t, "recipe", "run", "fail"); r.code != ExitFailed {
		t.Errorf("recipe run fail: %v, want exit 1", r)
	}
	bg := decode[map[string]any](t, mustSucceed(t, runCmd(t, "recipe", "run", "echo", "--background", "--input", `{"q": 1}`, "--session-id", "s1", "--json")))
	if bg["ok"] != true || bg["recipe"] != "echo" || bg["session_id"] != "s1" || !strings.HasPrefix(bg["task_id"].(string), "run_") {
		t.Errorf("recipe run --background --json = %v", bg)
	}
}

func TestRecipeValidateOffline(t *testing.T) {
	t.Parallel()
	// No server: validate reads files only.
	offline := cliOpts{url: "http://127.0.0.1:1"}
	r := mustSucceed(t, runCmdWith(t, offline, "recipe", "validate", "testdata/recipes"))
	if strings.Count(r.stdout, "✓") != 5 {
		t.Errorf("validate testdata/recipes:\n%s", r)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("name: bad\nkind: exec\nexec: {command: [\"true\"]}\nbogus_key: 1\n"), 0o600)
	r = runCmdWith(t, offline, "recipe", "validate", bad)
	if r.code != ExitFailed || !strings.Contains(r.stderr, "bogus_key") || !strings.Contains(r.stderr, "bad.yaml") {
		t.Errorf("validate of a recipe with an unknown key: %v", r)
	}
	out := decode[map[string]any](t, runCmdWith(t, offline, "recipe", "validate", bad, "--json"))
	if out["ok"] != false || len(out["errors"].([]any)) != 1 {
		t.Errorf("validate --json = %v", out)
	}
}

func TestBackgroundGroup(t *testing.T) {
	t.Parallel()
	r := mustSucceed(t, runCmd(t, "background", "submit", "--recipe", "echo", "-i", `{"query": "test"}`, "-s", "session_123", "--json"))
	var sub map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil {
		t.Fatal(err)
	}
	if len(sub) != 4 || sub["ok"] != true || sub["recipe"] != "echo" || sub["session_id"] != "session_123" {
		t.Errorf("background submit --json = %s, want exactly ok, task_id, recipe, session_id", r.stdout)
	}
	if !strings.HasPrefix(r.stdout, `{"ok":true,"task_id":`) {
		t.Errorf("background submit --json key order: %s", r.stdout)
	}
	id := sub["task_id"].(string)
	run := decode[spool.Run](t, mustSucceed(t, runCmd(t, "status", id, "--json")))
	if run.TimeoutSec != 300 {
		t.Errorf("background submit timeout = %d, want the seed's default 300", run.TimeoutSec)
	}
	mustSucceed(t, runCmd(t, "wait", id))

	st := decode[map[string]any](t, mustSucceed(t, runCmd(t, "background", "status", id, "--json")))
	if st["status"] != "completed" || st["task_id"] != id || st["ok"] != true || st["progress"] != 1.0 {
		t.Errorf("background status --json = %v, want status completed", st)
	}
	r = mustSucceed(t, runCmd(t, "background", "status", id))
	if !strings.Contains(r.stdout, "Task: "+id+"\nStatus: completed\nProgress: 100%\n") || !strings.Contains(r.stdout, "Session: session_123") {
		t.Errorf("background status:\n%s", r.stdout)
	}

	// Non-JSON input is wrapped as PraisonAI does.
	r = mustSucceed(t, runCmd(t, "background", "submit", "--recipe", "echo", "--input", "not json", "--timeout", "60"))
	id2 := strings.TrimSpace(r.stdout)
	run = decode[spool.Run](t, mustSucceed(t, runCmd(t, "status", id2, "--json")))
	if string(run.Input) != `{"input":"not json"}` || run.TimeoutSec != 60 {
		t.Errorf("input %s timeout %d, want {\"input\":\"not json\"} and 60", run.Input, run.TimeoutSec)
	}

	list := decode[map[string]any](t, mustSucceed(t, runCmd(t, "background", "list", "--status", "completed", "--page-size", "100", "--json")))
	found := false
	for _, task := range list["tasks"].([]any) {
		m := task.(map[string]any)
		if m["status"] != "completed" {
			t.Errorf("list --status completed returned %v", m["status"])
		}
		found = found || m["task_id"] == id
	}
	if !found {
		t.Errorf("background list --json lacks %s", id)
	}
	r = mustSucceed(t, runCmdTTY(t, "background", "list", "--status", "completed", "--page-size", "5"))
	if plain := iostreams.StripANSI(r.stdout); !strings.Contains(plain, "╭─ Background Tasks") || !strings.Contains(plain, "✅ [") || !strings.Contains(plain, "- completed") {
		t.Errorf("TTY background list:\n%s", plain)
	}

	cancel := decode[map[string]any](t, mustSucceed(t, runCmd(t, "background", "cancel", id, "--json")))
	if cancel["ok"] != true || cancel["cancelled"] != false || cancel["status"] != "completed" {
		t.Errorf("background cancel of a finished task = %v", cancel)
	}
	sid := submitID(t, "", "sleep", "--input", `{"seconds": 30}`, "--delay", "1h")
	cancel = decode[map[string]any](t, mustSucceed(t, runCmd(t, "background", "cancel", sid, "--json")))
	if cancel["cancelled"] != true || cancel["status"] != "cancelled" {
		t.Errorf("background cancel of a pending task = %v", cancel)
	}

	// Errors under --json are {"ok": false, "error": ...} with the usual exit code.
	r = runCmd(t, "background", "status", "run_nope", "--json")
	if r.code != ExitAPI || !strings.HasPrefix(r.stdout, `{"ok":false,"error":`) {
		t.Errorf("background status of an unknown task: %v", r)
	}
	if r := runCmd(t, "background", "submit", "--json"); r.code != ExitUsage || !strings.Contains(r.stderr, "recipe") {
		t.Errorf("background submit without --recipe: %v", r)
	}
}

func TestBackgroundClear(t *testing.T) {
	t.Parallel()
	url := ownServer(t)
	id := submitID(t, url, "echo", "--input", "1")
	mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "wait", id))
	out := decode[map[string]any](t, mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "background", "clear", "--older-than", "3600", "--json")))
	if out["cleared"] != 0.0 {
		t.Errorf("clear --older-than 3600 = %v, want nothing older than an hour", out)
	}
	out = decode[map[string]any](t, mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "background", "clear", "--json")))
	if out["ok"] != true || out["cleared"] != 1.0 {
		t.Errorf("background clear --json = %v, want 1 cleared", out)
	}
}

func TestQueueGroup(t *testing.T) {
	t.Parallel()
	url := ownServer(t)
	o := cliOpts{url: url}
	done := submitID(t, url, "echo", "--input", "1")
	mustSucceed(t, runCmdWith(t, o, "wait", done))
	waiting := submitID(t, url, "echo", "--input", "1", "--delay", "1h")

	list := decode[spool.RunList](t, mustSucceed(t, runCmdWith(t, o, "queue", "ls", "--json")))
	if len(list.Runs) != 1 || list.Runs[0].ID != waiting {
		t.Errorf("queue ls lists %+v, want only the waiting run", list.Runs)
	}
	st := decode[map[string]any](t, mustSucceed(t, runCmdWith(t, o, "queue", "stats", "--json")))
	if st["total_runs"] != 2.0 {
		t.Errorf("queue stats = %v", st)
	}
	if r := runCmdWith(t, o, "queue", "clear"); r.code != ExitUsage {
		t.Errorf("queue clear without --force: %v", r)
	}
	out := decode[map[string]any](t, mustSucceed(t, runCmdWith(t, o, "queue", "clear", "--force", "--json")))
	if out["cancelled"] != 1.0 {
		t.Errorf("queue clear --force = %v, want 1 cancelled", out)
	}
	if run := decode[spool.Run](t, runCmdWith(t, o, "status", waiting, "--json")); run.State != spool.StateCancelled {
		t.Errorf("waiting run is %s after queue clear", run.State)
	}
	retry := decode[spool.Run](t, mustSucceed(t, runCmdWith(t, o, "queue", "retry", done, "--json")))
	if retry.RetryOf != done {
		t.Errorf("queue retry = %+v", retry)
	}
	if run := decode[spool.Run](t, mustSucceed(t, runCmdWith(t, o, "queue", "cancel", retry.ID, "--json"))); run.ID != retry.ID {
		t.Errorf("queue cancel = %+v", run)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	t.Parallel()
	v := decode[map[string]any](t, mustSucceed(t, runCmd(t, "version", "--json")))
	if v["version"] != "test" || v["go"] == "" {
		t.Errorf("version --json = %v", v)
	}
	if r := mustSucceed(t, runCmd(t, "version")); !strings.HasPrefix(r.stdout, "spool version test") {
		t.Errorf("version printed %q", r.stdout)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if r := mustSucceed(t, runCmd(t, "completion", shell)); !strings.Contains(r.stdout, "spool") {
			t.Errorf("completion %s printed no script", shell)
		}
	}
	if r := runCmd(t, "completion", "tcsh"); r.code != ExitUsage {
		t.Errorf("completion tcsh: %v", r)
	}
}

// TestExitCodes runs the built binary, as scripts do.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	env := []string{"SPOOL_URL=" + sharedURL}

	r := runBinary(t, env, "submit", "fail", "--wait")
	if r.code != ExitFailed {
		t.Errorf("a failed run: %v, want exit %d", r, ExitFailed)
	}
	r = runBinary(t, env, "status", "run_01UNKNOWN")
	if r.code != ExitAPI || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "run_01UNKNOWN") {
		t.Errorf("an unknown id: %v, want exit %d and one line naming it", r, ExitAPI)
	}
	r = runBinary(t, env, "ls", "--no-such-flag")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--no-such-flag") {
		t.Errorf("a bad flag: %v, want exit %d", r, ExitUsage)
	}
	r = runBinary(t, env, "status")
	if r.code != ExitUsage {
		t.Errorf("a missing argument: %v, want exit %d", r, ExitUsage)
	}
	r = runBinary(t, env, "frobnicate")
	if r.code != ExitUsage {
		t.Errorf("an unknown command: %v, want exit %d", r, ExitUsage)
	}
	r = runBinary(t, []string{"SPOOL_URL=http://127.0.0.1:1"}, "ls")
	if r.code != ExitUnreachable || !strings.Contains(r.stderr, "spool server") {
		t.Errorf("an unreachable server: %v, want exit %d and a hint to run spool server", r, ExitUnreachable)
	}
	r = runBinary(t, nil, "--server", "http://127.0.0.1:1", "status", "run_x")
	if r.code != ExitUnreachable {
		t.Errorf("--server unreachable: %v", r)
	}
	if r := runBinary(t, env, "status", "run_01UNKNOWN", "--json"); r.code != ExitAPI || r.stdout != "" {
		t.Errorf("--json error: %v; want nothing on stdout", r)
	}
}

// TestSeedPollingScript runs PraisonAI's background polling script, with spool in place of
// praisonai, under bash with jq against the built binary.
func TestSeedPollingScript(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI: %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	// The script sleeps 5 s between polls; a `sleep` earlier in PATH makes that 0.1 s so the
	// script itself stays exactly the seed's.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "sleep"), []byte("#!/bin/sh\nexec /bin/sleep 0.1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("testdata/poll.sh")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = []string{
		"PATH=" + bin + string(os.PathListSeparator) + filepath.Dir(spoolBin) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"SPOOL_URL=" + sharedURL, "HOME=" + tmpRoot,
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("poll.sh: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if !regexp.MustCompile(`^Submitted task: run_\w+$`).MatchString(lines[0]) {
		t.Errorf("first line %q, want the task id", lines[0])
	}
	if lines[len(lines)-1] != "Task finished with status: completed" {
		t.Errorf("last line %q, want the completed status\n%s", lines[len(lines)-1], out)
	}
	for _, l := range lines[1 : len(lines)-1] {
		if !slices.Contains([]string{"Status: pending", "Status: running", "Status: completed"}, l) {
			t.Errorf("unexpected line %q: statuses must use the seed's words", l)
		}
	}
	if len(lines) < 4 {
		t.Errorf("the script polled only once; my-recipe should still be running at first:\n%s", out)
	}
}

// TestJobsServer starts `spool jobs server --port N` (PraisonAI's command) from the binary
// and talks to it.
func TestJobsServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	recipes, _ := filepath.Abs("testdata/recipes")
	cmd := exec.Command(spoolBin, "jobs", "server", "--port", strconv.Itoa(port),
		"--db", filepath.Join(t.TempDir(), "jobs.db"), "--recipes", recipes, "--log-format", "json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmpRoot}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("jobs server did not stop on SIGTERM")
		}
	}()

	url := "http://127.0.0.1:" + strconv.Itoa(port)
	eventually(t, 20*time.Second, "the jobs server to answer", func() bool {
		return runCmdWith(t, cliOpts{url: url}, "recipe", "ls").code == 0
	})
	r := mustSucceed(t, runCmdWith(t, cliOpts{url: url}, "submit", "echo", "--input", `"via jobs server"`, "--wait"))
	if r.stdout != "via jobs server\n" {
		t.Errorf("submit --wait through jobs server printed %q\nserver log:\n%s", r.stdout, logs.String())
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	url := ownServer(t, func(c *server.Config) { c.APIKey = "s3cret" })

	r := runBinary(t, []string{"SPOOL_URL=" + url}, "ls")
	if r.code != ExitAPI || !strings.Contains(r.stderr, "SPOOL_TOKEN") {
		t.Errorf("without a token: %v; want exit %d and a hint about the token", r, ExitAPI)
	}
	mustSucceed(t, runBinary(t, []string{"SPOOL_URL=" + url, "SPOOL_TOKEN=s3cret"}, "ls"))
	mustSucceed(t, runBinary(t, []string{"SPOOL_URL=" + url}, "--token", "s3cret", "stats"))
	if r := runBinary(t, []string{"SPOOL_URL=" + url}, "--token", "wrong", "stats"); r.code != ExitAPI {
		t.Errorf("a wrong token: %v", r)
	}
}
