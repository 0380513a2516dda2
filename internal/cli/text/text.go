// Package text formats strings for a terminal: display widths, truncation, relative times
// and short durations.
package text

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DisplayWidth returns how many terminal cells s takes: wide characters (CJK, most emoji)
// take two, combining marks, zero-width joiners and ANSI colour sequences none, and a
// variation selector 16 turns the character before it into a two-cell emoji.
func DisplayWidth(s string) int {
	w := 0
	prev := 0
	inEscape := false
	for _, r := range s {
		switch {
		case inEscape: // an ANSI CSI sequence ends with a byte in @..~
			if r >= 0x40 && r <= 0x7e && r != '[' {
				inEscape = false
			}
			continue
		case r == 0x1b:
			inEscape = true
			continue
		case r == 0xFE0F: // emoji presentation of the previous character
			if prev == 1 {
				w++
				prev = 2
			}
			continue
		case r == 0x200D || r == 0xFE0E || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || unicode.Is(unicode.Cf, r):
			continue
		case r < 0x20 || (r >= 0x7F && r < 0xA0):
			continue
		}
		prev = runeWidth(r)
		w += prev
	}
	return w
}

// runeWidth returns 2 for wide runes and 1 otherwise.
func runeWidth(r rune) int {
	switch {
	case r < 0x1100:
		return 1
	case r <= 0x115F, // Hangul Jamo
		r >= 0x2E80 && r <= 0xA4CF && r != 0x303F,
		r >= 0xAC00 && r <= 0xD7A3,
		r >= 0xF900 && r <= 0xFAFF,
		r >= 0xFE30 && r <= 0xFE4F,
		r >= 0xFF00 && r <= 0xFF60,
		r >= 0xFFE0 && r <= 0xFFE6,
		r >= 0x1F300 && r <= 0x1F64F,
		r >= 0x1F680 && r <= 0x1F6FF,
		r >= 0x1F900 && r <= 0x1F9FF,
		r >= 0x1FA70 && r <= 0x1FAFF,
		r >= 0x20000 && r <= 0x3FFFD:
		return 2
	}
	switch r {
	case 0x231A, 0x231B, 0x23E9, 0x23EA, 0x23EB, 0x23EC, 0x23F0, 0x23F3, 0x25FD, 0x25FE,
		0x2614, 0x2615, 0x267F, 0x2693, 0x26A1, 0x26AA, 0x26AB, 0x26BD, 0x26BE, 0x26C4,
		0x26C5, 0x26CE, 0x26D4, 0x26EA, 0x26F2, 0x26F3, 0x26F5, 0x26FA, 0x26FD, 0x2705,
		0x270A, 0x270B, 0x2728, 0x274C, 0x274E, 0x2753, 0x2754, 0x2755, 0x2757, 0x2795,
		0x2796, 0x2797, 0x27B0, 0x27BF, 0x2B1B, 0x2B1C, 0x2B50, 0x2B55:
		return 2
	}
	if r >= 0x2648 && r <= 0x2653 {
		return 2
	}
	return 1
}

// Truncate shortens s to at most width cells, ending it with "…" when it had to cut.
func Truncate(s string, width int) string {
	if width <= 0 {
		return ""
	}
	if DisplayWidth(s) <= width {
		return s
	}
	if width == 1 {
		return "…"
	}
	var b strings.Builder
	w := 0
	for _, r := range s {
		rw := DisplayWidth(string(r))
		if w+rw > width-1 {
			break
		}
		b.WriteRune(r)
		w += rw
	}
	return b.String() + "…"
}

// PadRight pads s with spaces to width cells.
func PadRight(s string, width int) string {
	if d := width - DisplayWidth(s); d > 0 {
		return s + strings.Repeat(" ", d)
	}
	return s
}

// OneLine replaces line breaks and tabs in s with spaces, for a table cell.
func OneLine(s string) string {
	if !strings.ContainsAny(s, "\t\r\n") {
		return s
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\t' || r == '\r' || r == '\n' }), " ")
}

// RelativeTime describes t as seen at now: "just now", "5 seconds ago", "3 minutes ago",
// "in 2 hours", "about 1 day ago", then a date for anything older than a month.
func RelativeTime(now, t time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		s = plural(int(d/time.Second), "second")
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	case d < 30*24*time.Hour:
		s = "about " + plural(int(d/(24*time.Hour)), "day")
	default:
		return t.Local().Format("Jan 2, 2006")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// Duration formats seconds briefly: "850ms", "12.5s", "3m04s", "2h05m", "3d4h".
func Duration(seconds float64) string {
	if math.IsNaN(seconds) || seconds < 0 {
		return "-"
	}
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", seconds)
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// ValidUTF8 replaces invalid UTF-8 in s with U+FFFD.
func ValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
