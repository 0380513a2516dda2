package schedule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spool-run/spool/internal/schedule"
)

// utc parses an RFC 3339 time.
func utc(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

func mustParse(t *testing.T, expr, tz string) *schedule.Spec {
	t.Helper()
	s, err := schedule.ParseCron(expr, tz)
	if err != nil {
		t.Fatalf("ParseCron(%q, %q): %v", expr, tz, err)
	}
	return s
}

// TestNextAcrossDST checks fire times around the 2024 daylight-saving changes: Berlin
// 31 March 02:00 CET -> 03:00 CEST and 27 October 03:00 CEST -> 02:00 CET; New York 10 March
// 02:00 EST -> 03:00 EDT and 3 November 02:00 EDT -> 01:00 EST. Times are given in local
// time with their offsets, so each line says what a clock on the wall shows.
func TestNextAcrossDST(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr, tz, from string
		want                 []string
	}{
		{"berlin fixed time skipped by spring forward fires at the change", "30 2 * * *", "Europe/Berlin", "2024-03-30T12:00:00+01:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"}},
		{"berlin fixed time in the repeated hour fires once", "30 2 * * *", "Europe/Berlin", "2024-10-26T12:00:00+02:00",
			[]string{"2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"}},
		{"berlin hourly follows elapsed time when clocks go back", "0 * * * *", "Europe/Berlin", "2024-10-27T00:30:00+02:00",
			[]string{"2024-10-27T01:00:00+02:00", "2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00", "2024-10-27T03:00:00+01:00"}},
		{"berlin hourly skips the missing hour", "0 * * * *", "Europe/Berlin", "2024-03-31T00:30:00+01:00",
			[]string{"2024-03-31T01:00:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T04:00:00+02:00"}},
		{"berlin every 15 minutes through the missing hour", "*/15 * * * *", "Europe/Berlin", "2024-03-31T01:40:00+01:00",
			[]string{"2024-03-31T01:45:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T03:15:00+02:00"}},
		{"berlin daily descriptor", "@daily", "Europe/Berlin", "2024-03-30T12:00:00+01:00",
			[]string{"2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00"}},
		{"berlin with seconds in the repeated hour", "10 15 2 * * *", "Europe/Berlin", "2024-10-27T00:00:00+02:00",
			[]string{"2024-10-27T02:15:10+02:00", "2024-10-28T02:15:10+01:00"}},
		{"new york nine o'clock keeps local time across the change", "0 9 * * *", "America/New_York", "2024-03-09T00:00:00-05:00",
			[]string{"2024-03-09T09:00:00-05:00", "2024-03-10T09:00:00-04:00", "2024-03-11T09:00:00-04:00"}},
		{"new york 02:00 skipped by spring forward fires at 03:00", "0 2 * * *", "America/New_York", "2024-03-09T12:00:00-05:00",
			[]string{"2024-03-10T03:00:00-04:00", "2024-03-11T02:00:00-04:00"}},
		{"new york 01:30 in the repeated hour fires once", "30 1 * * *", "America/New_York", "2024-11-02T12:00:00-04:00",
			[]string{"2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"}},
		{"new york every 30 minutes runs through both copies of 01:xx", "*/30 * * * *", "America/New_York", "2024-11-03T00:45:00-04:00",
			[]string{"2024-11-03T01:00:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T01:30:00-05:00", "2024-11-03T02:00:00-05:00"}},
		{"new york from inside the second copy of the repeated hour", "30 1 * * *", "America/New_York", "2024-11-03T01:10:00-05:00",
			[]string{"2024-11-04T01:30:00-05:00"}},
		{"new york hourly from inside the first copy", "0 * * * *", "America/New_York", "2024-11-03T01:10:00-04:00",
			[]string{"2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00"}},
		{"weekday mornings", "0 8 * * MON-FRI", "UTC", "2024-06-07T09:00:00Z",
			[]string{"2024-06-10T08:00:00Z", "2024-06-11T08:00:00Z"}},
		{"tz prefix", "CRON_TZ=America/New_York 0 9 * * *", "", "2024-03-09T00:00:00Z",
			[]string{"2024-03-09T09:00:00-05:00", "2024-03-10T09:00:00-04:00"}},
		{"seconds", "*/20 * * * * *", "UTC", "2024-01-01T00:00:05Z",
			[]string{"2024-01-01T00:00:20Z", "2024-01-01T00:00:40Z", "2024-01-01T00:01:00Z"}},
		{"every is aligned to the epoch", "@every 10m", "", "2024-01-01T00:03:00Z",
			[]string{"2024-01-01T00:10:00Z", "2024-01-01T00:20:00Z"}},
		{"every ignores the zone's changes", "@every 1h", "", "2024-10-27T00:30:00+02:00",
			[]string{"2024-10-27T01:00:00+02:00", "2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, tt.expr, tt.tz)
			got := s.Upcoming(utc(t, tt.from), len(tt.want))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d times, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				if want := utc(t, w); !got[i].Equal(want) {
					t.Errorf("fire %d: got %s, want %s (%s)", i, got[i].In(s.Location()).Format(time.RFC3339),
						w, strings.Join(format(got, s.Location()), ", "))
				}
				if got[i].Location() != time.UTC {
					t.Errorf("fire %d is in %s, want UTC", i, got[i].Location())
				}
			}
		})
	}
}

