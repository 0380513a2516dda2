package main

import (
	"math"
	"slices"
	"time"
)

// Figure summarises the repetitions of one measurement: the median and the range.
type Figure struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

// newFigure summarises samples; it returns nil for none.
func newFigure(samples []float64) *Figure {
	if len(samples) == 0 {
		return nil
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return &Figure{Median: median(s), Min: s[0], Max: s[len(s)-1], Samples: samples}
}

// median returns the median of sorted values (the mean of the middle two for an even count).
func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencySummary is the percentiles of one latency run, in milliseconds.
type latencySummary struct {
	P50, P95, P99 float64
	// Early counts starts seen before the insert call had returned (counted as 0).
	Early int
}

func summarizeLatencies(lat []time.Duration) latencySummary {
	s := slices.Clone(lat)
	early := 0
	for i, d := range s {
		if d < 0 {
			s[i] = 0
			early++
		}
	}
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return latencySummary{
		P50: ms(percentile(s, 0.50)), P95: ms(percentile(s, 0.95)), P99: ms(percentile(s, 0.99)), Early: early,
	}
}

// rate is n operations over d, per second.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return math.Inf(1)
	}
	return float64(n) / d.Seconds()
}
