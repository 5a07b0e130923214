package spec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod-runtime/peapod/volumes"
)

// fixture is a pod-and-container setup on disk: an image rootfs with users and a VOLUME's
// content, a kubelet-style emptyDir and hosts file, and the pod's own files.
type fixture struct {
	rootfs, emptyDir, kubeletHosts, volumesDir string
	pod                                        volumes.PodFilePaths
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{rootfs: userRootfs(t)}
	writeFile(t, filepath.Join(f.rootfs, "var/lib/app/seed"), "seed")
	base := t.TempDir()
	f.emptyDir = filepath.Join(base, "empty-dir")
	f.kubeletHosts = filepath.Join(base, "etc-hosts")
	writeFile(t, filepath.Join(f.emptyDir, ".keep"), "")
	writeFile(t, f.kubeletHosts, "127.0.0.1 localhost\n")
	var err error
	f.pod, err = volumes.WritePodFiles(volumes.PodFiles{Dir: filepath.Join(base, "pod"), Hostname: "web-0", IPs: []string{"10.89.0.5"},
		DNS: &volumes.DNSConfig{Servers: []string{"10.96.0.10"}}})
	if err != nil {
		t.Fatal(err)
	}
	f.pod.Shm = filepath.Join(base, "pod", "shm")
	f.volumesDir = filepath.Join(base, "container", "volumes")
	return f
}

func testHost() Host {
	floor := -999
	return Host{
		Capabilities:     thisVMCaps(),
		NoFileLimit:      20000,
		OOMScoreAdjFloor: &floor,
		DevDir:           "/nonexistent-dev",
		Platform:         Platform{Arch: "amd64", Kernel: [2]int{6, 1}},
		MountLookup: func(string) (*mountinfo.Info, error) {
			return &mountinfo.Info{Mountpoint: "/", Optional: "shared:1"}, nil
		},
	}
}

func (f fixture) input() Input {
	adj := -1000
	return Input{
		ID:         "c1",
		RootfsPath: f.rootfs,
		Image: Image{
			Entrypoint: []string{"/docker-entrypoint.sh"},
			Cmd:        []string{"nginx", "-g", "daemon off;"},
			Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.27"},
			WorkingDir: "/srv",
			User:       "alice",
			Volumes:    []string{"/var/lib/app", "/usr/share/nginx/html"},
		},
		Args:     []string{"nginx", "-T"},
		Env:      []EnvVar{{"NGINX_VERSION", "1.28"}, {"MODE", "test"}},
		Hostname: "web-0",
		Mounts: []volumes.Mount{
			{ContainerPath: "/usr/share/nginx/html", HostPath: f.emptyDir},
			{ContainerPath: "/etc/hosts", HostPath: f.kubeletHosts},
		},
		PodFiles:        f.pod,
		ImageVolumesDir: f.volumesDir,
		Namespaces: Namespaces{
			Network: Namespace{Mode: ModePod, Path: "/run/peapod/ns/p1/net"},
			IPC:     Namespace{Mode: ModePod, Path: "/run/peapod/ns/p1/ipc"},
			UTS:     Namespace{Mode: ModePod, Path: "/run/peapod/ns/p1/uts"},
			PID:     Namespace{Mode: ModeContainer},
		},
		Security: Security{
			RunAsGroup:         nil,
			SupplementalGroups: []int64{2000},
			Capabilities:       Capabilities{Add: []string{"NET_ADMIN"}, Drop: []string{"MKNOD"}},
			NoNewPrivs:         true,
			Seccomp:            &SecurityProfile{Type: ProfileRuntimeDefault},
		},
		Resources:   &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(716))}},
		CgroupsPath: "/peapod/podabc/c1",
		OOMScoreAdj: &adj,
		Annotations: map[string]string{"io.kubernetes.cri.container-name": "web"},
		Host:        testHost(),
	}
}

func ptr[T any](v T) *T { return &v }

