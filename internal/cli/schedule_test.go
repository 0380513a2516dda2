package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spool-run/spool/internal/cli/iostreams"
)

func TestScheduleAddFlags(t *testing.T) {
	t.Parallel()
	f := testFactory()
	var got *ScheduleAddOptions
	cmd := NewCmdScheduleAdd(f, func(o *ScheduleAddOptions) error { got = o; return nil })
	err := parse(t, f, cmd, "nightly", "digest", "--cron", "30 2 * * *", "--timezone", "Europe/Berlin",
		"-i", `{"q": 1}`, "-p", "high", "--catchup", "last", "--overlap", "skip", "--max-retries", "0", "--paused")
	if err != nil {
		t.Fatal(err)
	}
	body, err := got.request()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(body)
	want := `{"catchup":"last","cron":"30 2 * * *","input":{"q":1},"max_retries":0,"name":"nightly","overlap":"skip","paused":true,"priority":"high","recipe_name":"digest","timezone":"Europe/Berlin"}`
	if string(b) != want {
		t.Errorf("body = %s\nwant   %s", b, want)
	}
	for _, bad := range [][]string{
		{"n", "r"},
		{"n", "r", "--cron", "@daily", "--every", "1h"},
		{"n", "--every", "1h"},
		{"n", "r", "--every", "1h", "--priority", "asap"},
		{"n", "r", "--every", "1h", "--config", "[1]"},
	} {
		f := testFactory()
		cmd := NewCmdScheduleAdd(f, func(o *ScheduleAddOptions) error { _, err := o.request(); return err })
		if err := parse(t, f, cmd, bad...); ExitCode(err) != ExitUsage {
			t.Errorf("schedule add %q: %v (exit %d), want a usage error", bad, err, ExitCode(err))
		}
	}

	// submit --in and --at are --delay and --run-at.
	f = testFactory()
	var sub *SubmitOptions
	if err := parse(t, f, NewCmdSubmit(f, func(o *SubmitOptions) error { sub = o; return nil }), "echo", "--in", "90s"); err != nil || sub.Delay != 90*time.Second {
		t.Errorf("submit --in: %+v %v", sub, err)
	}
	f = testFactory()
	if err := parse(t, f, NewCmdSubmit(f, func(o *SubmitOptions) error { sub = o; return nil }), "echo", "--at", "2030-01-02T03:04:05Z"); err != nil || sub.RunAt != "2030-01-02T03:04:05Z" {
		t.Errorf("submit --at: %+v %v", sub, err)
	}
}

func TestScheduleCommands(t *testing.T) {
	t.Parallel()
	url := ownServer(t)
	run := func(args ...string) result { return mustSucceed(t, runCmdWith(t, cliOpts{url: url}, args...)) }

	id := strings.TrimSpace(run("schedule", "add", "nightly", "echo", "--cron", "30 2 * * *", "--timezone", "America/New_York",
		"--input", `{"n": 1}`).stdout)
	if !strings.HasPrefix(id, "sch_") {
		t.Fatalf("schedule add printed %q, want an id", id)
	}
	created := decode[map[string]any](t, run("schedule", "add", "often", "echo", "--every", "10m", "--json"))
	if created["every"] != "10m" || created["recipe_name"] != "echo" || len(created["next_run_times"].([]any)) != 5 {
		t.Errorf("schedule add --json = %v", created)
	}
	if r := runCmdWith(t, cliOpts{url: url}, "schedule", "add", "often", "echo", "--every", "1h"); r.code != ExitAPI || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("duplicate name: %v", r)
	}
	if r := runCmdWith(t, cliOpts{url: url}, "schedule", "add", "bad", "echo", "--cron", "99 * * * *"); r.code != ExitAPI || !strings.Contains(r.stderr, "cron") {
		t.Errorf("bad cron: %v", r)
	}

	// ls: piped TSV; on a terminal a table; --json the API's list.
	lines := strings.Split(strings.TrimSpace(run("schedule", "ls").stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], id+"\tnightly\techo\t30 2 * * * (America/New_York)\t") ||
		!strings.HasSuffix(lines[0], "\t-\tactive") {
		t.Errorf("schedule ls:\n%s", strings.Join(lines, "\n"))
	}
	tty := iostreams.StripANSI(mustSucceed(t, runCmdWith(t, cliOpts{url: url, tty: true}, "schedule", "ls")).stdout)
	if !strings.Contains(tty, "NEXT RUN") || !strings.Contains(tty, "every 10m") || !strings.Contains(tty, "in ") {
		t.Errorf("schedule ls on a terminal:\n%s", tty)
	}
	list := decode[map[string][]map[string]any](t, run("schedule", "ls", "--json"))
	if len(list["schedules"]) != 2 {
		t.Errorf("schedule ls --json = %v", list)
	}

	// show, pause, trigger, resume, rm.
	show := run("schedule", "show", "nightly").stdout
	if !strings.Contains(show, "id\t"+id+"\n") || !strings.Contains(show, "state\tactive\n") || !strings.Contains(show, "next_runs\t") {
		t.Errorf("schedule show:\n%s", show)
	}
	if got := strings.TrimSpace(run("schedule", "pause", "nightly").stdout); got != id {
		t.Errorf("pause printed %q", got)
	}
	if !strings.Contains(run("schedule", "show", id).stdout, "state\tpaused\n") {
		t.Error("show after pause does not say paused")
	}
	runID := strings.TrimSpace(run("schedule", "trigger", "nightly").stdout)
	if !strings.HasPrefix(runID, "run_") {
		t.Fatalf("trigger printed %q", runID)
	}
	st := decode[map[string]any](t, run("status", runID, "--json"))
	if st["schedule_id"] != id {
		t.Errorf("triggered run = %v", st)
	}
	run("wait", runID)
	resumed := decode[map[string]any](t, run("schedule", "resume", id, "--json"))
	if resumed["paused"] != false || resumed["next_run_at"] == nil {
		t.Errorf("resume --json = %v", resumed)
	}
	if out := iostreams.StripANSI(mustSucceed(t, runCmdWith(t, cliOpts{url: url, tty: true}, "schedule", "rm", "often")).stdout); !strings.Contains(out, "Deleted schedule often") {
		t.Errorf("rm on a terminal: %q", out)
	}
	if r := runCmdWith(t, cliOpts{url: url}, "schedule", "show", "often"); r.code != ExitAPI || !strings.Contains(r.stderr, "not found") {
		t.Errorf("show after rm: %v", r)
	}
}
