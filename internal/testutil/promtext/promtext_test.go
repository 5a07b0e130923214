package promtext

import (
	"strings"
	"testing"
)

func TestSample(t *testing.T) {
	fams, err := Parse(strings.NewReader(`# TYPE rpcs counter
rpcs{method="Version",code="OK"} 3
rpcs{method="Status",code="OK"} 5
# TYPE pods gauge
pods{state="ready"} 2
# TYPE latency histogram
latency_bucket{le="+Inf"} 7
latency_sum 1.5
latency_count 7
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"rpcs", []string{"method", "Status"}, 5, true},
		{"rpcs", []string{"method", "Status", "code", "OK"}, 5, true},
		{"rpcs", []string{"method", "Stop"}, 0, false},
		{"pods", nil, 2, true},
		{"latency", nil, 7, true},
		{"absent", nil, 0, false},
	} {
		if got, ok := fams.Sample(tc.name, tc.labels...); got != tc.want || ok != tc.ok {
			t.Errorf("Sample(%s%v) = %v, %v; want %v, %v", tc.name, tc.labels, got, ok, tc.want, tc.ok)
		}
	}
	if _, err := Parse(strings.NewReader("not{ a scrape")); err == nil {
		t.Error("Parse accepted garbage")
	}
}
