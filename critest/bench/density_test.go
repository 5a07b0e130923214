package main

import "testing"

func TestParseCPULine(t *testing.T) {
	busy, total, err := parseCPULine("cpu  1634502 22817 1253752 11472651 23713 0 33965 2454 0 0")
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal; idle and iowait are not busy.
	if want := uint64(1634502 + 22817 + 1253752 + 0 + 33965 + 2454); busy != want {
		t.Errorf("busy = %d, want %d", busy, want)
	}
	if want := uint64(1634502 + 22817 + 1253752 + 11472651 + 23713 + 33965 + 2454); total != want {
		t.Errorf("total = %d, want %d", total, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5", "cpu 1 2 x 4 5", "cpu 1 2"} {
		if _, _, err := parseCPULine(bad); err == nil {
			t.Errorf("parseCPULine(%q) took it", bad)
		}
	}
}
