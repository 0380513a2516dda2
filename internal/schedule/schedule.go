// Package schedule computes the fire times of schedules: cron expressions in a time zone and
// fixed intervals, and which missed ticks to fire after an outage. It is pure: it reads no
// clock and stores nothing.
//
// Cron expressions are parsed by github.com/robfig/cron/v3: five fields (minute hour
// day-of-month month day-of-week), or six with seconds first, or a descriptor (@yearly,
// @monthly, @weekly, @daily, @hourly, @every 10m). Fire times are computed here, on wall-clock
// time in the schedule's zone, with these rules for daylight-saving changes (Vixie cron's):
//
//   - A schedule that fires every hour (its hour field is every hour) follows elapsed time:
//     when clocks go back it fires in both copies of the repeated hour, and when clocks go
//     forward the skipped times simply do not happen.
//   - A schedule at fixed hours fires once per wall-clock time: in a repeated hour only the
//     first time, and a time skipped by clocks going forward fires at the moment of the change
//     (02:30 on the day Berlin goes from 02:00 to 03:00 fires at 03:00).
//
// Intervals (@every 10m, or Every) are counted from the Unix epoch, so "every 10m" fires at
// :00, :10, :20 ... UTC on every node and after every restart, whatever the time zone.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser reads standard cron with optional seconds and descriptors.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// MinInterval is the shortest interval accepted.
const MinInterval = time.Second

// searchYears bounds the search for the next fire time: a cron expression that matches no
// time in this many years (such as 30 February) never fires.
const searchYears = 5

// Spec is a parsed schedule: a cron expression in a time zone, or a fixed interval.
type Spec struct {
	expr  string
	loc   *time.Location
	every time.Duration

	cron   *cron.SpecSchedule // as parsed
	civil  *cron.SpecSchedule // the same fields in UTC: steps through wall-clock times
	hourly bool               // fires every hour: follows elapsed time across DST changes
}

// Parse reads a schedule given as a cron expression or an interval (exactly one of them),
// with a time zone for the cron expression (an IANA name; "" is UTC).
func Parse(cronExpr, every, timezone string) (*Spec, error) {
	switch {
	case cronExpr != "" && every != "":
		return nil, errors.New("give cron or every, not both")
	case cronExpr != "":
		return ParseCron(cronExpr, timezone)
	case every != "":
		d, err := time.ParseDuration(every)
		if err != nil {
			return nil, fmt.Errorf("every: %q is not a duration such as 90s, 10m or 1h", every)
		}
		return Every(d)
	}
	return nil, errors.New("needs cron or every")
}

// ParseCron reads a cron expression: five fields, six with seconds, or a descriptor. A
// CRON_TZ= or TZ= prefix sets the zone when timezone is empty; giving both is an error.
func ParseCron(expr, timezone string) (*Spec, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, errors.New("cron: empty expression")
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		if timezone != "" {
			return nil, errors.New("cron: give the time zone once, as timezone or as a TZ= prefix")
		}
		head, rest, _ := strings.Cut(expr, " ")
		_, timezone, _ = strings.Cut(head, "=")
		expr = strings.TrimSpace(rest)
	}
	loc, err := LoadLocation(timezone)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(expr, "@every ") {
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(expr, "@every ")))
		if err != nil {
			return nil, fmt.Errorf("cron: %q: the interval is not a duration such as 10m", expr)
		}
		s, err := Every(d)
		if err != nil {
			return nil, err
		}
		s.expr = expr
		return s, nil
	}
	parsed, err := parser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("cron: %q: %w", expr, err)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("cron: %q: unsupported expression", expr)
	}
	civil := *spec
	civil.Location = time.UTC
	const allHours = 1<<24 - 1
	s := &Spec{expr: expr, loc: loc, cron: spec, civil: &civil, hourly: spec.Hour&allHours == allHours}
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() && s.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("cron: %q never matches a date", expr)
	}
	return s, nil
}

// Every returns a schedule firing every d (at least MinInterval), at multiples of d since
// the Unix epoch.
func Every(d time.Duration) (*Spec, error) {
	if d < MinInterval {
		return nil, fmt.Errorf("every: %s is shorter than %s", d, MinInterval)
	}
	return &Spec{expr: "@every " + d.String(), loc: time.UTC, every: d}, nil
}

// LoadLocation loads an IANA time zone; "" and "UTC" are UTC. "Local" is refused: a
// schedule must mean the same on every node.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, errors.New(`timezone: "Local" differs between machines; name the zone, such as Europe/Berlin`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("timezone: unknown time zone %q", name)
	}
	return loc, nil
}

// String returns the expression as written (without a zone prefix), or "@every D".
func (s *Spec) String() string { return s.expr }

// Location returns the schedule's time zone (UTC for intervals).
func (s *Spec) Location() *time.Location { return s.loc }

// Interval returns the interval of an interval schedule, 0 for a cron expression.
func (s *Spec) Interval() time.Duration { return s.every }

// Next returns the first fire time strictly after t, in UTC, or the zero time when there
// is none within five years.
func (s *Spec) Next(t time.Time) time.Time {
	if s.every > 0 {
		return nextInterval(t, s.every)
	}
	return s.nextCron(t)
}

