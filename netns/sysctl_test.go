package netns

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

func TestValidateSysctl(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sysctl      string
		hostNetwork bool
		hostIPC     bool
		ok          bool
	}{
		{name: "net", sysctl: "net.ipv4.ip_unprivileged_port_start", ok: true},
		{name: "net slashes", sysctl: "net/ipv4/ip_unprivileged_port_start", ok: true},
		{name: "net vlan iface dots", sysctl: "net.ipv4.conf.eth0/100.forwarding", ok: true},
		{name: "net vlan iface slashes", sysctl: "net/ipv4/conf/eth0.100/forwarding", ok: true},
		{name: "net on host network", sysctl: "net.ipv4.ip_forward", hostNetwork: true},
		{name: "net on host ipc", sysctl: "net.ipv4.ip_forward", hostIPC: true, ok: true},
		{name: "shm", sysctl: "kernel.shm_rmid_forced", ok: true},
		{name: "shmmax slashes", sysctl: "kernel/shmmax", ok: true},
		{name: "msg", sysctl: "kernel.msgmax", ok: true},
		{name: "sem", sysctl: "kernel.sem", ok: true},
		{name: "mqueue", sysctl: "fs.mqueue.msg_max", ok: true},
		{name: "shm on host ipc", sysctl: "kernel.shm_rmid_forced", hostIPC: true},
		{name: "shm on host network", sysctl: "kernel.shm_rmid_forced", hostNetwork: true, ok: true},
		{name: "not namespaced", sysctl: "kernel.panic"},
		{name: "not namespaced vm", sysctl: "vm.max_map_count"},
		{name: "sem prefix only", sysctl: "kernel.semx"},
		{name: "fs.mqueue without dot", sysctl: "fs.mqueuex"},
		{name: "dot dot", sysctl: "net..ipv4"},
		{name: "parent", sysctl: "net/../kernel/panic"},
		{name: "upper case", sysctl: "net.IPv4.ip_forward"},
		{name: "empty", sysctl: ""},
		{name: "leading dot", sysctl: ".net.ipv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateSysctl(tc.sysctl, tc.hostNetwork, tc.hostIPC)
			if tc.ok && err != nil {
				t.Fatalf("ValidateSysctl(%q) = %v, want nil", tc.sysctl, err)
			}
			if !tc.ok && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ValidateSysctl(%q) = %v, want ErrInvalidArgument", tc.sysctl, err)
			}
		})
	}
}

func TestSysctlPath(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_forward":               "/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/ip_forward":               "/proc/sys/net/ipv4/ip_forward",
		"net.ipv4.conf.eth0/100.forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
		"net/ipv4/conf/eth0.100/forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
		"kernel.shm_rmid_forced":            "/proc/sys/kernel/shm_rmid_forced",
	} {
		if got := sysctlPath(normalizeSysctl(in)); got != want {
			t.Errorf("sysctlPath(%q) = %q, want %q", in, got, want)
		}
	}
}
