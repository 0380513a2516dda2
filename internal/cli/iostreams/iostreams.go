// Package iostreams routes the CLI's input and output, and knows whether each stream is a
// terminal, whether colour is wanted, and how wide the terminal is.
package iostreams

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/mattn/go-isatty"
)

// IOStreams holds the standard streams of one CLI invocation.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY  bool
	stdoutTTY bool
	stderrTTY bool
	// noColor is set by NO_COLOR or TERM=dumb.
	noColor bool
	// width is the terminal's width in cells, 0 when unknown.
	width    int
	outFile  *os.File
	getWidth func(*os.File) int
}

// System returns the process's streams, with terminal and colour detection from the
// environment: NO_COLOR (any non-empty value) and TERM=dumb turn colour off.
func System() *IOStreams {
	s := &IOStreams{
		In:       os.Stdin,
		Out:      os.Stdout,
		ErrOut:   os.Stderr,
		outFile:  os.Stdout,
		getWidth: terminalWidth,
	}
	s.stdinTTY = isTerminal(os.Stdin)
	s.stdoutTTY = isTerminal(os.Stdout)
	s.stderrTTY = isTerminal(os.Stderr)
	s.noColor = NoColorFromEnv(os.Getenv)
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		s.width = n
	}
	return s
}

// NoColorFromEnv reports whether the environment asks for no colour: NO_COLOR set to any
// non-empty value (https://no-color.org), or TERM=dumb.
func NoColorFromEnv(getenv func(string) string) bool {
	return getenv("NO_COLOR") != "" || getenv("TERM") == "dumb"
}

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// Test returns streams backed by buffers, none of them a terminal, for tests. Use
// SetStdoutTTY and friends to pretend otherwise.
func Test() (ios *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut, width: 100}, in, out, errOut
}

// IsStdinTTY reports whether standard input is a terminal.
func (s *IOStreams) IsStdinTTY() bool { return s.stdinTTY }

// IsStdoutTTY reports whether standard output is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }

// IsStderrTTY reports whether standard error is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// SetStdinTTY pretends standard input is (or is not) a terminal.
func (s *IOStreams) SetStdinTTY(v bool) { s.stdinTTY = v }

// SetStdoutTTY pretends standard output is (or is not) a terminal.
func (s *IOStreams) SetStdoutTTY(v bool) { s.stdoutTTY = v }

// SetStderrTTY pretends standard error is (or is not) a terminal.
func (s *IOStreams) SetStderrTTY(v bool) { s.stderrTTY = v }

// SetNoColor turns colour off (or back on) whatever the terminal.
func (s *IOStreams) SetNoColor(v bool) { s.noColor = v }

// ColorEnabled reports whether standard output gets colour: it is a terminal and colour
// was not turned off.
func (s *IOStreams) ColorEnabled() bool { return s.stdoutTTY && !s.noColor }

// ColorScheme returns the colours for standard output.
func (s *IOStreams) ColorScheme() *ColorScheme { return &ColorScheme{enabled: s.ColorEnabled()} }

// ErrColorScheme returns the colours for standard error.
func (s *IOStreams) ErrColorScheme() *ColorScheme {
	return &ColorScheme{enabled: s.stderrTTY && !s.noColor}
}

// CanPrompt reports whether the user can be asked a question: standard input and output
// are both terminals.
func (s *IOStreams) CanPrompt() bool { return s.stdinTTY && s.stdoutTTY }

// TerminalWidth returns the width of the terminal in cells (80 when unknown).
func (s *IOStreams) TerminalWidth() int {
	if s.getWidth != nil && s.outFile != nil {
		if w := s.getWidth(s.outFile); w > 0 {
			return w
		}
	}
	if s.width > 0 {
		return s.width
	}
	return 80
}

// SetTerminalWidth fixes the terminal width, for tests.
func (s *IOStreams) SetTerminalWidth(w int) {
	s.width = w
	s.getWidth = nil
}

// ColorScheme paints strings with ANSI colours, or leaves them alone when colour is off.
type ColorScheme struct{ enabled bool }

// Enabled reports whether the scheme paints.
func (c *ColorScheme) Enabled() bool { return c.enabled }

func (c *ColorScheme) paint(code, s string) string {
	if !c.enabled || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// Bold makes s bold.
func (c *ColorScheme) Bold(s string) string { return c.paint("1", s) }

// Red paints s red.
func (c *ColorScheme) Red(s string) string { return c.paint("31", s) }

// Green paints s green.
func (c *ColorScheme) Green(s string) string { return c.paint("32", s) }

// Yellow paints s yellow.
func (c *ColorScheme) Yellow(s string) string { return c.paint("33", s) }

// Blue paints s blue.
func (c *ColorScheme) Blue(s string) string { return c.paint("34", s) }

// Magenta paints s magenta.
func (c *ColorScheme) Magenta(s string) string { return c.paint("35", s) }

// Cyan paints s cyan.
func (c *ColorScheme) Cyan(s string) string { return c.paint("36", s) }

// Gray paints s dim grey.
func (c *ColorScheme) Gray(s string) string { return c.paint("90", s) }

// SuccessIcon is a green check mark.
func (c *ColorScheme) SuccessIcon() string { return c.Green("✓") }

// FailureIcon is a red cross.
func (c *ColorScheme) FailureIcon() string { return c.Red("✗") }

// WarningIcon is a yellow exclamation mark.
func (c *ColorScheme) WarningIcon() string { return c.Yellow("!") }

// StripANSI removes ANSI escape sequences from s.
func StripANSI(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