func TestGenerate(t *testing.T) {
	f := newFixture(t)
	s, res, err := Generate(t.Context(), f.input())
	if err != nil {
		t.Fatal(err)
	}

	if want := []string{"/docker-entrypoint.sh", "nginx", "-T"}; !slices.Equal(s.Process.Args, want) {
		t.Errorf("args %q", s.Process.Args)
	}
	if want := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=web-0", "NGINX_VERSION=1.28", "MODE=test"}; !slices.Equal(s.Process.Env, want) {
		t.Errorf("env %q", s.Process.Env)
	}
	if s.Process.Cwd != "/srv" || s.Process.Terminal || !s.Process.NoNewPrivileges {
		t.Errorf("process %+v", s.Process)
	}
	wantUser := specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000, 2000}}
	if !reflect.DeepEqual(s.Process.User, wantUser) || res.User.UID != 1000 || !slices.Equal(res.User.AdditionalGids, wantUser.AdditionalGids) {
		t.Errorf("user %+v, resolved %+v", s.Process.User, res.User)
	}
	caps := s.Process.Capabilities.Bounding
	if !slices.Contains(caps, "CAP_NET_ADMIN") || slices.Contains(caps, "CAP_MKNOD") || len(caps) != 14 {
		t.Errorf("caps %v", caps)
	}
	if s.Root.Path != f.rootfs || s.Root.Readonly {
		t.Errorf("root %+v", s.Root)
	}
	if s.Hostname != "" {
		t.Errorf("hostname %q set with the pod's UTS namespace", s.Hostname)
	}

	// Mounts: defaults (the default /dev/shm replaced by the pod's), then the pod's files
	// (not /etc/hosts: the kubelet's wins), the image VOLUME not covered by a CRI mount,
	// and the CRI mounts, parents first.
	wantDests := []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
		"/etc/hostname", "/etc/resolv.conf", "/dev/shm", "/etc/hosts", "/var/lib/app", "/usr/share/nginx/html"}
	if got := dests(s.Mounts); !slices.Equal(got, wantDests) {
		t.Fatalf("mounts %v\nwant %v", got, wantDests)
	}
	byDest := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		byDest[m.Destination] = m
	}
	if byDest["/etc/hosts"].Source != f.kubeletHosts || byDest["/dev/shm"].Source != f.pod.Shm || byDest["/etc/resolv.conf"].Source != f.pod.ResolvConf {
		t.Errorf("sources: hosts %s shm %s resolv %s", byDest["/etc/hosts"].Source, byDest["/dev/shm"].Source, byDest["/etc/resolv.conf"].Source)
	}
	if seed, err := os.ReadFile(filepath.Join(byDest["/var/lib/app"].Source, "seed")); err != nil || string(seed) != "seed" {
		t.Errorf("image volume not seeded: %q, %v", seed, err)
	}
	if entries, _ := os.ReadDir(f.volumesDir); len(entries) != 1 {
		t.Errorf("volumes dir holds %d entries, want 1 (the covered VOLUME gets none)", len(entries))
	}

	if !slices.Equal(s.Linux.MaskedPaths, DefaultMaskedPaths()) || !slices.Equal(s.Linux.ReadonlyPaths, DefaultReadonlyPaths()) {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("seccomp %+v", s.Linux.Seccomp)
	}
	if *s.Process.OOMScoreAdj != -999 {
		t.Errorf("oom_score_adj %d, want the floor -999", *s.Process.OOMScoreAdj)
	}
	if r := s.Process.Rlimits; len(r) != 1 || r[0].Type != "RLIMIT_NOFILE" || r[0].Hard != 20000 || r[0].Soft != 20000 {
		t.Errorf("rlimits %+v", r)
	}
	if s.Linux.CgroupsPath != "/peapod/podabc/c1" || *s.Linux.Resources.CPU.Shares != 716 || len(s.Linux.Resources.Devices) != 9 {
		t.Errorf("cgroup %s resources %+v", s.Linux.CgroupsPath, s.Linux.Resources)
	}
	if s.Annotations["io.kubernetes.cri.container-name"] != "web" {
		t.Errorf("annotations %v", s.Annotations)
	}

	// The spec survives a JSON round trip unchanged: what the shim receives is what we built.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, s) {
		t.Fatal("spec changed across a JSON round trip")
	}
}

