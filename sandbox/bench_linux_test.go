package sandbox

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// TestPodLatency reports the time of Run and of Stop+Remove for pods on the CNI network and
// on the host network (go test -run PodLatency -v). It asserts nothing about speed: make
// bench owns the targets.
func TestPodLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP-REASON: -short skips the latency report")
	}
	f := newFixture(t)
	ctx := t.Context()
	for _, hostNet := range []bool{false, true} {
		var run, down []time.Duration
		for i := range 10 {
			cfg := podConfig(fmt.Sprintf("lat%v%d", hostNet, i))
			cfg.Sysctls = nil
			if hostNet {
				cfg.Namespaces.Network = ModeNode
			}
			start := time.Now()
			sb, err := f.m.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			run = append(run, time.Since(start))
			start = time.Now()
			if err := f.m.Stop(ctx, sb.ID); err != nil {
				t.Fatal(err)
			}
			if err := f.m.Remove(ctx, sb.ID); err != nil {
				t.Fatal(err)
			}
			down = append(down, time.Since(start))
		}
		t.Logf("hostNetwork=%v: run p50 %v, stop+remove p50 %v", hostNet, median(run), median(down))
	}
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}
