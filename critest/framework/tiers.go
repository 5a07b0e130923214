package framework

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// peapodTiers are the QoS tier cgroups a peapod daemon makes under every hierarchy when a pod
// has no kubelet-given parent (DESIGN.md §4), deepest first.
var peapodTiers = []string{"peapod/burstable", "peapod/besteffort", "peapod"}

// tiersExist reports whether peapod's tier cgroups exist already (a peapod runs on this node).
func tiersExist() bool {
	_, err := os.Stat("/sys/fs/cgroup/cpu/peapod")
	if err != nil {
		_, err = os.Stat("/sys/fs/cgroup/peapod")
	}
	return err == nil
}

// removeTiers removes the tier cgroups the suite's daemons made. rmdir of a cgroup that still
// has children fails, so a tier in use by anyone stays.
func removeTiers() {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	hierarchies = append(hierarchies, "/sys/fs/cgroup")
	for _, h := range hierarchies {
		for _, t := range peapodTiers {
			_ = syscall.Rmdir(filepath.Join(h, t))
		}
	}
}

// bridgeExists reports whether the built-in network's bridge exists (a peapod ran pods here).
func bridgeExists() bool {
	_, err := os.Stat("/sys/class/net/peapod0")
	return err == nil
}

// removeBuiltinNetwork removes what the suite's daemons left of the built-in network once
// their pods are gone: the peapod0 bridge, if no port is left on it, and the subnet's
// masquerade rule.
func removeBuiltinNetwork() {
	ports, _ := filepath.Glob("/sys/class/net/peapod0/brif/*")
	if len(ports) > 0 {
		return
	}
	_ = exec.Command("ip", "link", "del", "peapod0").Run()
	_ = exec.Command("iptables", "-t", "nat", "-D", "POSTROUTING", "-s", "10.89.0.0/16", "!", "-d", "10.89.0.0/16",
		"-m", "comment", "--comment", "peapod network peapod", "-j", "MASQUERADE").Run()
	removeLeaseDir()
}

// builtinLeases is the built-in network's node-wide lease directory (netns/cni's default).
const builtinLeases = "/run/peapod/cni/networks/peapod"

// removeLeaseDir removes the built-in network's lease directory when it holds no lease, only
// the IPAM's lock and its last-reserved marker, and then its parents if empty.
func removeLeaseDir() {
	entries, err := os.ReadDir(builtinLeases)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			return // a lease: a pod still has an address
		}
	}
	_ = os.RemoveAll(builtinLeases)
	for _, d := range []string{"/run/peapod/cni/networks", "/run/peapod/cni", "/run/peapod"} {
		_ = syscall.Rmdir(d)
	}
}

// NodeCleanup notes which of peapod's node-wide objects (tier cgroups, the built-in network's
// bridge and masquerade rule) exist now, and returns a function that removes, once the
// daemons started meanwhile are gone, the ones that did not: what a test run or a bench
// made goes with it, what a real peapod on the node uses stays.
func NodeCleanup() func() {
	hadTiers, hadBridge, hadPortmap := tiersExist(), bridgeExists(), portmapChainsExist()
	return func() {
		if !hadTiers {
			removeTiers()
		}
		if !hadBridge {
			removeBuiltinNetwork()
		}
		if !hadPortmap {
			removePortmapChains()
		}
	}
}

// The portmap plugin's node-wide chains and the jumps to them, which it makes for the first
// hostPort and never removes.
var (
	portmapChains = []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"}
	portmapJumps  = [][]string{
		{"PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"},
		{"OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"},
		{"POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"},
	}
)

func portmapChainsExist() bool {
	return exec.Command("iptables", "-t", "nat", "-S", portmapChains[0]).Run() == nil
}

// removePortmapChains removes the portmap chains once no hostPort uses them (the DNAT chain
// holds no rule, or is gone while the others stay: another remover may have got half way).
func removePortmapChains() {
	out, err := exec.Command("iptables", "-t", "nat", "-S", portmapChains[0]).Output()
	if err == nil && strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
		return // a hostPort still has a rule
	}
	for _, j := range portmapJumps {
		_ = exec.Command("iptables", append([]string{"-t", "nat", "-D"}, j...)...).Run()
	}
	for _, c := range portmapChains {
		_ = exec.Command("iptables", "-t", "nat", "-F", c).Run()
		_ = exec.Command("iptables", "-t", "nat", "-X", c).Run()
	}
}
