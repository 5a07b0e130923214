package critest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestContainerCreatePreconditions: a pod that is not ready, an unknown pod and an image that
// was not pulled are refused; a taken name is AlreadyExists naming its holder unless the
// request is the same (a kubelet retry), which gets the same container.
func TestContainerCreatePreconditions(t *testing.T) {
	pod := newTestPod(t, "precond", nil)
	ctx := framework.Context(t)
	pod.pull(t, framework.ImageBusybox)

	t.Run("pod not ready", func(t *testing.T) {
		stopped := newTestPod(t, "precond-stopped", nil)
		if err := stopped.rt.StopPodSandbox(ctx, stopped.id); err != nil {
			t.Fatalf("StopPodSandbox: %v", err)
		}
		_, err := stopped.rt.CreateContainer(ctx, stopped.id, sleeper("c", framework.ImageBusybox, nil), stopped.cfg)
		wantCode(t, "create in a stopped pod", err, codes.FailedPrecondition, stopped.id)
	})
	t.Run("unknown pod", func(t *testing.T) {
		_, err := pod.rt.CreateContainer(ctx, "0123456789abcdef-no-such-pod", sleeper("c", framework.ImageBusybox, nil), pod.cfg)
		if c := status.Code(err); c != codes.NotFound && c != codes.FailedPrecondition {
			t.Errorf("create in an unknown pod: %v (code %v), want NotFound or FailedPrecondition", err, c)
		}
	})
	t.Run("image not present", func(t *testing.T) {
		const image = "registry.k8s.io/e2e-test-images/never-pulled:0.0"
		_, err := pod.rt.CreateContainer(ctx, pod.id, sleeper("c", image, nil), pod.cfg)
		wantCode(t, "create from an image not pulled", err, codes.NotFound, image)
	})
	t.Run("name reservation", func(t *testing.T) {
		cfg := sleeper("named", framework.ImageBusybox, nil)
		first, err := pod.create(t, cfg)
		if err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		again, err := pod.create(t, cfg)
		if err != nil || again != first {
			t.Errorf("retried CreateContainer: id %q, %v; want the first container %s", again, err, first)
		}
		// Concurrent retries (a kubelet that timed out and retried at once) share one create.
		retry := sleeper("concurrent", framework.ImageBusybox, nil)
		ids := make([]string, 4)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				var err error
				if ids[i], err = pod.rt.CreateContainer(ctx, pod.id, retry, pod.cfg); err != nil {
					t.Errorf("concurrent CreateContainer %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		for _, id := range ids[1:] {
			if id != ids[0] {
				t.Errorf("concurrent identical creates made %v, want one container", ids)
				break
			}
		}
		if err := pod.rt.RemoveContainer(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
		other := sleeper("named", framework.ImageBusybox, nil)
		other.Command = []string{"sleep", "7"}
		_, err = pod.create(t, other)
		wantCode(t, "create under a taken name", err, codes.AlreadyExists, first)
		attempt := sleeper("named", framework.ImageBusybox, nil)
		attempt.Metadata.Attempt = 1
		if id, err := pod.create(t, attempt); err != nil || id == first {
			t.Errorf("attempt 1 under the same name: %q, %v; want a new container", id, err)
		}
		ctrs, err := pod.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: pod.id})
		if err != nil || len(ctrs) != 2 {
			t.Errorf("ListContainers: %d containers, %v; want 2", len(ctrs), err)
		}
		// The name is free again once its holder is removed.
		if err := pod.rt.RemoveContainer(ctx, first); err != nil {
			t.Fatal(err)
		}
		if id, err := pod.create(t, other); err != nil || id == first {
			t.Errorf("create under a freed name: %q, %v", id, err)
		}
	})
}