func TestGenerateVariants(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		edit  func(in *Input)
		check func(t *testing.T, s *specs.Spec)
	}{
		{
			name: "privileged",
			edit: func(in *Input) {
				in.Security.Privileged = true
				in.Security.MaskedPaths = []string{"/proc/kcore"}
				in.Host.DevDir = t.TempDir() // no devices: the walk itself is tested in devices_test
			},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil || s.Linux.Seccomp != nil {
					t.Errorf("masked %v readonly %v seccomp %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Linux.Seccomp)
				}
				if !slices.Equal(s.Process.Capabilities.Bounding, thisVMCaps()) {
					t.Errorf("caps %v", s.Process.Capabilities.Bounding)
				}
				for _, m := range s.Mounts {
					if m.Type == "sysfs" && slices.Contains(m.Options, "ro") {
						t.Errorf("/sys read-only: %v", m.Options)
					}
				}
				if r := s.Linux.Resources.Devices; len(r) != 1 || !r[0].Allow {
					t.Errorf("device rules %+v", r)
				}
			},
		},
		{
			name: "request's masked and read-only paths replace the defaults",
			edit: func(in *Input) {
				in.Security.MaskedPaths = []string{"/proc/kcore"}
				in.Security.ReadonlyPaths = []string{"/proc/sys"}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Equal(s.Linux.MaskedPaths, []string{"/proc/kcore"}) || !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/sys"}) {
					t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
			},
		},
		{
			name: "read-only rootfs makes the pod files read-only",
			edit: func(in *Input) { in.Security.ReadonlyRootfs = true },
			check: func(t *testing.T, s *specs.Spec) {
				if !s.Root.Readonly {
					t.Error("rootfs writable")
				}
				for _, m := range s.Mounts {
					ro := slices.Contains(m.Options, "ro")
					switch m.Destination {
					case "/etc/hostname", "/etc/resolv.conf":
						if !ro {
							t.Errorf("%s writable", m.Destination)
						}
					case "/dev/shm", "/var/lib/app":
						if ro {
							t.Errorf("%s read-only", m.Destination)
						}
					}
				}
			},
		},
		{
			name: "own UTS namespace gets the hostname, tty gets TERM",
			edit: func(in *Input) {
				in.Namespaces.UTS = Namespace{Mode: ModeContainer}
				in.TTY = true
				in.Command = []string{"/bin/sh"}
				in.Args = nil
				in.Image.User = ""
				in.Security.SeccompProfilePath = "unconfined"
				in.Security.Seccomp = nil
				in.OOMScoreAdj = ptr(500)
			},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Hostname != "web-0" || !s.Process.Terminal || !slices.Contains(s.Process.Env, "TERM=xterm") {
					t.Errorf("hostname %q terminal %v env %v", s.Hostname, s.Process.Terminal, s.Process.Env)
				}
				if !slices.Equal(s.Process.Args, []string{"/bin/sh"}) || s.Process.User.UID != 0 || s.Linux.Seccomp != nil || *s.Process.OOMScoreAdj != 500 {
					t.Errorf("args %v user %+v seccomp %v oom %d", s.Process.Args, s.Process.User, s.Linux.Seccomp, *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "host network node: no namespaces but mount and pid",
			edit: func(in *Input) {
				in.Namespaces = Namespaces{Network: Namespace{Mode: ModeNode}, IPC: Namespace{Mode: ModeNode}, UTS: Namespace{Mode: ModeNode}, PID: Namespace{Mode: ModeContainer}}
				in.Host.NoFileLimit = 0
				in.Host.OOMScoreAdjFloor = nil
			},
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Linux.Namespaces) != 2 || s.Process.Rlimits != nil || *s.Process.OOMScoreAdj != -1000 {
					t.Errorf("namespaces %v rlimits %v oom %d", s.Linux.Namespaces, s.Process.Rlimits, *s.Process.OOMScoreAdj)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := f.input()
			in.ImageVolumesDir = filepath.Join(t.TempDir(), "volumes")
			tc.edit(&in)
			s, _, err := Generate(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
			if _, err := json.Marshal(s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		edit func(in *Input)
		want error
	}{
		{"no rootfs", func(in *Input) { in.RootfsPath = "" }, errdefs.ErrInvalidArgument},
		{"no command", func(in *Input) { in.Image.Entrypoint, in.Image.Cmd, in.Args = nil, nil, nil }, errdefs.ErrInvalidArgument},
		{"unknown capability", func(in *Input) { in.Security.Capabilities.Add = []string{"FLY"} }, errdefs.ErrInvalidArgument},
		{"missing user", func(in *Input) { in.Security.RunAsUsername = "mallory" }, errdefs.ErrInvalidArgument},
		{"run as non-root with root", func(in *Input) { in.Image.User = ""; in.Security.RunAsNonRoot = true }, errdefs.ErrInvalidArgument},
		{"missing seccomp file", func(in *Input) {
			in.Security.Seccomp = &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: "/no/such/profile.json"}
		}, errdefs.ErrInvalidArgument},
		{"bad legacy seccomp", func(in *Input) { in.Security.Seccomp = nil; in.Security.SeccompProfilePath = "weird" }, errdefs.ErrInvalidArgument},
		{"apparmor without apparmor", func(in *Input) { in.Security.AppArmor = &SecurityProfile{Type: ProfileRuntimeDefault} }, errdefs.ErrInvalidArgument},
		{"missing mount source", func(in *Input) {
			in.Mounts = append(in.Mounts, volumes.Mount{ContainerPath: "/x", HostPath: "/no/such/dir"})
		}, errdefs.ErrNotFound},
		{"propagation on a private mount", func(in *Input) {
			in.Mounts[0].Propagation = volumes.PropagationBidirectional
			in.Host.MountLookup = func(string) (*mountinfo.Info, error) { return &mountinfo.Info{Mountpoint: "/"}, nil }
		}, errdefs.ErrFailedPrecondition},
		{"pid target without path", func(in *Input) { in.Namespaces.PID = Namespace{Mode: ModeTarget} }, errdefs.ErrInvalidArgument},
		{"bad device", func(in *Input) { in.Devices = []Device{{ContainerPath: "/dev/x", HostPath: "/no/dev"}} }, errdefs.ErrNotFound},
		{"relative working dir", func(in *Input) { in.WorkingDir = "app" }, errdefs.ErrInvalidArgument},
		{"oom_score_adj out of range", func(in *Input) { in.OOMScoreAdj = ptr(-1001) }, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := f.input()
			in.ImageVolumesDir = filepath.Join(t.TempDir(), "volumes")
			tc.edit(&in)
			_, _, err := Generate(t.Context(), in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// A refused request leaves no volume directories behind.
			if _, err := os.Stat(in.ImageVolumesDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("volumes dir created for a refused request: %v", err)
			}
		})
	}
}

// TestGenerateUserNamespace: a container of a pod with its own user namespace joins it by
// path (no mapping in the spec: libcontainer reads the namespace's), its pod files and CRI
// volumes are idmapped bind mounts, and its image VOLUMEs are not (they are seeded from the
// rootfs as the container sees it); a fresh one belongs to the pod's root, not the node's.
func TestGenerateUserNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP-REASON: giving a fresh image VOLUME to the pod's root needs chown (root)")
	}
	f := newFixture(t)
	in := f.input()
	in.Image.Volumes = append(in.Image.Volumes, "/fresh")
	in.Namespaces.User = UserNamespace{Path: "/run/peapod/ns/p1/user", RootUID: 300000, RootGID: 400000}
	s, _, err := Generate(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/run/peapod/ns/p1/user"}) {
		t.Errorf("namespaces %+v: no user namespace joined by path", s.Linux.Namespaces)
	}
	if len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0 {
		t.Errorf("mappings in the spec beside the joined namespace: %+v %+v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	for _, m := range s.Mounts {
		idmap := slices.Contains(m.Options, "idmap")
		switch {
		case m.Type != "bind":
			if idmap {
				t.Errorf("%s (%s) idmapped", m.Destination, m.Type)
			}
		case strings.HasPrefix(m.Source, f.volumesDir):
			if idmap {
				t.Errorf("image VOLUME %s idmapped", m.Destination)
			}
			if m.Destination == "/fresh" {
				var st syscall.Stat_t
				if err := syscall.Stat(m.Source, &st); err != nil || st.Uid != 300000 || st.Gid != 400000 {
					t.Errorf("fresh image VOLUME %s owned by %d:%d (%v), want the pod's root 300000:400000", m.Source, st.Uid, st.Gid, err)
				}
			}
		case !idmap:
			t.Errorf("bind mount %s from %s not idmapped", m.Destination, m.Source)
		}
	}
}
