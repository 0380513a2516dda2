package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Which way a figure is better.
const (
	higherIsBetter = "higher"
	lowerIsBetter  = "lower"
)

// Row is one line of the results: one figure of one workload on one backend, for Spool and,
// when there is one, River at one setting.
type Row struct {
	Backend  string  `json:"backend"`
	Workload string  `json:"workload"`
	Metric   string  `json:"metric"`
	Label    string  `json:"label"`
	Unit     string  `json:"unit"`
	Better   string  `json:"better"`
	Spool    *Figure `json:"spool,omitempty"`
	River    *Figure `json:"river,omitempty"`
	// RiverSetting is "default", "tuned" (fetch settings, docs/benchmarks.md) or "insert-only".
	RiverSetting string `json:"river_setting,omitempty"`
	// Advantage is how many times better Spool's median is than River's: Spool/River for
	// rates, River/Spool for latencies; above 1 means Spool is better.
	Advantage float64 `json:"spool_advantage,omitempty"`
	// Baseline is Spool's own figure without the row's condition (the work rate of an empty
	// queue), measured alternately with it; BaselineRatio is Spool/Baseline.
	Baseline      *Figure `json:"baseline,omitempty"`
	BaselineLabel string  `json:"baseline_label,omitempty"`
	BaselineRatio float64 `json:"baseline_ratio,omitempty"`
	// NA says why the row has no figures yet.
	NA   string `json:"na,omitempty"`
	Note string `json:"note,omitempty"`
}

func (r *Row) computeAdvantage() {
	if r.Spool != nil && r.Baseline != nil && r.Baseline.Median != 0 {
		r.BaselineRatio = r.Spool.Median / r.Baseline.Median
	}
	if r.Spool == nil || r.River == nil || r.Spool.Median == 0 || r.River.Median == 0 {
		return
	}
	if r.Better == higherIsBetter {
		r.Advantage = r.Spool.Median / r.River.Median
	} else {
		r.Advantage = r.River.Median / r.Spool.Median
	}
}

// Target is one goal of issue 7 (and issues 10 and 11), judged on this run's medians.
type Target struct {
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Got    string  `json:"got"`
	Status string  `json:"status"` // met, missed, n/a
	Value  float64 `json:"value,omitempty"`
}

// Report is the JSON file the bench writes.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Quick    bool      `json:"quick"`
	Reps     int       `json:"reps"`
	Sizes    sizes     `json:"sizes"`
	Machine  machine   `json:"machine"`
	Rows     []*Row    `json:"rows"`
	Targets  []*Target `json:"targets"`
	Errors   []string  `json:"errors,omitempty"`
}

// machine describes where the run happened.
type machine struct {
	GoVersion  string    `json:"go_version"`
	CPUs       int       `json:"cpus"`
	LoadBefore []float64 `json:"load_average_before"`
	LoadAfter  []float64 `json:"load_average_after"`
	Postgres   string    `json:"postgres,omitempty"`
}

// loadAverage reads the 1, 5 and 15 minute load averages (nil where /proc has none).
func loadAverage() []float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var out []float64
	for _, f := range strings.Fields(string(data))[:3] {
		v, _ := strconv.ParseFloat(f, 64)
		out = append(out, v)
	}
	return out
}

func (rep *Report) writeJSON(path string) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// cells returns a row's columns: Spool, what it is compared with, that figure, and the ratio.
func (r *Row) cells() (spool, against, other, ratio string) {
	spool, against, other, ratio = "-", "-", "-", "-"
	switch {
	case r.NA != "":
		spool = r.NA
	case r.Spool != nil:
		spool = formatFigure(r.Spool, r.Unit)
	}
	switch {
	case r.River != nil:
		against, other = "River "+r.RiverSetting, formatFigure(r.River, r.Unit)
		if r.Advantage != 0 {
			ratio = fmt.Sprintf("%.2fx", r.Advantage)
		}
	case r.Baseline != nil:
		against, other = r.BaselineLabel, formatFigure(r.Baseline, r.Unit)
		if r.BaselineRatio != 0 {
			ratio = fmt.Sprintf("%.0f%%", 100*r.BaselineRatio)
		}
	}
	return spool, against, other, ratio
}

const tableHeader = "backend\tfigure\tSpool median [min-max]\tcompared with\tits median [min-max]\tSpool advantage"

// printTable writes the rows as an aligned table, then the targets.
func (rep *Report) printTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, tableHeader)
	for _, r := range rep.Rows {
		spool, against, other, ratio := r.cells()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Backend, r.Label, spool, against, other, ratio)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\twant\tgot\tstatus")
	for _, t := range rep.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Want, t.Got, t.Status)
	}
	tw.Flush()
}

// printMarkdown writes the rows and the targets as Markdown tables (for docs/benchmarks.md).
func (rep *Report) printMarkdown(w io.Writer) {
	fmt.Fprintln(w, "| "+strings.ReplaceAll(tableHeader, "\t", " | ")+" |")
	fmt.Fprintln(w, "| --- | --- | ---: | --- | ---: | ---: |")
	for _, r := range rep.Rows {
		spool, against, other, ratio := r.cells()
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.Backend, r.Label, spool, against, other, ratio)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | want | got | status |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	for _, t := range rep.Targets {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, t.Status)
	}
}

func formatFigure(f *Figure, unit string) string {
	if len(f.Samples) == 1 {
		return formatValue(f.Median, unit)
	}
	return fmt.Sprintf("%s [%s-%s]", formatValue(f.Median, unit), formatNumber(f.Min, unit), formatNumber(f.Max, unit))
}

func formatValue(v float64, unit string) string { return formatNumber(v, unit) + " " + unit }

func formatNumber(v float64, unit string) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case unit == "ms" && v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case unit == "ms" && v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return commas(v)
}

// commas formats v rounded to an integer with thousands separators.
func commas(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