// TestContainerProcess: command and args merge with the image's entrypoint and cmd exactly as
// Kubernetes defines it; env is the image's overridden by the config's; the working dir comes
// from the config (created when missing) or the image; tty output goes to stdout; stdin is
// a pipe only when asked for.
func TestContainerProcess(t *testing.T) {
	pod := newTestPod(t, "process", nil)
	pod.pull(t, framework.ImageVolume)
	ctx := framework.Context(t)
	vol := func(name string, command, args []string, env ...string) *runtimeapi.ContainerConfig {
		cfg := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: framework.ImageVolume},
			Command:  command, Args: args, LogPath: name + ".log",
		}
		for i := 0; i+1 < len(env); i += 2 {
			cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: env[i], Value: []byte(env[i+1])})
		}
		return cfg
	}
	cases := []struct {
		cfg  *runtimeapi.ContainerConfig
		want []string // stdout lines
	}{
		{vol("image-defaults", nil, nil), []string{"volume image says: " + framework.ImageVolumeSeed}},
		{vol("args-only", nil, []string{"echo args $0 $PEAPOD_IMAGE; pwd", "zero"}), []string{"args zero volume", framework.ImageVolumePath}},
		{vol("command-only", []string{"sh", "-c", "echo command $# $PEAPOD_IMAGE"}, nil), []string{"command 0 volume"}},
		{vol("command-args", []string{"echo"}, []string{"a", "b c"}), []string{"a b c"}},
		{vol("env-override", nil, []string{"echo $PEAPOD_IMAGE $EXTRA"}, "PEAPOD_IMAGE", "config", "EXTRA", "x=y"), []string{"config x=y"}},
		{func() *runtimeapi.ContainerConfig {
			c := vol("workdir", nil, []string{"pwd; ls -d /made/by/runtime"})
			c.WorkingDir = "/made/by/runtime"
			return c
		}(), []string{"/made/by/runtime", "/made/by/runtime"}},
		{func() *runtimeapi.ContainerConfig {
			c := vol("tty", nil, []string{"[ -t 1 ] && echo stdout-is-a-tty; echo err >&2"})
			c.Tty = true
			return c
		}(), []string{"stdout-is-a-tty", "err"}},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		ids[i] = pod.run(t, tc.cfg)
	}
	for i, tc := range cases {
		t.Run(tc.cfg.Metadata.Name, func(t *testing.T) {
			st := pod.waitExited(t, ids[i], 10*time.Second)
			if st.ExitCode != 0 || st.Reason != "Completed" {
				t.Errorf("exit %d reason %q message %q, want 0 Completed", st.ExitCode, st.Reason, st.Message)
			}
			lines := waitLog(t, pod.logPath(tc.cfg), 5*time.Second, func(l []logLine) bool { return len(l) >= len(tc.want) })
			var got []string
			for _, l := range lines {
				if l.stream != "stdout" && tc.cfg.Tty {
					t.Errorf("tty output on %s: %q", l.stream, l.text)
				}
				got = append(got, strings.TrimSuffix(l.text, "\r"))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("output %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("stdin", func(t *testing.T) {
		for _, stdin := range []bool{false, true} {
			cfg := sleeper("stdin-"+map[bool]string{false: "closed", true: "open"}[stdin], framework.ImageBusybox, nil)
			cfg.Stdin = stdin
			id := pod.run(t, cfg)
			fd0, err := os.Readlink(filepathJoinProc(pod.pid(t, id), "fd/0"))
			if err != nil {
				t.Fatal(err)
			}
			if isPipe := strings.HasPrefix(fd0, "pipe:"); isPipe != stdin {
				t.Errorf("stdin=%v: fd 0 is %s", stdin, fd0)
			}
			_ = pod.rt.RemoveContainer(ctx, id)
		}
	})
}

func filepathJoinProc(pid int, rel string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), rel)
}

// sharedDir makes a directory that is its own shared mount (as a kubelet's root is on a
// systemd node), for propagation tests, and removes it in cleanup.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		t.Fatalf("make %s shared: %v", dir, err)
	}
	return dir
}

