package main

import (
	"fmt"
	"strings"
)

// Target statuses.
const (
	statusMet    = "met"
	statusMissed = "MISSED"
	statusNA     = "n/a"
)

// findRow returns the row of backend, workload and metric (and River setting, when given).
func findRow(rows []*Row, backend, workload, metric, setting string) *Row {
	for _, r := range rows {
		if r.Backend == backend && r.Workload == workload && r.Metric == metric && (setting == "" || r.RiverSetting == setting) {
			return r
		}
	}
	return nil
}

// evaluateTargets judges the targets of issue 7 (and the figures issues 10 and 11 add) on
// the medians of this run. A target whose rows were not measured is n/a.
func evaluateTargets(rows []*Row) []*Target {
	var out []*Target
	add := func(name, want string, ok bool, got string, value float64) {
		st := statusMissed
		if ok {
			st = statusMet
		}
		out = append(out, &Target{Name: name, Want: want, Got: got, Status: st, Value: value})
	}
	na := func(name, want, why string) {
		out = append(out, &Target{Name: name, Want: want, Got: why, Status: statusNA})
	}
	// advantage: Spool's advantage over River in a row, at least min.
	advantage := func(name, backend, workload, metric, setting string, least float64) {
		want := fmt.Sprintf(">= %gx River %s", least, setting)
		r := findRow(rows, backend, workload, metric, setting)
		if r == nil || r.Advantage == 0 {
			na(name, want, "not measured")
			return
		}
		add(name, want, r.Advantage >= least, fmt.Sprintf("%.2fx (Spool %s, River %s)",
			r.Advantage, formatValue(r.Spool.Median, r.Unit), formatValue(r.River.Median, r.Unit)), r.Advantage)
	}
	// absolute: Spool's median of a row compared with a bound.
	absolute := func(name, backend, workload, metric string, bound float64, unit string, below bool) {
		r := findRow(rows, backend, workload, metric, "")
		op := "<"
		if !below {
			op = ">="
		}
		want := op + " " + formatValue(bound, unit)
		if r == nil || r.Spool == nil {
			na(name, want, "not measured")
			return
		}
		v := r.Spool.Median
		ok := v < bound
		if !below {
			ok = v >= bound
		}
		add(name, want, ok, formatValue(v, r.Unit), v)
	}
	// relative: Spool's median of a row as a fraction of its baseline (Spool's work rate
	// without the row's condition, measured alternately with it).
	relative := func(name, backend, workload string, least float64) {
		want := fmt.Sprintf(">= %.0f%% of the plain work rate", least*100)
		r := findRow(rows, backend, workload, "rate", "")
		switch {
		case r == nil:
			na(name, want, "not measured")
		case r.NA != "":
			na(name, want, r.NA)
		case r.Spool == nil || r.Baseline == nil || r.BaselineRatio == 0:
			na(name, want, "not measured")
		default:
			add(name, want, r.BaselineRatio >= least, fmt.Sprintf("%.1f%% (%s; %s: %s)", r.BaselineRatio*100,
				formatValue(r.Spool.Median, r.Unit), r.BaselineLabel, formatValue(r.Baseline.Median, r.Unit)), r.BaselineRatio)
		}
	}

	advantage("SQLite work rate", sqliteBackend, wWorkRate, "rate", riverTuned.name, 5)
	advantage("SQLite latency p50", sqliteBackend, wLatency, "p50", riverTuned.name, 10)
	absolute("SQLite latency p99", sqliteBackend, wLatency, "p99", 5, "ms", true)
	advantage("PostgreSQL work rate", postgresBackend, wWorkRate, "rate", riverTuned.name, 1.5)
	advantage("PostgreSQL latency p50", postgresBackend, wLatency, "p50", riverTuned.name, 1)
	advantage("PostgreSQL insert, one at a time", postgresBackend, wInsertOne, "rate", settingInsertOnly, 1)
	advantage("PostgreSQL insert, batches", postgresBackend, wInsertBatch, "rate", settingInsertOnly, 1)

	absolute("deep SQLite queue: server peak RSS", sqliteBackend, "scale_rss", "peak", 150, "MB", true)
	absolute("deep SQLite queue: stats", sqliteBackend, "scale_requests", "stats", 50, "ms", true)
	relative("deep SQLite queue: work rate", sqliteBackend, "scale_work_rate", 0.5)

	// Issue 10: every dashboard runs page under 300 ms; the slowest is shown.
	var worst *Row
	for _, r := range rows {
		if r.Workload == "scale_requests" && strings.HasPrefix(r.Metric, "dash_") && r.Spool != nil &&
			(worst == nil || r.Spool.Median > worst.Spool.Median) {
			worst = r
		}
	}
	if worst == nil {
		na("deep SQLite queue: dashboard runs pages (issue 10)", "< 300 ms", "not measured")
	} else {
		add("deep SQLite queue: dashboard runs pages (issue 10)", "every one < 300 ms", worst.Spool.Median < 300,
			fmt.Sprintf("slowest %s: %s", strings.TrimPrefix(worst.Metric, "dash_"), formatValue(worst.Spool.Median, "ms")), worst.Spool.Median)
	}

	// Issue 11: dispatch with much waiting stays within 20% of the plain work rate.
	for _, b := range []string{sqliteBackend, postgresBackend} {
		name := map[string]string{sqliteBackend: "SQLite", postgresBackend: "PostgreSQL"}[b]
		relative(name+" work rate, scheduled runs waiting (issue 11)", b, wScheduled, 0.8)
		relative(name+" work rate, rate-limited agents (issue 11)", b, wRateLimited, 0.8)
	}
	return out
}
