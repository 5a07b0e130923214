// Package testutil gates kernel tests on what the machine offers and names the exact reason
// when it skips; and the fixtures that tests, critest and the benchmarks share (tars, layers,
// a raw pull). Never imported by the daemon or the shim.
package testutil

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips t unless the test runs as root; root tests run whenever we are root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("SKIP-REASON: needs root (euid is %d)", os.Geteuid())
	}
}

// RequireCgroupV2 skips t unless /sys/fs/cgroup is a unified cgroup2 hierarchy.
func RequireCgroupV2(t testing.TB) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("SKIP-REASON: /sys/fs/cgroup is not a cgroup2 (unified) hierarchy on this host")
	}
}

// RequireCgroupV1 skips t unless /sys/fs/cgroup holds cgroup v1 controllers.
func RequireCgroupV1(t testing.TB) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type == unix.CGROUP2_SUPER_MAGIC {
		t.Skip("SKIP-REASON: /sys/fs/cgroup is not a cgroup v1 hierarchy on this host")
	}
}

// RequireBinary skips t when name is not on PATH.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("SKIP-REASON: %s not found on PATH: %v", name, err)
	}
	return p
}
