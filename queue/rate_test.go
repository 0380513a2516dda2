package queue_test

import (
	"testing"
	"time"

	"github.com/spool-run/spool/queue"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want queue.Rate
		str  string
	}{
		{"60/1m", queue.Rate{Limit: 60, Per: time.Minute}, "60/1m"},
		{"60/1m:10", queue.Rate{Limit: 60, Per: time.Minute, Burst: 10}, "60/1m:10"},
		{" 10 / s ", queue.Rate{Limit: 10, Per: time.Second}, "10/1s"},
		{"100/h:5", queue.Rate{Limit: 100, Per: time.Hour, Burst: 5}, "100/1h:5"},
		{"3/90s", queue.Rate{Limit: 3, Per: 90 * time.Second}, "3/1m30s"},
	}
	for _, g := range good {
		got, err := queue.ParseRate(g.in)
		if err != nil || got != g.want || got.String() != g.str {
			t.Errorf("ParseRate(%q) = %+v (%s), %v; want %+v (%s)", g.in, got, got.String(), err, g.want, g.str)
		}
	}
	for _, bad := range []string{"", "60", "0/1m", "-1/1m", "x/1m", "60/", "60/0s", "60/-1m", "60/soon", "60/1m:0", "60/1m:x"} {
		if _, err := queue.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
	rates, err := queue.ParseRates([]string{"summarize=60/1m:10", "*=1000/1h"})
	if err != nil || len(rates) != 2 || rates["*"].Limit != 1000 || rates["summarize"].Burst != 10 {
		t.Errorf("ParseRates = %v, %v", rates, err)
	}
	for _, bad := range []string{"summarize", "=1/1s", "a=1/soon"} {
		if _, err := queue.ParseRates([]string{bad}); err == nil {
			t.Errorf("ParseRates(%q) accepted", bad)
		}
	}
}
