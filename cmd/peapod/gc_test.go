package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })

	t.Setenv("GOGC", "")
	tuneGC()
	if got := debug.SetGCPercent(100); got != daemonGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want the daemon's default %d", got, daemonGCPercent)
	}

	// The runtime read GOGC=80 at start; tuneGC must leave what the operator chose.
	debug.SetGCPercent(80)
	t.Setenv("GOGC", "80")
	tuneGC()
	if got := debug.SetGCPercent(100); got != 80 {
		t.Errorf("GOGC=80: GC percent %d, want 80 left alone", got)
	}
}
