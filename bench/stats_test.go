package main

import (
	"testing"
	"time"
)

func TestNewFigure(t *testing.T) {
	t.Parallel()
	f := newFigure([]float64{30, 10, 20})
	if f.Median != 20 || f.Min != 10 || f.Max != 30 {
		t.Errorf("newFigure(30, 10, 20) = %+v, want median 20 in 10-30", f)
	}
	if got := newFigure([]float64{4, 1, 3, 2}).Median; got != 2.5 {
		t.Errorf("median of 1..4 = %v, want 2.5", got)
	}
	if newFigure(nil) != nil {
		t.Error("newFigure(nil) is not nil")
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.95, 95 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := percentile(lat, tc.q); got != tc.want {
			t.Errorf("percentile(1..100 ms, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestSummarizeLatenciesCountsEarlyStarts(t *testing.T) {
	t.Parallel()
	s := summarizeLatencies([]time.Duration{-time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond})
	if s.Early != 1 || s.P50 != 2 || s.P99 != 4 {
		t.Errorf("summarizeLatencies = %+v, want 1 early, p50 2 ms, p99 4 ms", s)
	}
}