func format(ts []time.Time, loc *time.Location) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.In(loc).Format(time.RFC3339)
	}
	return out
}

// TestNextWholeYear walks a year of fire times in both zones and checks that they strictly
// increase and that each wall-clock day has the expected number of fires.
func TestNextWholeYear(t *testing.T) {
	t.Parallel()
	for _, tz := range []string{"Europe/Berlin", "America/New_York"} {
		daily := mustParse(t, "30 2 * * *", tz)
		hourly := mustParse(t, "0 * * * *", tz)
		loc := daily.Location()
		from := time.Date(2024, 1, 1, 0, 0, 0, 0, loc)
		days := map[string]int{}
		prev := from
		for i := 0; i < 366; i++ {
			next := daily.Next(prev)
			if !next.After(prev) {
				t.Fatalf("%s: Next(%s) = %s, not after", tz, prev, next)
			}
			days[next.In(loc).Format("2006-01-02")]++
			prev = next
		}
		for d, n := range days {
			if n != 1 {
				t.Errorf("%s: daily 02:30 fired %d times on %s", tz, n, d)
			}
		}
		if len(days) != 366 {
			t.Errorf("%s: daily fired on %d days, want 366", tz, len(days))
		}
		// Hourly: one fire per elapsed hour, 8784 in leap year 2024.
		n := 0
		for at := hourly.Next(from.Add(-time.Second)); at.Before(from.AddDate(1, 0, 0)); at = hourly.Next(at) {
			if at.Minute() != 0 || at.Second() != 0 {
				t.Fatalf("%s: hourly fired at %s", tz, at)
			}
			n++
		}
		if n != 8784 {
			t.Errorf("%s: hourly fired %d times in 2024, want 8784", tz, n)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cron, every, tz, want string
	}{
		{"", "", "", "needs cron or every"},
		{"* * * * *", "1m", "", "not both"},
		{"61 * * * *", "", "", "cron:"},
		{"* * * *", "", "", "cron:"},
		{"0 0 30 2 *", "", "", "never matches"},
		{"* * * * *", "", "Mars/Olympus", "unknown time zone"},
		{"* * * * *", "", "Local", "Local"},
		{"TZ=UTC * * * * *", "", "Europe/Berlin", "once"},
		{"@every 10ms", "", "", "shorter than 1s"},
		{"@every soon", "", "", "not a duration"},
		{"", "soon", "", "not a duration"},
		{"", "500ms", "", "shorter than 1s"},
	}
	for _, tt := range tests {
		_, err := schedule.Parse(tt.cron, tt.every, tt.tz)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q, %q, %q) = %v, want an error containing %q", tt.cron, tt.every, tt.tz, err, tt.want)
		}
	}
	if s, err := schedule.Parse("", "90s", ""); err != nil || s.Interval() != 90*time.Second || s.String() != "@every 1m30s" {
		t.Errorf("Parse every 90s = %v, %v", s, err)
	}
}

func TestLatest(t *testing.T) {
	t.Parallel()
	s := mustParse(t, "*/1 * * * * *", "")
	from := utc(t, "2024-01-01T00:00:00Z")
	to := utc(t, "2024-03-01T12:34:56Z")
	if got, ok := s.Latest(from, to.Add(500*time.Millisecond)); !ok || !got.Equal(to) {
		t.Errorf("Latest every second = %s %v, want %s", got, ok, to)
	}
	y := mustParse(t, "0 0 1 1 *", "Europe/Berlin")
	if got, ok := y.Latest(utc(t, "2020-06-01T00:00:00Z"), utc(t, "2024-06-01T00:00:00Z")); !ok || !got.Equal(utc(t, "2024-01-01T00:00:00+01:00")) {
		t.Errorf("Latest yearly = %s %v", got, ok)
	}
	if _, ok := y.Latest(utc(t, "2024-06-01T00:00:00Z"), utc(t, "2024-07-01T00:00:00Z")); ok {
		t.Error("Latest found a yearly tick in June")
	}
	e, _ := schedule.Every(time.Hour)
	if got, ok := e.Latest(utc(t, "2024-01-01T00:30:00Z"), utc(t, "2024-01-01T05:59:59Z")); !ok || !got.Equal(utc(t, "2024-01-01T05:00:00Z")) {
		t.Errorf("Latest every hour = %s %v", got, ok)
	}
	if _, ok := e.Latest(utc(t, "2024-01-01T00:30:00Z"), utc(t, "2024-01-01T00:59:59Z")); ok {
		t.Error("Latest every hour found a tick in a half hour without one")
	}
}

