// Package metrics exposes Spool's Prometheus metrics. Counters and histograms are fed by
// the engine's hooks; queue gauges are read from the engine's statistics at scrape time, so
// they are right across every node sharing the database. No label carries a run id.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spool-run/spool"
)

// StatsFunc returns the queue statistics the gauges are read from.
type StatsFunc func(ctx context.Context) (*spool.Stats, error)

// RateStatsFunc returns how many queued runs wait on a rate limit or a provider back-off,
// and when the next of them may start (nil when none waits).
type RateStatsFunc func(ctx context.Context) (waiting int64, next *time.Time, err error)

// Metrics holds Spool's collectors in their own registry.
type Metrics struct {
	registry *prometheus.Registry

	submitted  *prometheus.CounterVec
	completed  *prometheus.CounterVec
	waitHist   *prometheus.HistogramVec
	durHist    *prometheus.HistogramVec
	deliveries *prometheus.CounterVec
	gauges     *queueCollector
}

// Buckets of the wait and duration histograms, in seconds: from 10 ms to 6 hours.
var secondsBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600}

// New returns the metrics with Go runtime and process collectors registered too.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_runs_submitted_total",
			Help: "Runs accepted by submit (idempotent repeats not counted).",
		}, []string{"recipe", "workspace"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_runs_completed_total",
			Help: "Runs that reached a terminal state, by state.",
		}, []string{"recipe", "workspace", "status"}),
		waitHist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spool_run_wait_seconds",
			Help:    "Time from when a run could start (created, run_at or retry time) to its start.",
			Buckets: secondsBuckets,
		}, []string{"recipe"}),
		durHist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spool_run_duration_seconds",
			Help:    "Time from a run's last start to its completion.",
			Buckets: secondsBuckets,
		}, []string{"recipe"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered, retry (failed, due again) or failed (given up).",
		}, []string{"outcome"}),
		gauges: &queueCollector{
			queued: prometheus.NewDesc("spool_runs_queued",
				"Runs waiting in the queue, by priority.", []string{"priority"}, nil),
			running: prometheus.NewDesc("spool_runs_running",
				"Runs executing now, on every node.", nil, nil),
			rateLimited: prometheus.NewDesc("spool_runs_rate_limited",
				"Queued runs waiting on an empty rate-limit bucket or an agent held by provider back-off.", nil, nil),
			rateNext: prometheus.NewDesc("spool_rate_limit_next_start_timestamp_seconds",
				"Unix time at which the next rate-limited run may start (absent when none waits).", nil, nil),
		},
	}
	m.registry.MustRegister(m.submitted, m.completed, m.waitHist, m.durHist, m.deliveries, m.gauges,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range []string{"delivered", "retry", "failed"} {
		m.deliveries.WithLabelValues(o) // export zeroes so rates work from the start
	}
	return m
}

// SetStats sets where the queue gauges are read from; without it they are not exported.
// Call it before the first scrape.
func (m *Metrics) SetStats(f StatsFunc) { m.gauges.stats = f }

// SetRateStats sets where the rate-limit gauges are read from; without it they are not
// exported. Call it before the first scrape.
func (m *Metrics) SetRateStats(f RateStatsFunc) { m.gauges.rateStats = f }

// Registry returns the registry holding every collector.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// RunSubmitted counts a new run (the engine's OnSubmit hook).
func (m *Metrics) RunSubmitted(run *spool.Run) {
	m.submitted.WithLabelValues(run.Recipe, run.Workspace).Inc()
}

// RunStarted observes how long a run waited (the engine's OnStart hook).
func (m *Metrics) RunStarted(run *spool.Run) {
	if run.StartedAt == nil {
		return
	}
	ready := run.CreatedAt
	if run.RunAt != nil && run.RunAt.After(ready) {
		ready = *run.RunAt
	}
	if run.Attempt > 1 && run.AvailableAt.After(ready) {
		ready = run.AvailableAt
	}
	m.waitHist.WithLabelValues(run.Recipe).Observe(max(run.StartedAt.Sub(ready).Seconds(), 0))
}

// RunCompleted counts a terminal run and observes its duration (the engine's OnComplete hook).
func (m *Metrics) RunCompleted(run *spool.Run) {
	m.completed.WithLabelValues(run.Recipe, run.Workspace, string(run.State)).Inc()
	if run.StartedAt != nil && run.CompletedAt != nil {
		m.durHist.WithLabelValues(run.Recipe).Observe(max(run.CompletedAt.Sub(*run.StartedAt).Seconds(), 0))
	}
}

// WebhookAttempt counts one webhook attempt by outcome (the deliverer's OnAttempt hook).
func (m *Metrics) WebhookAttempt(outcome string) {
	m.deliveries.WithLabelValues(outcome).Inc()
}

// queueCollector reads the queue gauges from the statistics when scraped.
type queueCollector struct {
	stats       StatsFunc
	rateStats   RateStatsFunc
	queued      *prometheus.Desc
	running     *prometheus.Desc
	rateLimited *prometheus.Desc
	rateNext    *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queued
	ch <- c.running
	ch <- c.rateLimited
	ch <- c.rateNext
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if c.stats == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.queued, err)
		return
	}
	for _, p := range []spool.Priority{spool.PriorityUrgent, spool.PriorityHigh, spool.PriorityNormal, spool.PriorityLow} {
		name := p.String()
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(st.QueuedByPriority[name]), name)
	}
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(st.Running))
	if c.rateStats == nil {
		return
	}
	waiting, next, err := c.rateStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.rateLimited, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.rateLimited, prometheus.GaugeValue, float64(waiting))
	if next != nil {
		ch <- prometheus.MustNewConstMetric(c.rateNext, prometheus.GaugeValue, float64(next.UnixNano())/1e9)
	}
}
