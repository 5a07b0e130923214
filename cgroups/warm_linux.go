package cgroups

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
)

// MigrationWarmer shortens the cgroup migration of a container's create.
//
// Every write of a pid to a cgroup.procs file takes the kernel's global
// cgroup_threadgroup_rwsem for writing and, unless the hierarchy is mounted with the
// favordynmods option, first waits for an RCU grace period: about 6 ms on the 2-core test
// VM, a third of libcontainer's create. A grace period serves every writer that comes while
// it runs and for a few milliseconds after (measured: a second write 8 ms after the first
// costs 0.2 ms, 16 ms after it 7 ms again). So CreateContainer starts one no-op migration
// (the daemon into the cgroup it is already in) as it begins: its wait overlaps the rest of
// the create, and the shim's migration of the container's init, a few milliseconds later,
// finds the lock already in its writer state. The kernel state is global, so it does not
// matter which process migrates.
type MigrationWarmer struct {
	procs  string // our own cgroup.procs; "" when not found (then warm does nothing)
	pid    []byte
	active atomic.Bool
}

// NewMigrationWarmer finds this process's own cgroup.procs; a warmer that found none does
// nothing.
func NewMigrationWarmer() *MigrationWarmer {
	return &MigrationWarmer{procs: ownCgroupProcs(), pid: []byte(strconv.Itoa(os.Getpid()))}
}

// Warm starts one no-op migration in the background, unless one is still running.
func (w *MigrationWarmer) Warm() {
	if w == nil || w.procs == "" || !w.active.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer w.active.Store(false)
		f, err := os.OpenFile(w.procs, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		_, _ = f.Write(w.pid)
		_ = f.Close()
	}()
}

// ownCgroupProcs finds this process's own cgroup.procs: in the v2 hierarchy (also the
// controller-less one of a hybrid host) if mounted, else in any v1 hierarchy.
func ownCgroupProcs() string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	defer f.Close()
	var candidates []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			candidates = append([]string{
				filepath.Join("/sys/fs/cgroup/unified", parts[2]),
				filepath.Join("/sys/fs/cgroup", parts[2]),
			}, candidates...)
			continue
		}
		candidates = append(candidates, filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(parts[1], "name="), parts[2]))
	}
	for _, dir := range candidates {
		p := filepath.Join(dir, "cgroup.procs")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}
