// Command bench measures Spool side by side with River v0.49.0 on identical work, in one
// run, alternating the two, with the definitions of docs/benchmarks.md: insert rates, the
// work rate of a drained queue and submit-to-start latency under a steady load on SQLite and
// PostgreSQL; and, for Spool alone, HTTP submits, the work rate with scheduled runs or
// rate-limited agents waiting, and a SQLite queue of a million runs. It prints a table and
// the targets of issue 7, and with -json writes them to a file.
//
//	cd bench && go run .                  # the full run: medians of 3 (about 15 minutes)
//	cd bench && go run . -quick           # tiny sizes, one repetition (CI: checks it works)
//	cd bench && go run . -only sqlite -workloads work_rate -reps 1 -river=false -n 100000 -cpuprofile cpu
//
// bench is its own module so that River never enters Spool's go.mod.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// batchSize is the number of runs per SubmitMany and InsertMany call.
const batchSize = 1000

// The workloads, in the order they run; -workloads picks some.
const (
	wInsertOne    = "insert_one"
	wInsertBatch  = "insert_batch"
	wWorkRate     = "work_rate"
	wWorkRate1000 = "work_rate_1000"
	wLatency      = "latency"
	wHTTP         = "http_submit"
	wHTTPSSE      = "http_submit_sse"
	wScheduled    = "scheduled_waiting"
	wRateLimited  = "rate_limited_agents"
	wScale        = "scale"
)

var allWorkloads = []string{wInsertOne, wInsertBatch, wWorkRate, wWorkRate1000, wLatency, wHTTP, wHTTPSSE, wScheduled, wRateLimited, wScale}

// sizes are the amounts of work of each workload.
type sizes struct {
	Workers        int     `json:"workers"`
	InsertOne      int     `json:"insert_one"`
	InsertBatch    int     `json:"insert_batch"`
	WorkRate       int     `json:"work_rate"`
	LatencyPerSec  int     `json:"latency_per_second"`
	LatencySeconds float64 `json:"latency_seconds"`
	LatencySettle  float64 `json:"latency_settle_seconds"`
	HTTPSubmits    int     `json:"http_submits"`
	HTTPClients    int     `json:"http_clients"`
	SSEPer         int     `json:"sse_stream_per_runs"`
	Scheduled      int     `json:"scheduled_waiting"`
	LimitedAgents  int     `json:"rate_limited_agents"`
	LimitedRuns    int     `json:"rate_limited_runs_per_agent"`
	ScaleQueued    int     `json:"scale_queued"`
	ScaleDrain     int     `json:"scale_drain"`
	ScaleSamples   int     `json:"scale_request_samples"`
}

func fullSizes() sizes {
	return sizes{
		Workers: 100, InsertOne: 5000, InsertBatch: 30000, WorkRate: 30000,
		LatencyPerSec: 200, LatencySeconds: 5, LatencySettle: 1,
		HTTPSubmits: 10000, HTTPClients: 32, SSEPer: 10, Scheduled: 100000,
		LimitedAgents: 1000, LimitedRuns: 10,
		ScaleQueued: 1000000, ScaleDrain: 30000, ScaleSamples: 20,
	}
}

func quickSizes() sizes {
	return sizes{
		Workers: 100, InsertOne: 300, InsertBatch: 2000, WorkRate: 300,
		LatencyPerSec: 200, LatencySeconds: 0.5, LatencySettle: 0.2,
		HTTPSubmits: 300, HTTPClients: 32, SSEPer: 10, Scheduled: 1000,
		LimitedAgents: 50, LimitedRuns: 2,
		ScaleQueued: 1000, ScaleDrain: 300, ScaleSamples: 3,
	}
}

func (s sizes) latencyPlan() latencyPlan {
	return latencyPlan{
		settle:   time.Duration(s.LatencySettle * float64(time.Second)),
		perSec:   s.LatencyPerSec,
		duration: time.Duration(s.LatencySeconds * float64(time.Second)),
	}
}

