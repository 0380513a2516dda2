package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spool-run/spool"
	"github.com/spool-run/spool/internal/cli/iostreams"
	"github.com/spool-run/spool/internal/cli/tableprinter"
	"github.com/spool-run/spool/internal/cli/text"
)

// stateIcon is the emoji shown beside a state on a terminal.
func stateIcon(s spool.State) string {
	switch s {
	case spool.StateRunning:
		return "🔄"
	case spool.StateSucceeded:
		return "✅"
	case spool.StateFailed:
		return "❌"
	case spool.StatePaused:
		return "⏸️"
	case spool.StateQueued, spool.StateScheduled:
		return "🕒"
	case spool.StateCancelled:
		return "⛔"
	}
	return "❔"
}

// stateColor returns the colour of a state's name.
func stateColor(cs *iostreams.ColorScheme, s spool.State) func(string) string {
	switch s {
	case spool.StateRunning:
		return cs.Yellow
	case spool.StateSucceeded:
		return cs.Green
	case spool.StateFailed:
		return cs.Red
	case spool.StatePaused:
		return cs.Magenta
	case spool.StateQueued, spool.StateScheduled:
		return cs.Cyan
	case spool.StateCancelled:
		return cs.Gray
	}
	return func(s string) string { return s }
}

// stateLabel is a state for a person: with its icon and colour on a terminal, the bare
// name otherwise.
func stateLabel(ios *iostreams.IOStreams, s spool.State) string {
	if !ios.IsStdoutTTY() {
		return string(s)
	}
	return stateIcon(s) + " " + stateColor(ios.ColorScheme(), s)(string(s))
}

// addStateField adds a state to a table row: with its icon and colour on a terminal, the
// bare name otherwise.
func addStateField(tp *tableprinter.TablePrinter, ios *iostreams.IOStreams, s spool.State) {
	if !ios.IsStdoutTTY() {
		tp.AddField(string(s))
		return
	}
	color := stateColor(ios.ColorScheme(), s)
	tp.AddField(stateIcon(s)+" "+string(s), tableprinter.WithColor(func(cell string) string {
		icon, name, _ := strings.Cut(cell, " ")
		return icon + " " + color(name)
	}))
}

// formatTime is t relative to now on a terminal, RFC 3339 otherwise; "-" for no time.
func formatTime(ios *iostreams.IOStreams, now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	if ios.IsStdoutTTY() {
		return text.RelativeTime(now, *t)
	}
	return t.UTC().Format(time.RFC3339)
}

// formatDuration is a run's duration: brief on a terminal, seconds otherwise.
func formatDuration(ios *iostreams.IOStreams, run *spool.Run, now time.Time) string {
	d := run.DurationSeconds(now)
	if d == nil {
		return "-"
	}
	if ios.IsStdoutTTY() {
		return text.Duration(*d)
	}
	return strconv.FormatFloat(*d, 'f', 3, 64)
}

// formatProgress is a run's progress: "45%", with its step on a terminal.
func formatProgress(run *spool.Run) string {
	p := run.Progress
	if p.Percentage == 0 && p.StepsTotal == 0 && !run.State.IsTerminal() && run.State != spool.StateRunning {
		return "-"
	}
	s := strconv.FormatFloat(p.Percentage, 'f', -1, 64) + "%"
	if p.StepsTotal > 0 {
		s += fmt.Sprintf(" (%d/%d)", p.StepsCompleted, p.StepsTotal)
	}
	return s
}

// resultText turns a result into text for a person: a JSON string as itself, {"output": S}
// as S, anything else as JSON (indented when pretty). Empty for no result.
func resultText(raw json.RawMessage, pretty bool) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil && len(obj) == 1 {
		if out, ok := obj["output"]; ok && json.Unmarshal(out, &s) == nil {
			return s
		}
	}
	var b bytes.Buffer
	if pretty {
		if json.Indent(&b, raw, "", "  ") == nil {
			return b.String()
		}
	} else if json.Compact(&b, raw) == nil {
		return b.String()
	}
	return string(raw)
}

// printResult writes a run's result to w, ending it with a newline.
func printResult(w io.Writer, ios *iostreams.IOStreams, raw json.RawMessage) {
	s := resultText(raw, ios.IsStdoutTTY())
	if s == "" {
		return
	}
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	io.WriteString(w, s)
}

// writeJSON writes v as JSON: verbatim (re-indented on a terminal) when it is already JSON.
func writeJSON(ios *iostreams.IOStreams, v any) error {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		raw = b
	}
	var b bytes.Buffer
	var err error
	if ios.IsStdoutTTY() {
		err = json.Indent(&b, raw, "", "  ")
	} else {
		err = json.Compact(&b, raw)
	}
	if err != nil {
		b.Reset()
		b.Write(raw)
	}
	b.WriteByte('\n')
	_, err = ios.Out.Write(b.Bytes())
	return err
}

// detailPrinter prints "Key: value" lines: aligned and bold-keyed on a terminal, and
// "key<TAB>value" when piped.
type detailPrinter struct {
	ios  *iostreams.IOStreams
	keys []string
	vals []string
}

func (d *detailPrinter) add(key, value string) {
	d.keys = append(d.keys, key)
	d.vals = append(d.vals, value)
}

func (d *detailPrinter) render() {
	var b strings.Builder
	width := 0
	for _, k := range d.keys {
		width = max(width, len(k)+1)
	}
	cs := d.ios.ColorScheme()
	for i, k := range d.keys {
		if d.ios.IsStdoutTTY() {
			b.WriteString(cs.Bold(text.PadRight(k+":", width)))
			b.WriteString(" ")
			b.WriteString(d.vals[i])
		} else {
			b.WriteString(strings.ToLower(strings.ReplaceAll(k, " ", "_")))
			b.WriteString("\t")
			b.WriteString(text.OneLine(d.vals[i]))
		}
		b.WriteString("\n")
	}
	io.WriteString(d.ios.Out, b.String())
}