func TestDue(t *testing.T) {
	t.Parallel()
	every, _ := schedule.Every(time.Minute)
	next := utc(t, "2024-01-01T10:00:00Z")
	tests := []struct {
		name     string
		now      string
		policy   schedule.Catchup
		fire     []string
		missed   bool
		nextTick string
	}{
		{"not due", "2024-01-01T09:59:59Z", schedule.CatchupNone, nil, false, "2024-01-01T10:00:00Z"},
		{"on time", "2024-01-01T10:00:00.004Z", schedule.CatchupNone, []string{"2024-01-01T10:00:00Z"}, false, "2024-01-01T10:01:00Z"},
		{"a little late is not an outage", "2024-01-01T10:00:40Z", schedule.CatchupNone, []string{"2024-01-01T10:00:00Z"}, false, "2024-01-01T10:01:00Z"},
		{"none after an outage", "2024-01-01T10:05:30Z", schedule.CatchupNone, []string{"2024-01-01T10:05:00Z"}, true, "2024-01-01T10:06:00Z"},
		{"last after an outage", "2024-01-01T10:05:30Z", schedule.CatchupLast, []string{"2024-01-01T10:05:00Z"}, true, "2024-01-01T10:06:00Z"},
		{"all after an outage", "2024-01-01T10:03:30Z", schedule.CatchupAll,
			[]string{"2024-01-01T10:00:00Z", "2024-01-01T10:01:00Z", "2024-01-01T10:02:00Z", "2024-01-01T10:03:00Z"}, false, "2024-01-01T10:04:00Z"},
	}
	for _, tt := range tests {
		p := schedule.Due(every, next, utc(t, tt.now), tt.policy)
		if len(p.Fire) != len(tt.fire) || p.Missed != tt.missed || !p.Next.Equal(utc(t, tt.nextTick)) {
			t.Errorf("%s: plan %+v, want fire %v missed %v next %s", tt.name, p, tt.fire, tt.missed, tt.nextTick)
			continue
		}
		for i := range tt.fire {
			if !p.Fire[i].Equal(utc(t, tt.fire[i])) {
				t.Errorf("%s: fire[%d] = %s, want %s", tt.name, i, p.Fire[i], tt.fire[i])
			}
		}
	}

	// none drops a tick that is more than Grace late, even the latest.
	hourly := mustParse(t, "0 * * * *", "")
	p := schedule.Due(hourly, next, utc(t, "2024-01-01T12:30:00Z"), schedule.CatchupNone)
	if len(p.Fire) != 0 || !p.Missed || !p.Next.Equal(utc(t, "2024-01-01T13:00:00Z")) {
		t.Errorf("none after a long outage: %+v", p)
	}
	// all catches up in batches of MaxBatch without losing a tick.
	sec, _ := schedule.Every(time.Second)
	now := next.Add(2500 * time.Second)
	total := 0
	for cur := next; !cur.After(now); {
		p := schedule.Due(sec, cur, now, schedule.CatchupAll)
		if len(p.Fire) > schedule.MaxBatch || len(p.Fire) == 0 || !p.Fire[0].Equal(cur) {
			t.Fatalf("batch from %s: %d ticks", cur, len(p.Fire))
		}
		total += len(p.Fire)
		cur = p.Next
	}
	if total != 2501 {
		t.Errorf("all fired %d ticks, want 2501", total)
	}
}

func TestParsePolicies(t *testing.T) {
	t.Parallel()
	if c, err := schedule.ParseCatchup(""); err != nil || c != schedule.CatchupNone {
		t.Errorf(`ParseCatchup("") = %q, %v`, c, err)
	}
	if _, err := schedule.ParseCatchup("some"); err == nil {
		t.Error("ParseCatchup accepted some")
	}
	if o, err := schedule.ParseOverlap("skip"); err != nil || o != schedule.OverlapSkip {
		t.Errorf("ParseOverlap(skip) = %q, %v", o, err)
	}
	if _, err := schedule.ParseOverlap("maybe"); err == nil {
		t.Error("ParseOverlap accepted maybe")
	}
}
