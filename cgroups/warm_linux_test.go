package cgroups

import (
	"os"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

// TestMigrationWarmer: the warmer finds this process's own cgroup.procs and its no-op
// migration leaves the process where it was.
func TestMigrationWarmer(t *testing.T) {
	testutil.RequireRoot(t)
	w := NewMigrationWarmer()
	if w.procs == "" {
		t.Fatal("no cgroup.procs of our own found")
	}
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	w.Warm()
	w.Warm() // while one runs: nothing more
	deadline := time.Now().Add(5 * time.Second)
	for w.active.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the warming migration did not end")
		}
		time.Sleep(time.Millisecond)
	}
	after, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("cgroups changed:\nbefore %s\nafter  %s", before, after)
	}
	var nilWarmer *MigrationWarmer
	nilWarmer.Warm() // a warmer that found nothing does nothing
}