// Upcoming returns the next n fire times after t.
func (s *Spec) Upcoming(t time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for len(out) < n {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// Latest returns the latest fire time in [from, to], and false when there is none.
func (s *Spec) Latest(from, to time.Time) (time.Time, bool) {
	if to.Before(from) {
		return time.Time{}, false
	}
	if s.every > 0 {
		t := floorInterval(to, s.every)
		return t.UTC(), !t.Before(from)
	}
	// Look back over growing windows, so a frequent schedule after a long outage costs a
	// few steps instead of one per missed tick.
	for _, w := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 0} {
		lo := from
		if w > 0 && to.Add(-w).After(from) {
			lo = to.Add(-w)
		}
		var last time.Time
		for x := s.Next(lo.Add(-time.Nanosecond)); !x.IsZero() && !x.After(to); x = s.Next(x) {
			last = x
		}
		if !last.IsZero() {
			return last, true
		}
		if lo.Equal(from) {
			break
		}
	}
	return time.Time{}, false
}

func nextInterval(t time.Time, d time.Duration) time.Time {
	return floorInterval(t, d).Add(d).UTC()
}

// floorInterval returns the latest multiple of d since the Unix epoch at or before t.
func floorInterval(t time.Time, d time.Duration) time.Time {
	epoch := time.Unix(0, 0)
	n := t.Sub(epoch) / d
	if t.Before(epoch.Add(n * d)) {
		n--
	}
	return epoch.Add(n * d)
}

// nextCron steps through the wall-clock times that match the expression, in the
// schedule's zone, and maps each to the instants it denotes (none, one, or two around a
// DST change), returning the earliest instant after t.
func (s *Spec) nextCron(t time.Time) time.Time {
	t = t.In(s.loc)
	// Near a change, a wall-clock time before t's can denote an instant after t (the
	// repeated hour), and one after t's an instant before a later one: widen the search
	// by the difference of the offsets there.
	_, offT := t.Zone()
	lo, _ := s.offsetsNear(t)
	c := wall(t).Add(-time.Duration(offT-lo) * time.Second)
	limit := wall(t).AddDate(searchYears, 0, 0)
	var (
		best  time.Time
		bound time.Time // wall-clock time after which nothing can beat best
	)
	for {
		c = s.civil.Next(c)
		if c.IsZero() || c.After(limit) || (!bound.IsZero() && c.After(bound)) {
			break
		}
		for _, at := range s.instants(c) {
			if !at.After(t) || (!best.IsZero() && !at.Before(best)) {
				continue
			}
			best = at
			bl := best.In(s.loc)
			_, offB := bl.Zone()
			_, hiB := s.offsetsNear(bl)
			bound = wall(bl).Add(time.Duration(hiB-offB) * time.Second)
		}
	}
	if best.IsZero() {
		return time.Time{}
	}
	return best.UTC()
}

// instants maps the wall-clock time c (carried as a UTC time) to the instants at which the
// schedule fires for it.
func (s *Spec) instants(c time.Time) []time.Time {
	var valid []time.Time
	offs := s.offsetsAround(c)
	minOff := offs[0]
	for _, off := range offs {
		minOff = min(minOff, off)
		at := c.Add(-time.Duration(off) * time.Second).In(s.loc)
		if wall(at).Equal(c) && !containsTime(valid, at) {
			valid = append(valid, at)
		}
	}
	switch {
	case len(valid) == 0:
		// Skipped by clocks going forward: a fixed-hour schedule fires at the change.
		if s.hourly {
			return nil
		}
		start, _ := c.Add(-time.Duration(minOff) * time.Second).In(s.loc).ZoneBounds()
		if start.IsZero() {
			return nil
		}
		return []time.Time{start}
	case len(valid) == 2:
		if valid[1].Before(valid[0]) {
			valid[0], valid[1] = valid[1], valid[0]
		}
		if !s.hourly {
			return valid[:1] // a repeated hour: fixed-hour schedules fire the first time only
		}
	}
	return valid
}

// offsetsAround lists the zone's UTC offsets (in seconds) in effect at some instant within a
// day of the wall-clock time c.
func (s *Spec) offsetsAround(c time.Time) []int {
	var offs []int
	end := c.Add(15 * time.Hour)
	for at := c.Add(-15 * time.Hour); at.Before(end); {
		lt := at.In(s.loc)
		_, off := lt.Zone()
		if !containsInt(offs, off) {
			offs = append(offs, off)
		}
		_, next := lt.ZoneBounds()
		if next.IsZero() || !next.After(at) {
			break
		}
		at = next
	}
	return offs
}

// offsetsNear returns the smallest and largest offsets in effect within three hours of t.
func (s *Spec) offsetsNear(t time.Time) (lo, hi int) {
	_, off := t.Zone()
	lo, hi = off, off
	for _, at := range []time.Time{t.Add(-3 * time.Hour), t.Add(3 * time.Hour)} {
		_, o := at.In(s.loc).Zone()
		lo, hi = min(lo, o), max(hi, o)
	}
	return lo, hi
}

// wall returns t's wall-clock reading as a UTC time.
func wall(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	return time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), time.UTC)
}

func containsTime(ts []time.Time, t time.Time) bool {
	for _, x := range ts {
		if x.Equal(t) {
			return true
		}
	}
	return false
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
