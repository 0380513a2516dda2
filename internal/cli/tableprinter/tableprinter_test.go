package tableprinter

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spool-run/spool/internal/cli/text"
)

func fill(tp *TablePrinter) {
	tp.AddHeader(nil, "ID", "STATUS", "DESCRIPTION")
	tp.AddField("run_1")
	tp.AddField("✅ succeeded", WithColor(func(s string) string { return "<" + s + ">" }))
	tp.AddField("a short one", WithTruncate())
	tp.EndRow()
	tp.AddField("run_22")
	tp.AddField("🔄 running")
	tp.AddField("a much longer description\twith a tab", WithTruncate())
	tp.EndRow()
}

func TestTTYAligned(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	tp := New(&b, true, 0)
	fill(tp)
	if err := tp.Render(); err != nil {
		t.Fatal(err)
	}
	want := "ID      STATUS        DESCRIPTION\n" +
		"run_1   <✅ succeeded>  a short one\n" +
		"run_22  🔄 running    a much longer description with a tab\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestTTYFitsWidth(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	tp := New(&b, true, 40)
	fill(tp)
	tp.Render()
	for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		line = strings.NewReplacer("<", "", ">", "").Replace(line)
		if w := text.DisplayWidth(line); w > 40 {
			t.Errorf("line %q is %d cells wide, want at most 40", line, w)
		}
	}
	if !strings.Contains(b.String(), "…") {
		t.Errorf("nothing was truncated:\n%s", b.String())
	}
}

func TestPipedTabSeparated(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	tp := New(&b, false, 10)
	fill(tp)
	tp.Render()
	want := "run_1\t✅ succeeded\ta short one\n" +
		"run_22\t🔄 running\ta much longer description with a tab\n"
	if b.String() != want {
		t.Errorf("got %q, want %q (no header, no colour, no truncation)", b.String(), want)
	}
}