// TestContainerMounts: CRI mounts are bind mounts with the asked read-only flag and
// propagation (checked in the container's mountinfo), symlinked host paths are followed, a
// missing host path is refused by name, image VOLUMEs are per-container copies of the image's
// content, and the pod's hostname, resolv.conf, hosts and /dev/shm are mounted unless the
// container brings its own.
func TestContainerMounts(t *testing.T) {
	framework.RequirePeapod(t)
	pod := newTestPod(t, "mounts", nil)
	ctx := framework.Context(t)
	pod.pull(t, framework.ImageBusybox)
	pod.pull(t, framework.ImageVolume)

	shared := sharedDir(t)
	dirs := map[string]string{}
	for _, n := range []string{"ro", "rw", "slave", "bidi", "private", "rro", "target"} {
		d := filepath.Join(shared, n)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "from-host"), []byte(n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs[n] = d
	}
	// A read-only-recursive mount must make the host's submounts read-only too.
	rroSub := filepath.Join(dirs["rro"], "sub")
	if err := os.Mkdir(rroSub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", rroSub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(rroSub, unix.MNT_DETACH) })
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dirs["target"], link); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("10.1.2.3 from-kubelet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := func(ctr, host string, ro bool, prop runtimeapi.MountPropagation) *runtimeapi.Mount {
		return &runtimeapi.Mount{ContainerPath: ctr, HostPath: host, Readonly: ro, Propagation: prop}
	}
	cfg := sleeper("binds", framework.ImageBusybox, nil)
	cfg.Mounts = []*runtimeapi.Mount{
		m("/ro", dirs["ro"], true, runtimeapi.MountPropagation_PROPAGATION_PRIVATE),
		m("/rw", dirs["rw"], false, runtimeapi.MountPropagation_PROPAGATION_PRIVATE),
		m("/slave", dirs["slave"], false, runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER),
		m("/bidi", dirs["bidi"], false, runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL),
		m("/private", dirs["private"], false, runtimeapi.MountPropagation_PROPAGATION_PRIVATE),
		{ContainerPath: "/rro", HostPath: dirs["rro"], Readonly: true, RecursiveReadOnly: true},
		m("/link", link, true, runtimeapi.MountPropagation_PROPAGATION_PRIVATE),
		m("/etc/hosts", hosts, false, runtimeapi.MountPropagation_PROPAGATION_PRIVATE),
	}
	id := pod.run(t, cfg)
	pid := pod.pid(t, id)
	mt := mountTable(t, pid)

	t.Run("read-only and propagation", func(t *testing.T) {
		// The host's peer group of the shared dir: an rshared bind is its peer, an rslave one
		// its slave, a private one neither (runc may give the container's own mounts new
		// peer groups of their own when the root is made rshared for a bidirectional bind).
		hostGroup := ""
		for f := range strings.FieldsSeq(mountTable(t, os.Getpid())[shared].optional) {
			if g, ok := strings.CutPrefix(f, "shared:"); ok {
				hostGroup = g
			}
		}
		if hostGroup == "" {
			t.Fatalf("%s is not shared on the host", shared)
		}
		for _, tc := range []struct {
			at, ro, tag string // tag: "shared:" or "master:" with the host's group, "" for neither
		}{
			{"/ro", "ro", ""}, {"/rw", "rw", ""}, {"/slave", "rw", "master:"}, {"/bidi", "rw", "shared:"},
			{"/private", "rw", ""}, {"/rro", "ro", ""}, {"/rro/sub", "ro", ""}, {"/link", "ro", ""},
		} {
			e, ok := mt[tc.at]
			if !ok {
				t.Errorf("%s: not a mount in the container", tc.at)
				continue
			}
			if !hasOpt(e.options, tc.ro) {
				t.Errorf("%s: mount options %q, want %s", tc.at, e.options, tc.ro)
			}
			opt := " " + e.optional + " "
			linked := strings.Contains(opt, " shared:"+hostGroup+" ") || strings.Contains(opt, " master:"+hostGroup+" ")
			switch {
			case tc.tag == "" && linked:
				t.Errorf("%s: propagation %q is linked to the host's peer group %s, want private", tc.at, e.optional, hostGroup)
			case tc.tag != "" && !strings.Contains(opt, " "+tc.tag+hostGroup+" "):
				t.Errorf("%s: propagation %q, want %s%s", tc.at, e.optional, tc.tag, hostGroup)
			}
		}
		if got := pod.sh(t, id, "cat /link/from-host; touch /ro/x 2>/dev/null && echo writable; touch /rro/sub/x 2>/dev/null && echo sub-writable; touch /rw/from-ctr && echo ok"); got != "target\nok" {
			t.Errorf("inside: %q", got)
		}
		if _, err := os.Stat(filepath.Join(dirs["rw"], "from-ctr")); err != nil {
			t.Errorf("write through the rw bind: %v", err)
		}
		// A mount made on the host afterwards reaches rslave and rshared binds only.
		for _, n := range []string{"slave", "bidi", "private"} {
			sub := filepath.Join(dirs[n], "later")
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
		}
		mt := mountTable(t, pid)
		for n, want := range map[string]bool{"slave": true, "bidi": true, "private": false} {
			if _, got := mt["/"+n+"/later"]; got != want {
				t.Errorf("host mount under %s seen in the container: %v, want %v", n, got, want)
			}
		}
	})

	t.Run("recursive read-only", func(t *testing.T) {
		// The tmpfs below the rro bind is read-only in the container (mount_setattr with
		// AT_RECURSIVE), not merely hidden: a write fails with EROFS.
		if got := pod.sh(t, id, "touch /rro/sub/x 2>&1; touch /rro/x 2>&1; true"); got != "touch: /rro/sub/x: Read-only file system\ntouch: /rro/x: Read-only file system" {
			t.Errorf("writes below the rro bind: %q, want EROFS for both", got)
		}
		prop := runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		for name, mount := range map[string]*runtimeapi.Mount{
			"rro-writable": {ContainerPath: "/rro", HostPath: dirs["rro"], RecursiveReadOnly: true},
			"rro-slave":    {ContainerPath: "/rro", HostPath: dirs["slave"], Readonly: true, RecursiveReadOnly: true, Propagation: prop},
		} {
			cfg := sleeper(name, framework.ImageBusybox, nil)
			cfg.Mounts = []*runtimeapi.Mount{mount}
			pod.refused(t, cfg, codes.InvalidArgument, "recursive read-only")
		}
	})

	t.Run("rootfs is an overlay", func(t *testing.T) {
		root := mt["/"]
		info := pod.ctrInfo(t, id)
		if root.fsType != "overlay" || !strings.Contains(root.superOptions, "upperdir="+info.Dir) || !strings.Contains(root.superOptions, "lowerdir=") {
			t.Errorf("container / is %s %q, want an overlay with its upper dir under %s", root.fsType, root.superOptions, info.Dir)
		}
		pod.sh(t, id, "echo new > /etc/written-by-ctr")
		if b, err := os.ReadFile(filepath.Join(info.Dir, "upper/etc/written-by-ctr")); err != nil || string(b) != "new\n" {
			t.Errorf("write to / did not land in the container's upper dir: %q %v", b, err)
		}
	})

	t.Run("pod files", func(t *testing.T) {
		if got := pod.sh(t, id, "cat /etc/hosts"); got != "10.1.2.3 from-kubelet" {
			t.Errorf("/etc/hosts with the kubelet's mount: %q", got)
		}
		if got := pod.sh(t, id, "cat /etc/hostname; hostname"); got != "mounts\nmounts" {
			t.Errorf("hostname: %q", got)
		}
		for _, at := range []string{"/etc/hostname", "/etc/resolv.conf", "/dev/shm"} {
			if e, ok := mt[at]; !ok {
				t.Errorf("%s is not mounted", at)
			} else if at == "/dev/shm" && e.fsType != "tmpfs" {
				t.Errorf("/dev/shm is %s", e.fsType)
			}
		}
		own := filepath.Join(t.TempDir(), "resolv.conf")
		if err := os.WriteFile(own, []byte("nameserver 10.9.9.9\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c2 := sleeper("own-resolv", framework.ImageBusybox, nil)
		c2.Mounts = []*runtimeapi.Mount{m("/etc/resolv.conf", own, true, runtimeapi.MountPropagation_PROPAGATION_PRIVATE)}
		id2 := pod.run(t, c2)
		if got := pod.sh(t, id2, "cat /etc/resolv.conf"); got != "nameserver 10.9.9.9" {
			t.Errorf("own resolv.conf: %q", got)
		}
		if got := pod.sh(t, id2, "cat /etc/hosts"); !strings.Contains(got, "mounts") {
			t.Errorf("peapod's /etc/hosts without a kubelet mount: %q, want the pod's hostname in it", got)
		}
		// /dev/shm is the pod's: shared between its containers.
		pod.sh(t, id, "echo shm > /dev/shm/from-first")
		if got := pod.sh(t, id2, "cat /dev/shm/from-first"); got != "shm" {
			t.Errorf("/dev/shm not shared: %q", got)
		}
	})

	t.Run("image volume", func(t *testing.T) {
		var ids []string
		for _, n := range []string{"vol-a", "vol-b"} {
			c := sleeper(n, framework.ImageVolume, nil)
			ids = append(ids, pod.run(t, c))
		}
		if got := pod.sh(t, ids[0], "cat "+framework.ImageVolumeSeedFile+"; echo changed > "+framework.ImageVolumeSeedFile); got != framework.ImageVolumeSeed {
			t.Errorf("seeded volume: %q", got)
		}
		if got := pod.sh(t, ids[1], "cat "+framework.ImageVolumeSeedFile); got != framework.ImageVolumeSeed {
			t.Errorf("second container's volume: %q, want its own seeded copy", got)
		}
		e, ok := mountTable(t, pod.pid(t, ids[0]))[framework.ImageVolumePath]
		if !ok {
			t.Errorf("%s is not a mount", framework.ImageVolumePath)
		} else if e.fsType == "overlay" {
			t.Errorf("%s is on the overlay, want a bind of a per-container dir", framework.ImageVolumePath)
		}
	})

	t.Run("missing host path", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "no-such-dir")
		c := sleeper("missing", framework.ImageBusybox, nil)
		c.Mounts = []*runtimeapi.Mount{m("/x", missing, false, runtimeapi.MountPropagation_PROPAGATION_PRIVATE)}
		_, err := pod.create(t, c)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("mount of a missing host path: %v, want an error naming %s", err, missing)
		}
	})
	_ = ctx
}

