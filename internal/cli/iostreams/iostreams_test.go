package iostreams

import (
	"strings"
	"testing"
)

func TestColor(t *testing.T) {
	t.Parallel()
	ios, _, _, _ := Test()
	if ios.ColorEnabled() || ios.ColorScheme().Red("x") != "x" {
		t.Errorf("colour on a pipe")
	}
	ios.SetStdoutTTY(true)
	if !ios.ColorEnabled() || ios.ColorScheme().Red("x") != "\x1b[31mx\x1b[0m" {
		t.Errorf("no colour on a terminal")
	}
	ios.SetNoColor(true)
	if ios.ColorEnabled() {
		t.Errorf("colour despite NO_COLOR")
	}
	if got := StripANSI("\x1b[1;32mok\x1b[0m done"); got != "ok done" {
		t.Errorf("StripANSI = %q", got)
	}
}

func TestNoColorFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"NO_COLOR": "1"}, true},
		{map[string]string{"NO_COLOR": ""}, false},
		{map[string]string{"TERM": "dumb"}, true},
		{map[string]string{"TERM": "xterm-256color"}, false},
	}
	for _, tt := range tests {
		if got := NoColorFromEnv(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("NoColorFromEnv(%v) = %v, want %v", tt.env, got, tt.want)
		}
	}
}

func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	ios, _, out, errOut := Test()
	ios.SetStderrTTY(true)
	p := ios.StartProgress("waiting for run_1")
	p.SetPercent(45, "step two")
	p.Write(ios.Out, []byte("partial"))
	p.SetPercent(50, "") // not drawn: the output line is unfinished
	p.Write(ios.Out, []byte(" line\n"))
	p.Stop()
	p.Stop() // twice is fine

	if out.String() != "partial line\n" {
		t.Errorf("stdout = %q, want the output unchanged", out.String())
	}
	e := errOut.String()
	for _, want := range []string{"waiting for run_1", " 45% step two", "█████████░", "\r\x1b[K"} {
		if !strings.Contains(e, want) {
			t.Errorf("stderr lacks %q: %q", want, e)
		}
	}
	if !strings.HasSuffix(e, "\r\x1b[K") {
		t.Errorf("the status line was not erased at Stop: %q", e)
	}
}

func TestProgressOffTerminal(t *testing.T) {
	t.Parallel()
	ios, _, out, errOut := Test()
	p := ios.StartProgress("waiting")
	p.SetPercent(10, "x")
	p.Write(ios.Out, []byte("text\n"))
	p.Stop()
	if errOut.Len() != 0 || out.String() != "text\n" {
		t.Errorf("piped progress wrote %q to stderr and %q to stdout; want nothing and the text", errOut.String(), out.String())
	}
}
