package text

import (
	"testing"
	"time"
)

func TestDisplayWidth(t *testing.T) {
	t.Parallel()
	tests := map[string]int{
		"":                    0,
		"abc":                 3,
		"✅ succeeded":         12,
		"🔄":                   2,
		"⏸️":                  2, // pause sign with variation selector 16
		"⏸":                   1,
		"日本":                  4,
		"e\u0301":             1, // combining accent
		"\x1b":                0,
		"\x1b[1;32mok\x1b[0m": 2,
	}
	for s, want := range tests {
		if got := DisplayWidth(s); got != want {
			t.Errorf("DisplayWidth(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"hello", 10, "hello"},
		{"hello world", 8, "hello w…"},
		{"日本語テキスト", 5, "日本…"},
		{"abc", 1, "…"},
		{"abc", 0, ""},
	}
	for _, tt := range tests {
		got := Truncate(tt.s, tt.width)
		if got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
		}
		if DisplayWidth(got) > max(tt.width, 0) {
			t.Errorf("Truncate(%q, %d) = %q is wider than %d", tt.s, tt.width, got, tt.width)
		}
	}
}

func TestRelativeTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{0, "just now"},
		{time.Second, "1 second ago"},
		{45 * time.Second, "45 seconds ago"},
		{3 * time.Minute, "3 minutes ago"},
		{2 * time.Hour, "2 hours ago"},
		{49 * time.Hour, "about 2 days ago"},
		{-90 * time.Second, "in 1 minute"},
	}
	for _, tt := range tests {
		if got := RelativeTime(now, now.Add(-tt.ago)); got != tt.want {
			t.Errorf("RelativeTime(-%v) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	if got := RelativeTime(now, now.AddDate(0, -3, 0)); got != now.AddDate(0, -3, 0).Local().Format("Jan 2, 2006") {
		t.Errorf("three months ago = %q, want a date", got)
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	tests := map[float64]string{0.25: "250ms", 12.5: "12.5s", 184: "3m04s", 7500: "2h05m", 2*86400 + 3600: "2d1h", -1: "-"}
	for in, want := range tests {
		if got := Duration(in); got != want {
			t.Errorf("Duration(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	t.Parallel()
	if got := OneLine("a\tb\r\nc\n"); got != "a b c" {
		t.Errorf("OneLine = %q", got)
	}
}