// TestContainerNamespaces: containers join the pod's network, IPC and UTS namespaces (the ones
// peapod pinned), get their own mount namespace and, by their PID namespace option, their own
// PID namespace, the pod's, the node's or another container's; their cgroup is below the pod's.
func TestContainerNamespaces(t *testing.T) {
	framework.RequirePeapod(t)
	ctx := framework.Context(t)
	self := os.Getpid()
	withPid := func(mode runtimeapi.NamespaceMode, target string) *runtimeapi.LinuxContainerSecurityContext {
		return &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: mode, TargetId: target}}
	}

	t.Run("pod namespaces", func(t *testing.T) {
		pod := newTestPod(t, "ns", nil)
		st, err := pod.rt.PodSandboxStatus(ctx, pod.id, true)
		if err != nil {
			t.Fatal(err)
		}
		var pins struct {
			Net string `json:"netns_path"`
			IPC string `json:"ipc_path"`
			UTS string `json:"uts_path"`
		}
		if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &pins); err != nil {
			t.Fatal(err)
		}
		a := pod.run(t, sleeper("a", framework.ImageBusybox, withPid(runtimeapi.NamespaceMode_CONTAINER, "")))
		b := pod.run(t, sleeper("b", framework.ImageBusybox, withPid(runtimeapi.NamespaceMode_CONTAINER, "")))
		c := pod.run(t, sleeper("c", framework.ImageBusybox, withPid(runtimeapi.NamespaceMode_TARGET, a)))
		pa, pb, pc := pod.pid(t, a), pod.pid(t, b), pod.pid(t, c)
		for _, ns := range []struct{ kind, pin string }{{"net", pins.Net}, {"ipc", pins.IPC}, {"uts", pins.UTS}} {
			want := pinnedNS(t, ns.kind, ns.pin)
			for _, p := range []int{pa, pb, pc} {
				if got := nsLink(t, p, ns.kind); got != want {
					t.Errorf("%s namespace of pid %d is %s, want the pod's %s", ns.kind, p, got, want)
				}
			}
			if nsLink(t, self, ns.kind) == want {
				t.Errorf("the pod's %s namespace is the node's", ns.kind)
			}
		}
		if ma, mb := nsLink(t, pa, "mnt"), nsLink(t, pb, "mnt"); ma == mb || ma == nsLink(t, self, "mnt") {
			t.Errorf("mount namespaces not private: a %s b %s", ma, mb)
		}
		if na, nb := nsLink(t, pa, "pid"), nsLink(t, pb, "pid"); na == nb || na == nsLink(t, self, "pid") {
			t.Errorf("pid CONTAINER: a %s b %s", na, nb)
		}
		if nsLink(t, pc, "pid") != nsLink(t, pa, "pid") {
			t.Errorf("pid TARGET: %s, want a's %s", nsLink(t, pc, "pid"), nsLink(t, pa, "pid"))
		}
		parent := pod.info(t).CgroupParent
		raw, err := os.ReadFile(filepathJoinProc(pa, "cgroup"))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(raw)) {
			if strings.Contains(line, ":memory:") && !strings.Contains(line, parent+"/") {
				t.Errorf("memory cgroup %q is not below the pod's %s", strings.TrimSpace(line), parent)
			}
		}
	})

	t.Run("pid POD", func(t *testing.T) {
		pod := newTestPod(t, "ns-pod-pid", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}}
		})
		a := pod.run(t, sleeper("a", framework.ImageBusybox, withPid(runtimeapi.NamespaceMode_POD, "")))
		b := pod.run(t, sleeper("b", framework.ImageBusybox, withPid(runtimeapi.NamespaceMode_POD, "")))
		na, nb := nsLink(t, pod.pid(t, a), "pid"), nsLink(t, pod.pid(t, b), "pid")
		if na != nb || na == nsLink(t, self, "pid") {
			t.Errorf("pid POD: a %s b %s node %s", na, nb, nsLink(t, self, "pid"))
		}
		if got := pod.sh(t, a, "ps -o pid,comm | grep -c sleep"); got != "2" {
			t.Errorf("a sees %s sleep processes, want both containers'", got)
		}
	})

	t.Run("pid and network NODE", func(t *testing.T) {
		pod := newTestPod(t, "ns-node", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				Pid: runtimeapi.NamespaceMode_NODE, Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}}
		})
		a := pod.run(t, sleeper("a", framework.ImageBusybox, withPid(runtimeapi.NamespaceMode_NODE, "")))
		pa := pod.pid(t, a)
		for _, ns := range []string{"pid", "net", "ipc", "uts"} {
			if got, want := nsLink(t, pa, ns), nsLink(t, self, ns); got != want {
				t.Errorf("%s namespace %s, want the node's %s", ns, got, want)
			}
		}
		if nsLink(t, pa, "mnt") == nsLink(t, self, "mnt") {
			t.Error("mount namespace is the node's")
		}
	})
}
