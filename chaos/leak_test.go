package chaos

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// nodeState is what a daemon and its pods can leave on the node: compared before the pods
// and after their teardown, any difference is a leak.
type nodeState struct {
	veths    []string // host network interfaces on chaosBridge
	cgroups  []string // cgroup directories of this run's pods (and their containers), every controller
	fwRules  []string // iptables-save rules (-A lines) naming the bridge, the subnet or the run
	mounts   []string // mount points under the daemon's directory
	netns    []string // namespace pins under <state>/ns
	procs    []string // processes other than the daemon that reference its directory
	leaseIPs []string // host-local IPAM leases of the suite's network (files named by an IP)
}

// cgroupRoots are the cgroup trees peapod puts pods in (when no CgroupParent is given): its
// /peapod tier in every v1 hierarchy, or in the v2 one.
func cgroupRoots() []string {
	out := []string{"/sys/fs/cgroup/peapod"}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, filepath.Join("/sys/fs/cgroup", e.Name(), "peapod"))
		}
	}
	return out
}

func snapshot(t *testing.T, d *framework.Daemon) nodeState {
	t.Helper()
	var s nodeState
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatalf("list interfaces: %v", err)
	}
	for _, i := range ifs {
		master, _ := os.Readlink(filepath.Join("/sys/class/net", i.Name, "master"))
		if filepath.Base(master) == chaosBridge {
			s.veths = append(s.veths, i.Name)
		}
	}
	for _, root := range cgroupRoots() {
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			// The tiers themselves are the node's, made once and kept while peapod runs.
			if err == nil && e.IsDir() && strings.Contains(p, runToken) {
				s.cgroups = append(s.cgroups, p)
			}
			return nil
		})
	}
	if out, err := exec.Command("iptables-save").Output(); err == nil {
		for l := range strings.Lines(string(out)) {
			if strings.HasPrefix(l, "-A ") && (strings.Contains(l, chaosBridge) || strings.Contains(l, strings.TrimSuffix(chaosSubnet, "0.0/16")) || strings.Contains(l, runToken)) {
				s.fwRules = append(s.fwRules, strings.TrimSpace(l))
			}
		}
	}
	if s.mounts, err = framework.MountsUnder(d.Dir()); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(filepath.Join(d.State(), "ns")); err == nil {
		for _, e := range ents {
			s.netns = append(s.netns, e.Name())
		}
	}
	procs, err := framework.ProcessesReferencing(d.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.PID != d.PID() {
			s.procs = append(s.procs, strings.Join(p.Cmdline, " "))
		}
	}
	_ = filepath.WalkDir(filepath.Join(d.Dir(), "ipam"), func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && net.ParseIP(e.Name()) != nil {
			s.leaseIPs = append(s.leaseIPs, p)
		}
		return nil
	})
	return s
}

// added is what after has that before had not.
func added(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	return out
}

// leakSettle bounds the wait for what goes away by itself a moment after a teardown: the
// kernel frees a network namespace, and the host end of its veth pair, asynchronously.
const leakSettle = 10 * time.Second

// checkNoLeak fails t for everything on the node that was not there at before and is still
// there leakSettle later, and returns the number of kinds of objects it checked.
func checkNoLeak(t *testing.T, d *framework.Daemon, before nodeState) int {
	t.Helper()
	start := time.Now()
	deadline := start.Add(leakSettle)
	var first []string
	for {
		leaks := leaksSince(snapshot(t, d), before)
		if len(leaks) == 0 {
			if first != nil {
				t.Logf("leak check: gone after %v: %v", time.Since(start).Round(time.Millisecond), first)
			}
			return 7
		}
		if first == nil {
			first = leaks
		}
		if time.Now().After(deadline) {
			for _, l := range leaks {
				t.Error(l)
			}
			return 7
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func leaksSince(after, before nodeState) []string {
	var out []string
	for _, c := range []struct {
		what          string
		before, after []string
	}{
		{"host veths", before.veths, after.veths},
		{"cgroups", before.cgroups, after.cgroups},
		{"iptables rules", before.fwRules, after.fwRules},
		{"mounts under the daemon's directory", before.mounts, after.mounts},
		{"namespace pins", before.netns, after.netns},
		{"processes referencing the daemon's directory", before.procs, after.procs},
		{"IPAM leases", before.leaseIPs, after.leaseIPs},
	} {
		if extra := added(c.before, c.after); len(extra) > 0 {
			out = append(out, fmt.Sprintf("leaked %s (still there %v after the teardown): %v", c.what, leakSettle, extra))
		}
	}
	return out
}
