package serve

import (
	"slices"
	"testing"
)

// TestReexecArgs: a re-executed shim gets the flags it started with, without the readiness
// fd (nobody reads it any more) or an earlier handover, and with the helper it resolved.
func TestReexecArgs(t *testing.T) {
	for _, tc := range []struct {
		args, want []string
		binary     string
	}{{
		args: []string{"/usr/bin/peapod-shim", "serve", "--pod-id", "p", "--state-dir", "/run/s", "--ready-fd", "3", "--pid-namespace"},
		want: []string{"/usr/bin/peapod-shim", "serve", "--pod-id", "p", "--state-dir", "/run/s", "--pid-namespace", "--helper", "/usr/bin/peapod-shim-runc", "--resume", "7"},
	}, {
		// A re-executed shim re-executing: the old handover and helper go.
		args: []string{"peapod-shim", "serve", "--pod-id", "p", "--state-dir", "/run/s", "--helper", "/old", "--resume", "5"},
		want: []string{"peapod-shim", "serve", "--pod-id", "p", "--state-dir", "/run/s", "--helper", "/usr/bin/peapod-shim-runc", "--resume", "7"},
	}, {
		// Flags with their values after "=", and values that look like the flags' names.
		args: []string{"peapod-shim", "serve", "-pod-id", "resume", "--state-dir=/run/helper", "-ready-fd=3", "--helper=/old", "--resume=5"},
		want: []string{"peapod-shim", "serve", "-pod-id", "resume", "--state-dir=/run/helper", "--helper", "/usr/bin/peapod-shim-runc", "--resume", "7"},
	}, {
		// A first stage re-executes into the lean binary, which gets no --lean.
		args:   []string{"/usr/bin/peapod-shim-runc", "serve", "--pod-id", "p", "--state-dir", "/run/s", "--ready-fd", "3", "--lean", "/usr/bin/peapod-shim"},
		binary: "/usr/bin/peapod-shim",
		want:   []string{"/usr/bin/peapod-shim", "serve", "--pod-id", "p", "--state-dir", "/run/s", "--helper", "/usr/bin/peapod-shim-runc", "--resume", "7"},
	}} {
		if got := reexecArgs(tc.args, 7, "/usr/bin/peapod-shim-runc", tc.binary); !slices.Equal(got, tc.want) {
			t.Errorf("reexecArgs(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
