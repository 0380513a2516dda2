package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
)

// These tests check flag parsing and the pure helpers, without a server: each command is
// built with a runF that captures its options (the gh pattern).

// parse runs cmd with args and returns the error.
func parse(t *testing.T, f *Factory, cmd *cobra.Command, args ...string) error {
	t.Helper()
	root := &cobra.Command{Use: "spool", SilenceErrors: true, SilenceUsage: true}
	root.PersistentFlags().BoolVar(&f.JSON, "json", false, "")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &FlagError{Err: err} })
	root.AddCommand(cmd)
	root.SetArgs(append([]string{cmd.Name()}, args...))
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	_, err := root.ExecuteC()
	return err
}

func testFactory() *Factory {
	ios, _, _, _ := iostreams.Test()
	return NewFactory(ios, "test")
}

func TestSubmitFlags(t *testing.T) {
	t.Parallel()
	f := testFactory()
	var got *SubmitOptions
	cmd := NewCmdSubmit(f, func(o *SubmitOptions) error { got = o; return nil })
	err := parse(t, f, cmd, "summarize", "-i", `{"q": 1}`, "-c", `{"max_tokens": 10}`, "-p", "urgent", "-s", "s1",
		"--timeout", "60", "--max-retries", "0", "--idempotency-key", "k", "--delay", "90s", "--wait", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if got.Recipe != "summarize" || !got.Wait || !got.JSON || !got.SetMaxRetries || got.Delay != 90*time.Second {
		t.Errorf("options = %+v", got)
	}
	req, err := got.request()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(req)
	want := `{"recipe_name":"summarize","input":{"q":1},"config":{"max_tokens":10},"priority":"urgent","session_id":"s1","timeout":60,"max_retries":0,"idempotency_key":"k","delay":"1m30s"}`
	if string(b) != want {
		t.Errorf("request = %s\nwant      %s", b, want)
	}

	for _, bad := range [][]string{
		{"echo", "--priority", "asap"},
		{"echo", "--config", "[1]"},
		{"echo", "--wait", "--follow"},
		{"echo", "--run-at", "tomorrow"},
		{"echo", "--timeout", "-1"},
		{},
		{"a", "b"},
	} {
		f := testFactory()
		cmd := NewCmdSubmit(f, func(o *SubmitOptions) error { _, err := o.request(); return err })
		err := parse(t, f, cmd, bad...)
		if ExitCode(err) != ExitUsage {
			t.Errorf("submit %q: error %v (exit %d), want a usage error", bad, err, ExitCode(err))
		}
	}
}

func TestReadJSONArg(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		asString bool
		want     string
		usage    bool
	}{
		{`{"a": 1}`, true, `{"a": 1}`, false},
		{`42`, true, `42`, false},
		{`hello world`, true, `"hello world"`, false},
		{`hello`, false, ``, true},
		{`{"a": `, true, ``, true},
		{`["x"`, true, ``, true},
		{`"unterminated`, true, ``, true},
		{`-`, true, `{"from":"stdin"}`, false},
		{`@/nonexistent/file.json`, true, ``, true},
	}
	for _, tt := range tests {
		got, err := readJSONArg(strings.NewReader(`{"from":"stdin"}`), "input", tt.in, tt.asString)
		if tt.usage {
			if ExitCode(err) != ExitUsage {
				t.Errorf("readJSONArg(%q) error %v, want a usage error", tt.in, err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("readJSONArg(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestResultText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw    string
		pretty bool
		want   string
	}{
		{`null`, false, ""},
		{``, false, ""},
		{`"plain"`, false, "plain"},
		{`{"output": "streamed text\n"}`, false, "streamed text\n"},
		{`{"output": "x", "usage": {"tokens": 3}}`, false, `{"output":"x","usage":{"tokens":3}}`},
		{`{"a":1}`, true, "{\n  \"a\": 1\n}"},
		{`[1, 2]`, false, `[1,2]`},
	}
	for _, tt := range tests {
		if got := resultText(json.RawMessage(tt.raw), tt.pretty); got != tt.want {
			t.Errorf("resultText(%s, %v) = %q, want %q", tt.raw, tt.pretty, got, tt.want)
		}
	}
}

func TestExitCodeMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errRunFailed, ExitFailed},
		{&FlagError{Err: errors.New("bad")}, ExitUsage},
		{errors.New(`unknown command "x" for "spool"`), ExitUsage},
		{&spool.ConnectionError{URL: "http://x", Err: errors.New("refused")}, ExitUnreachable},
		{fmt.Errorf("wrapped: %w", &spool.Error{Code: spool.CodeNotFound, Message: "no run"}), ExitAPI},
		{&ExitError{Code: ExitTimeout}, ExitTimeout},
		{context.Canceled, ExitInterrupted},
		{&jsonErrorPrinted{err: &spool.Error{Code: spool.CodeConflict}}, ExitAPI},
		{errors.New("anything else"), ExitFailed},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	ios, _, _, errOut := iostreams.Test()
	printError(errOut, ios, nil, &spool.ConnectionError{URL: "http://127.0.0.1:8005", Err: errors.New("dial tcp: connect: connection refused")})
	if !strings.Contains(errOut.String(), "cannot reach the Spool server at http://127.0.0.1:8005") || !strings.Contains(errOut.String(), "spool server") {
		t.Errorf("unreachable message: %q", errOut.String())
	}
	errOut.Reset()
	printError(errOut, ios, nil, &spool.Error{Code: spool.CodeNotFound, Message: "no run run_x\nat all"})
	if errOut.String() != "error: no run run_x at all\n" {
		t.Errorf("API error message: %q, want one line with the detail", errOut.String())
	}
	errOut.Reset()
	printError(errOut, ios, nil, errRunFailed)
	if errOut.Len() != 0 {
		t.Errorf("a run's failure is reported by the command, not again: %q", errOut.String())
	}
}
