package spec

import (
	"errors"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestWithNamespaces(t *testing.T) {
	pod := func(p string) Namespace { return Namespace{Mode: ModePod, Path: p} }
	node := Namespace{Mode: ModeNode}
	ns := func(typ specs.LinuxNamespaceType, path string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: typ, Path: path}
	}
	mnt := ns(specs.MountNamespace, "")
	for _, tc := range []struct {
		name string
		in   Namespaces
		want []specs.LinuxNamespace
	}{
		{
			name: "pod network, own pid",
			in:   Namespaces{Network: pod("/run/p/net"), IPC: pod("/run/p/ipc"), UTS: pod("/run/p/uts"), PID: Namespace{Mode: ModeContainer}},
			want: []specs.LinuxNamespace{mnt, ns(specs.NetworkNamespace, "/run/p/net"), ns(specs.IPCNamespace, "/run/p/ipc"),
				ns(specs.UTSNamespace, "/run/p/uts"), ns(specs.PIDNamespace, "")},
		},
		{
			name: "pod pid",
			in:   Namespaces{Network: pod("/n"), IPC: pod("/i"), UTS: pod("/u"), PID: pod("/proc/42/ns/pid")},
			want: []specs.LinuxNamespace{mnt, ns(specs.NetworkNamespace, "/n"), ns(specs.IPCNamespace, "/i"),
				ns(specs.UTSNamespace, "/u"), ns(specs.PIDNamespace, "/proc/42/ns/pid")},
		},
		{
			name: "node everything",
			in:   Namespaces{Network: node, IPC: node, UTS: node, PID: node},
			want: []specs.LinuxNamespace{mnt},
		},
		{
			name: "target pid, cgroup ns",
			in:   Namespaces{Network: node, IPC: node, UTS: node, PID: Namespace{Mode: ModeTarget, Path: "/proc/7/ns/pid"}, Cgroup: true},
			want: []specs.LinuxNamespace{mnt, ns(specs.PIDNamespace, "/proc/7/ns/pid"), ns(specs.CgroupNamespace, "")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Build(nil, WithNamespaces(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Linux.Namespaces, tc.want) {
				t.Fatalf("got %+v\nwant %+v", s.Linux.Namespaces, tc.want)
			}
		})
	}
	for _, bad := range []Namespaces{
		{Network: Namespace{Mode: ModePod}, IPC: node, UTS: node, PID: node},
		{Network: Namespace{Mode: ModeTarget, Path: "/x"}, IPC: node, UTS: node, PID: node},
		{Network: node, IPC: node, UTS: node, PID: Namespace{Mode: ModeTarget}},
		{Network: node, IPC: Namespace{Mode: 8}, UTS: node, PID: node},
	} {
		if _, err := Build(nil, WithNamespaces(bad)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: err = %v", bad, err)
		}
	}
}