type options struct {
	quick      bool
	reps       int
	only       string
	jsonPath   string
	markdown   string
	cpuProfile string
	workloads  []string
	pgURL      string
	dir        string
	n          int
	workers    int
	pgWaits    bool
	river      bool
}

const defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func main() {
	var o options
	var workloads string
	flag.BoolVar(&o.quick, "quick", false, "tiny sizes and one repetition: checks that every workload works, asserts no timing (CI)")
	flag.IntVar(&o.reps, "reps", 3, "repetitions of each measurement; the table shows the median and the range")
	flag.StringVar(&o.only, "only", "", "run one backend only: sqlite or postgres")
	flag.StringVar(&o.jsonPath, "json", "", "write the results as JSON to `file`")
	flag.StringVar(&o.markdown, "markdown", "", "also write the table as Markdown to `file`")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of Spool's first work-rate drain per backend to `prefix`.<backend>.pprof")
	flag.StringVar(&workloads, "workloads", "", "comma-separated workloads to run (default all): "+strings.Join(allWorkloads, ","))
	flag.StringVar(&o.pgURL, "postgres", envOr("SPOOL_TEST_POSTGRES_URL", defaultPostgresURL), "PostgreSQL server `url` (each system gets its own schema)")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "`directory` for SQLite files; it must be on a real disk, since fsync is part of what is measured")
	flag.IntVar(&o.n, "n", 0, "runs per work-rate drain (default 30,000; 300 with -quick)")
	flag.BoolVar(&o.pgWaits, "pgwaits", false, "sample pg_stat_activity during the PostgreSQL work-rate drains and HTTP submits, and print where the server's time goes")
	flag.BoolVar(&o.river, "river", true, "measure River beside Spool (-river=false: Spool alone, for profiling)")
	flag.IntVar(&o.workers, "workers", 100, "workers of Spool and MaxWorkers of River")
	childDB := flag.String(childServerFlag, "", "(internal) serve this SQLite database for the scale workload")
	flag.Parse()

	if *childDB != "" {
		if err := runChildServer(*childDB, o.workers); err != nil {
			fmt.Fprintln(os.Stderr, "bench child server:", err)
			os.Exit(1)
		}
		return
	}
	repsSet := false
	flag.Visit(func(f *flag.Flag) { repsSet = repsSet || f.Name == "reps" })
	if o.quick && !repsSet {
		o.reps = 1
	}
	if workloads != "" {
		for _, w := range strings.Split(workloads, ",") {
			if w = strings.TrimSpace(w); !slices.Contains(allWorkloads, w) {
				fmt.Fprintf(os.Stderr, "bench: unknown workload %q (want %s)\n", w, strings.Join(allWorkloads, ", "))
				os.Exit(2)
			} else {
				o.workloads = append(o.workloads, w)
			}
		}
	}
	if o.only != "" && o.only != sqliteBackend && o.only != postgresBackend {
		fmt.Fprintf(os.Stderr, "bench: -only %q: want sqlite or postgres\n", o.only)
		os.Exit(2)
	}
	if o.reps < 1 {
		fmt.Fprintln(os.Stderr, "bench: -reps must be at least 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o)
	stop()
	os.Exit(code)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// run runs the selected workloads and reports; it returns the exit code.
func run(ctx context.Context, o options) int {
	sz := fullSizes()
	if o.quick {
		sz = quickSizes()
	}
	if o.n > 0 {
		sz.WorkRate = o.n
	}
	sz.Workers = o.workers
	r := &runner{
		o:     o,
		sz:    sz,
		spool: &spoolSystem{workers: sz.Workers, cpuProfile: o.cpuProfile},
		report: &Report{Started: time.Now().UTC(), Quick: o.quick, Reps: o.reps, Sizes: sz,
			Machine: machine{GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), LoadBefore: loadAverage()}},
	}
	progress("bench: %d CPUs, load average %v, %d repetition(s)%s", runtime.NumCPU(), r.report.Machine.LoadBefore, o.reps, map[bool]string{true: ", quick"}[o.quick])

	var backends []*backend
	if o.only != postgresBackend {
		b, err := newSQLiteBackend(o.dir)
		if err != nil {
			r.fail("sqlite", err)
		} else {
			backends = append(backends, b)
		}
	}
	if o.only != sqliteBackend {
		b, err := newPostgresBackend(ctx, o.pgURL)
		switch {
		case err == nil:
			b.waits = o.pgWaits
			backends = append(backends, b)
			_ = b.admin.QueryRow(ctx, `SHOW server_version`).Scan(&r.report.Machine.Postgres)
		case o.only == postgresBackend || os.Getenv("CI") == "true":
			r.fail("postgres", err)
		default:
			progress("bench: PostgreSQL skipped: %v", err)
		}
	}
	for _, b := range backends {
		if ctx.Err() == nil {
			r.runBackend(ctx, b)
		}
		b.close()
	}

	r.report.Targets = evaluateTargets(r.report.Rows)
	r.report.Finished = time.Now().UTC()
	r.report.Machine.LoadAfter = loadAverage()
	fmt.Println()
	r.report.printTable(os.Stdout)
	fmt.Printf("\nload average before %v, after %v; %s\n", r.report.Machine.LoadBefore, r.report.Machine.LoadAfter,
		r.report.Finished.Sub(r.report.Started).Round(time.Second))
	if o.jsonPath != "" {
		if err := r.report.writeJSON(o.jsonPath); err != nil {
			r.fail("json", err)
		}
	}
	if o.markdown != "" {
		f, err := os.Create(o.markdown)
		if err == nil {
			r.report.printMarkdown(f)
			err = f.Close()
		}
		if err != nil {
			r.fail("markdown", err)
		}
	}
	if len(r.report.Errors) > 0 {
		fmt.Fprintln(os.Stderr, "\nbench: errors:")
		for _, e := range r.report.Errors {
			fmt.Fprintln(os.Stderr, "  "+e)
		}
		return 1
	}
	if ctx.Err() != nil {
		return 130
	}
	return 0
}

// progress writes a line to standard error.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// system is one side of a comparison.
type system interface {
	name() string
	setting() string
	insertOne(ctx context.Context, b *backend, n int) (float64, error)
	insertBatch(ctx context.Context, b *backend, n int) (float64, error)
	workRate(ctx context.Context, b *backend, n int) (drainResult, error)
	latency(ctx context.Context, b *backend, p latencyPlan) ([]time.Duration, error)
}

// metric is one figure a workload yields.
type metric struct {
	key, label, unit, better string
}

type runner struct {
	o      options
	sz     sizes
	spool  *spoolSystem
	report *Report
}

func (r *runner) fail(what string, err error) {
	msg := what + ": " + err.Error()
	progress("bench: error: %s", msg)
	r.report.Errors = append(r.report.Errors, msg)
}

func (r *runner) selected(w string) bool {
	return len(r.o.workloads) == 0 || slices.Contains(r.o.workloads, w)
}

// measureTimeout bounds one measurement, so that a stuck run fails instead of hanging.
const measureTimeout = 15 * time.Minute

func (r *runner) runBackend(ctx context.Context, b *backend) {
	k := b.kind
	rivers := []system{&riverSystem{set: riverDefault, workers: r.sz.Workers}, &riverSystem{set: riverTuned, workers: r.sz.Workers}}
	insertOnly := &riverSystem{set: riverSetting{name: settingInsertOnly}, workers: r.sz.Workers}
	both := append([]system{r.spool}, rivers...)
	rateMetric := func(label string) []metric {
		return []metric{{"rate", label + " (runs/s)", "runs/s", higherIsBetter}}
	}

	if r.selected(wInsertOne) {
		r.compare(ctx, b, wInsertOne, []system{r.spool, insertOnly}, rateMetric("insert, one at a time"),
			func(ctx context.Context, s system) (map[string]float64, error) {
				v, err := s.insertOne(ctx, b, r.sz.InsertOne)
				return map[string]float64{"rate": v}, err
			})
	}
	if r.selected(wInsertBatch) {
		r.compare(ctx, b, wInsertBatch, []system{r.spool, insertOnly}, rateMetric("insert, batches of 1,000"),
			func(ctx context.Context, s system) (map[string]float64, error) {
				v, err := s.insertBatch(ctx, b, r.sz.InsertBatch)
				return map[string]float64{"rate": v}, err
			})
	}
	workMetrics := func(label string) []metric {
		return []metric{
			{"rate", label + " (runs/s)", "runs/s", higherIsBetter},
			{"cpu", label + ", CPU of this process per run (µs)", "µs", lowerIsBetter},
		}
	}
	drain := func(ctx context.Context, s system) (map[string]float64, error) {
		v, err := s.workRate(ctx, b, r.sz.WorkRate)
		return map[string]float64{"rate": v.rate, "cpu": v.cpu}, err
	}
	if r.selected(wWorkRate) {
		r.compare(ctx, b, wWorkRate, both, workMetrics(fmt.Sprintf("work rate, %s runs drained", commas(float64(r.sz.WorkRate)))), drain)
	}
	if r.selected(wWorkRate1000) && k == postgresBackend {
		// The extra row of docs/benchmarks.md: 1,000 workers on each side, River tuned.
		spool1000 := &spoolSystem{workers: 1000}
		river1000 := &riverSystem{set: riverTuned, workers: 1000}
		r.compare(ctx, b, wWorkRate1000, []system{spool1000, river1000}, workMetrics("work rate, 1,000 workers"), drain)
	}
	if r.selected(wLatency) {
		plan := r.sz.latencyPlan()
		label := fmt.Sprintf("submit-to-start latency at %d/s", plan.perSec)
		r.compare(ctx, b, wLatency, both, []metric{
			{"p50", label + ", p50 (ms)", "ms", lowerIsBetter},
			{"p95", label + ", p95 (ms)", "ms", lowerIsBetter},
			{"p99", label + ", p99 (ms)", "ms", lowerIsBetter},
		}, func(ctx context.Context, s system) (map[string]float64, error) {
			lat, err := s.latency(ctx, b, plan)
			if err != nil {
				return nil, err
			}
			sum := summarizeLatencies(lat)
			return map[string]float64{"p50": sum.P50, "p95": sum.P95, "p99": sum.P99, "early": float64(sum.Early)}, nil
		})
	}
	for _, w := range []string{wHTTP, wHTTPSSE} {
		if !r.selected(w) {
			continue
		}
		ssePer, label := 0, fmt.Sprintf("HTTP submit, %d clients (runs/s)", r.sz.HTTPClients)
		if w == wHTTPSSE {
			ssePer = r.sz.SSEPer
			label = fmt.Sprintf("HTTP submit, %d clients, an SSE stream per %d runs (runs/s)", r.sz.HTTPClients, ssePer)
		}
		r.compare(ctx, b, w, []system{r.spool}, []metric{{"rate", label, "runs/s", higherIsBetter}},
			func(ctx context.Context, _ system) (map[string]float64, error) {
				res, err := r.spool.httpSubmit(ctx, b, r.sz.HTTPSubmits, r.sz.HTTPClients, ssePer)
				if err == nil && ssePer > 0 && res.streams != r.sz.HTTPSubmits/ssePer {
					err = fmt.Errorf("%d of %d SSE streams carried their run's result", res.streams, r.sz.HTTPSubmits/ssePer)
				}
				return map[string]float64{"rate": res.rate}, err
			})
	}
	if r.selected(wScheduled) {
		label := fmt.Sprintf("work rate, %s scheduled runs waiting (runs/s)", commas(float64(r.sz.Scheduled)))
		r.againstBaseline(ctx, b, wScheduled, label, "Spool, none waiting", func(ctx context.Context) (drainResult, error) {
			return r.spool.drainBehindScheduled(ctx, b, r.sz.WorkRate, r.sz.Scheduled)
		})
	}
	if r.selected(wRateLimited) {
		label := fmt.Sprintf("work rate, %s rate-limited agents with %s runs waiting (runs/s)",
			commas(float64(r.sz.LimitedAgents)), commas(float64(r.sz.LimitedAgents*r.sz.LimitedRuns)))
		r.againstBaseline(ctx, b, wRateLimited, label, "Spool, none waiting", func(ctx context.Context) (drainResult, error) {
			return r.spool.drainBehindRateLimited(ctx, b, r.sz.WorkRate, r.sz.LimitedAgents, r.sz.LimitedRuns)
		})
	}
	if r.selected(wScale) && k == sqliteBackend {
		r.runScale(ctx, b)
	}
}

// variant is one side of an alternation: a system, or Spool under other conditions.
type variant struct {
	name string
	run  func(context.Context) (map[string]float64, error)
}

// alternate runs every variant r.o.reps times, rotating their order each repetition so that
// none always runs first, and returns the samples by variant name and metric.
func (r *runner) alternate(ctx context.Context, b *backend, workload string, variants []variant, metrics []metric) map[string]map[string][]float64 {
	samples := map[string]map[string][]float64{}
	for rep := 0; rep < r.o.reps && ctx.Err() == nil; rep++ {
		for i := range variants {
			v := variants[(i+rep)%len(variants)]
			mctx, cancel := context.WithTimeout(ctx, measureTimeout)
			start := time.Now()
			vals, err := v.run(mctx)
			cancel()
			if err != nil {
				r.fail(fmt.Sprintf("%s %s %s rep %d", b.kind, workload, v.name, rep+1), err)
				continue
			}
			if samples[v.name] == nil {
				samples[v.name] = map[string][]float64{}
			}
			var parts []string
			for _, m := range metrics {
				samples[v.name][m.key] = append(samples[v.name][m.key], vals[m.key])
				parts = append(parts, formatValue(vals[m.key], m.unit))
			}
			if early := vals["early"]; early > 0 {
				parts = append(parts, fmt.Sprintf("%.0f started before their insert returned", early))
			}
			progress("%-8s %-20s rep %d/%d  %-18s %s  (%s)", b.kind, workload, rep+1, r.o.reps, v.name,
				strings.Join(parts, ", "), time.Since(start).Round(100*time.Millisecond))
		}
	}
	return samples
}

// compare measures Spool (systems[0]) and River at each setting (the others) alternately,
// and adds one row per metric and River setting. Without -river it measures Spool alone.
func (r *runner) compare(ctx context.Context, b *backend, workload string, systems []system, metrics []metric,
	measure func(context.Context, system) (map[string]float64, error)) {
	if !r.o.river {
		systems = systems[:1]
	}
	var variants []variant
	for _, s := range systems {
		variants = append(variants, variant{s.name(), func(ctx context.Context) (map[string]float64, error) { return measure(ctx, s) }})
	}
	samples := r.alternate(ctx, b, workload, variants, metrics)
	spoolName := systems[0].name()
	for _, m := range metrics {
		if len(systems) == 1 {
			r.report.Rows = append(r.report.Rows, &Row{Backend: b.kind, Workload: workload, Metric: m.key, Label: m.label,
				Unit: m.unit, Better: m.better, Spool: newFigure(samples[spoolName][m.key])})
			continue
		}
		for _, s := range systems[1:] {
			row := &Row{Backend: b.kind, Workload: workload, Metric: m.key, Label: m.label, Unit: m.unit, Better: m.better,
				Spool: newFigure(samples[spoolName][m.key]), River: newFigure(samples[s.name()][m.key]), RiverSetting: s.setting()}
			row.computeAdvantage()
			r.report.Rows = append(r.report.Rows, row)
		}
	}
}

// againstBaseline measures Spool under a condition and Spool's plain work rate alternately,
// and adds a row with the plain rate as its baseline.
func (r *runner) againstBaseline(ctx context.Context, b *backend, workload, label, baselineLabel string,
	run func(context.Context) (drainResult, error)) {
	const name, base = "spool", "spool, baseline"
	m := metric{"rate", label, "runs/s", higherIsBetter}
	samples := r.alternate(ctx, b, workload, []variant{
		{name, func(ctx context.Context) (map[string]float64, error) {
			v, err := run(ctx)
			return map[string]float64{"rate": v.rate}, err
		}},
		{base, func(ctx context.Context) (map[string]float64, error) {
			v, err := r.spool.workRate(ctx, b, r.sz.WorkRate)
			return map[string]float64{"rate": v.rate}, err
		}},
	}, []metric{m})
	row := &Row{Backend: b.kind, Workload: workload, Metric: m.key, Label: m.label, Unit: m.unit, Better: m.better,
		Spool: newFigure(samples[name][m.key]), Baseline: newFigure(samples[base][m.key]), BaselineLabel: baselineLabel}
	row.computeAdvantage()
	r.report.Rows = append(r.report.Rows, row)
}

// runScale runs the scale workload once (its work rate at depth r.o.reps times).
func (r *runner) runScale(ctx context.Context, b *backend) {
	k := b.kind
	progress("%-8s %-20s %s queued runs", k, wScale, commas(float64(r.sz.ScaleQueued)))
	sctx, cancel := context.WithTimeout(ctx, 3*measureTimeout)
	defer cancel()
	res, err := r.spool.scale(sctx, b, r.sz.ScaleQueued, r.sz.ScaleDrain, r.o.reps, r.sz.ScaleSamples)
	if err != nil {
		r.fail(k+" scale", err)
		return
	}
	depth := commas(float64(res.queued))
	add := func(workload, metric, label, unit, better string, f *Figure, note string) {
		r.report.Rows = append(r.report.Rows, &Row{Backend: k, Workload: workload, Metric: metric, Label: label,
			Unit: unit, Better: better, Spool: f, Note: note})
	}
	one := func(v float64) *Figure { return newFigure([]float64{v}) }
	add("scale_rss", "settled", "server RSS, "+depth+" queued, workers busy (MB)", "MB", lowerIsBetter, one(res.rssSettled), "")
	add("scale_rss", "after_requests", "server RSS after the stats and list requests (MB)", "MB", lowerIsBetter, one(res.rssAfter), "")
	add("scale_rss", "peak", "server peak RSS, VmHWM (MB)", "MB", lowerIsBetter, one(res.rssPeak), "")
	labels := map[string]string{
		"stats":              "`stats` (GET /api/v1/stats)",
		"ls":                 "`ls` (GET /api/v1/runs, page 1 of 20)",
		"dash_first":         "dashboard runs page, first 50",
		"dash_queued_recipe": "dashboard runs page, state=queued & recipe",
		"dash_running":       "dashboard runs page, state=running",
		"dash_failed":        "dashboard runs page, state=failed (none)",
		"dash_agent_none":    "dashboard runs page, agent matching none",
		"dash_keyset":        "dashboard runs page, next page (keyset)",
	}
	for _, q := range scaleRequests {
		add("scale_requests", q.key, labels[q.key]+" at "+depth+" (ms)", "ms", lowerIsBetter, newFigure(res.requests[q.key]),
			fmt.Sprintf("median and range of %d requests", len(res.requests[q.key])))
	}
	deep := &Row{Backend: k, Workload: "scale_work_rate", Metric: "rate", Label: "work rate at " + depth + " queued (runs/s)",
		Unit: "runs/s", Better: higherIsBetter, Spool: newFigure(res.drains),
		Baseline: newFigure(res.emptyDrains), BaselineLabel: "Spool, empty queue"}
	deep.computeAdvantage()
	r.report.Rows = append(r.report.Rows, deep)
	add("scale_prefill", "rate", "prefill of "+depth+" runs with SubmitMany (runs/s)", "runs/s", higherIsBetter, one(res.prefill), "")
}

// profileName is the CPU profile file of one backend.
func profileName(prefix, backend string) string { return prefix + "." + backend + ".pprof" }
