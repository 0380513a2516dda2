// Package tableprinter prints rows of fields: aligned columns on a terminal, tab-separated
// values when piped.
package tableprinter

import (
	"fmt"
	"io"
	"strings"

	"github.com/spool-run/spool/internal/cli/text"
)

// TablePrinter collects rows and prints them on Render.
type TablePrinter struct {
	out      io.Writer
	isTTY    bool
	maxWidth int
	header   []string
	headerFn func(string) string
	rows     [][]field
	cur      []field
}

type field struct {
	text     string
	color    func(string) string
	truncate bool
}

// FieldOption configures one field.
type FieldOption func(*field)

// WithColor paints the field with fn on a terminal (fn sees the padded-free text).
func WithColor(fn func(string) string) FieldOption {
	return func(f *field) { f.color = fn }
}

// WithTruncate lets the field's column shrink, with an ellipsis, to fit the terminal.
func WithTruncate() FieldOption {
	return func(f *field) { f.truncate = true }
}

// New returns a printer writing to out. On a terminal (isTTY) columns are aligned and the
// table is kept within maxWidth cells by shrinking truncatable columns; otherwise fields are
// separated by tabs and the header is left out.
func New(out io.Writer, isTTY bool, maxWidth int) *TablePrinter {
	return &TablePrinter{out: out, isTTY: isTTY, maxWidth: maxWidth}
}

// AddHeader sets the column titles, printed on a terminal only; style (nil for none)
// paints them.
func (t *TablePrinter) AddHeader(style func(string) string, columns ...string) {
	t.header = columns
	t.headerFn = style
}

// AddField adds a field to the current row.
func (t *TablePrinter) AddField(s string, opts ...FieldOption) {
	f := field{text: text.OneLine(text.ValidUTF8(s))}
	for _, opt := range opts {
		opt(&f)
	}
	t.cur = append(t.cur, f)
}

// EndRow ends the current row.
func (t *TablePrinter) EndRow() {
	t.rows = append(t.rows, t.cur)
	t.cur = nil
}

// Len returns the number of rows added.
func (t *TablePrinter) Len() int { return len(t.rows) }

// Render prints the table.
func (t *TablePrinter) Render() error {
	if len(t.cur) > 0 {
		t.EndRow()
	}
	if !t.isTTY {
		var b strings.Builder
		for _, row := range t.rows {
			for i, f := range row {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(f.text)
			}
			b.WriteByte('\n')
		}
		_, err := io.WriteString(t.out, b.String())
		return err
	}

	rows := t.rows
	if len(t.header) > 0 {
		h := make([]field, len(t.header))
		for i, c := range t.header {
			h[i] = field{text: c, color: t.headerFn}
		}
		rows = append([][]field{h}, rows...)
	}
	ncols := 0
	for _, row := range rows {
		ncols = max(ncols, len(row))
	}
	widths := make([]int, ncols)
	truncatable := make([]bool, ncols)
	for _, row := range rows {
		for i, f := range row {
			widths[i] = max(widths[i], text.DisplayWidth(f.text))
			truncatable[i] = truncatable[i] || f.truncate
		}
	}
	t.fit(widths, truncatable)

	var b strings.Builder
	for _, row := range rows {
		for i, f := range row {
			s := text.Truncate(f.text, widths[i])
			pad := ""
			if i < len(row)-1 {
				pad = strings.Repeat(" ", max(widths[i]-text.DisplayWidth(s), 0)+2)
			}
			if f.color != nil {
				s = f.color(s)
			}
			b.WriteString(s)
			b.WriteString(pad)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(t.out, b.String())
	return err
}

// fit shrinks truncatable columns, widest first, until the table fits t.maxWidth.
func (t *TablePrinter) fit(widths []int, truncatable []bool) {
	if t.maxWidth <= 0 {
		return
	}
	total := func() int {
		n := 2 * max(len(widths)-1, 0)
		for _, w := range widths {
			n += w
		}
		return n
	}
	for total() > t.maxWidth {
		widest := -1
		for i, w := range widths {
			if truncatable[i] && w > 8 && (widest < 0 || w > widths[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			return
		}
		widths[widest] = max(8, widths[widest]-(total()-t.maxWidth))
	}
}

// String renders the table to a string, for tests and previews.
func (t *TablePrinter) String() string {
	var b strings.Builder
	saved := t.out
	t.out = &b
	if err := t.Render(); err != nil {
		return fmt.Sprintf("render: %v", err)
	}
	t.out = saved
	return b.String()
}
