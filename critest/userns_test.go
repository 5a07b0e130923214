package critest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// usernsHostID is where the tests' pods' ids start on the host: far from any real user's.
const usernsHostID = 3 << 20

// usernsOption is userns_options mode POD mapping container ids [0, 65536) to host ids from
// hostID.
func usernsOption(hostID uint32) *runtimeapi.NamespaceOption {
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: hostID, Length: 65536}}
	return &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}}
}

// requireUserNamespaces skips unless the runtime advertises user namespaces for its default
// handler, as the kubelet and critest decide.
func requireUserNamespaces(t *testing.T, env *framework.Env) {
	t.Helper()
	st, err := env.Runtime.Status(framework.Context(t), false)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	for _, h := range st.GetRuntimeHandlers() {
		if h.GetName() == "" && h.GetFeatures().GetUserNamespaces() {
			return
		}
	}
	t.Skip("SKIP-REASON: the runtime's Status does not advertise user_namespaces for its default handler")
}

// statIDs is "uid:gid" of path on the host.
func statIDs(t *testing.T, path string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}

// TestUserNamespacePod: a pod with userns_options mode POD runs its containers in one user
// namespace of its own, with the mapping asked for. What the kernel shows:
//   - inside, /proc/self/uid_map and gid_map are the mapping; the processes are root inside
//     and the mapped host id outside; the PID namespace's holder (PID 1) is the pod's root
//     too, never the node's;
//   - both containers and the holder share the pod's pinned user namespace, not the node's;
//   - the image's files (idmapped layers) show as root inside;
//   - in a host volume (an idmapped bind mount) a file of host root shows as root and one of
//     host uid 1000 as 1000, and a file written by container root is host root's on the
//     host: the idmapped mount maps the writer's host id (the mapped root) back through the
//     pod's mapping, so the volume keeps host ids;
//   - the writable layer is not idmapped (overlayfs cannot be): a file container root writes
//     in its rootfs is the mapped host id on the host;
//   - removing the pod leaves no pin (user among them), mount, dir or cgroup.
func TestUserNamespacePod(t *testing.T) {
	env := framework.Shared(t)
	requireUserNamespaces(t, env)
	vol := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]int{"hostroot": 0, "u1000": 1000} {
		p := filepath.Join(vol, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, id, id); err != nil {
			t.Fatal(err)
		}
	}
	pod := newTestPod(t, "userns", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: usernsOption(usernsHostID)}
		c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	})
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: usernsOption(usernsHostID)}
	sc.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	withVol := sleeper("with-volume", framework.ImageBusybox, sc)
	withVol.Mounts = []*runtimeapi.Mount{{ContainerPath: "/vol", HostPath: vol}}
	a := pod.run(t, withVol)
	b := pod.run(t, sleeper("other", framework.ImageBusybox, sc))

	t.Run("mapping inside", func(t *testing.T) {
		for _, f := range []string{"uid_map", "gid_map"} {
			if got := strings.Join(strings.Fields(pod.sh(t, a, "cat /proc/self/"+f)), " "); got != fmt.Sprintf("0 %d 65536", usernsHostID) {
				t.Errorf("%s inside = %q, want 0 %d 65536", f, got, usernsHostID)
			}
		}
		if got := pod.sh(t, a, "id -u; id -g"); got != "0\n0" {
			t.Errorf("id inside = %q, want root", got)
		}
		st, err := framework.ProcessStatus(pod.pid(t, a))
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.Itoa(usernsHostID); strings.Fields(st["Uid"])[0] != want || strings.Fields(st["Gid"])[0] != want {
			t.Errorf("container init on the host: Uid %q Gid %q, want %s", st["Uid"], st["Gid"], want)
		}
		// ContainerStatus reports who the process is in its namespace, as the kubelet shows it.
		if u := pod.status(t, a).GetUser().GetLinux(); u.GetUid() != 0 || u.GetGid() != 0 {
			t.Errorf("ContainerStatus user %v, want uid 0 gid 0 (the pod's root, not the host ids)", u)
		}
		// The PID namespace's holder: root of the pod's namespace (0 inside), not an
		// unmapped id (65534 inside), which the node's root would be.
		if got := pod.sh(t, a, "awk '/^Uid:/{print $2}' /proc/1/status"); got != "0" {
			t.Errorf("PID 1 (the holder) runs as uid %q inside, want 0", got)
		}
	})
	t.Run("status", func(t *testing.T) {
		st, err := pod.rt.PodSandboxStatus(framework.Context(t), pod.id, false)
		if err != nil {
			t.Fatal(err)
		}
		u := st.GetStatus().GetLinux().GetNamespaces().GetOptions().GetUsernsOptions()
		if u.GetMode() != runtimeapi.NamespaceMode_POD || len(u.GetUids()) != 1 || u.GetUids()[0].GetHostId() != usernsHostID || len(u.GetGids()) != 1 {
			t.Errorf("PodSandboxStatus userns_options %v, want POD with the mapping", u)
		}
	})
	t.Run("one user namespace per pod", func(t *testing.T) {
		na, nb := nsLink(t, pod.pid(t, a), "user"), nsLink(t, pod.pid(t, b), "user")
		if na != nb {
			t.Errorf("containers in user namespaces %s and %s, want one", na, nb)
		}
		if host := nsLink(t, os.Getpid(), "user"); na == host {
			t.Errorf("containers share the node's user namespace %s", host)
		}
		if pin := pod.info(t).UserNSPath; pod.daemon != nil {
			if pin == "" {
				t.Fatal("the pod's verbose info names no user namespace pin")
			}
			if got := pinnedNS(t, "user", pin); got != na {
				t.Errorf("pinned user namespace %s, containers in %s", got, na)
			}
			holder := pidNSInit(t, nsLink(t, pod.pid(t, a), "pid"))
			if holder == 0 {
				t.Fatal("no process is PID 1 of the containers' PID namespace")
			}
			if got := nsLink(t, holder, "user"); got != na {
				t.Errorf("PID 1 (the holder, pid %d) in user namespace %s, containers in %s", holder, got, na)
			}
		}
	})
	t.Run("image files", func(t *testing.T) {
		if got := pod.sh(t, a, "stat -c %u:%g /bin/busybox /etc"); got != "0:0\n0:0" {
			t.Errorf("image files inside: %q, want root's", got)
		}
	})
	t.Run("volume keeps host ids", func(t *testing.T) {
		if got := pod.sh(t, a, "stat -c %n=%u:%g /vol/hostroot /vol/u1000"); got != "/vol/hostroot=0:0\n/vol/u1000=1000:1000" {
			t.Errorf("host files inside: %q", got)
		}
		pod.sh(t, a, "echo hi > /vol/written && chown 1000:1000 /vol/hostroot")
		if got := statIDs(t, filepath.Join(vol, "written")); got != "0:0" {
			t.Errorf("file written by container root: %s on the host, want 0:0 (idmapped back)", got)
		}
		if got := statIDs(t, filepath.Join(vol, "hostroot")); got != "1000:1000" {
			t.Errorf("file chowned to 1000 inside: %s on the host, want 1000:1000", got)
		}
		if mi := pod.sh(t, a, "grep ' /vol ' /proc/self/mountinfo"); !strings.Contains(mi, "idmapped") {
			t.Errorf("/vol is not an idmapped mount: %s", mi)
		}
	})
	t.Run("image volumes", func(t *testing.T) {
		// VOLUMEs are seeded from the rootfs as the container sees it (not idmapped mounts):
		// one from the image keeps its owners as they show inside, a fresh one is root's.
		const ref = "registry.k8s.io/e2e-test-images/peapod-userns-volumes:1.0"
		img, err := framework.BuildImage(framework.ImageSpec{Busybox: true, Config: v1.Config{
			Volumes: map[string]struct{}{"/bin": {}, "/fresh": {}}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := pod.env.Registry.Push(framework.Context(t), ref, img); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		id := pod.run(t, sleeper("image-volumes", ref, sc))
		if got := pod.sh(t, id, "stat -c %u:%g /bin /bin/busybox /fresh; touch /bin/x /fresh/x && echo ok"); got != "0:0\n0:0\n0:0\nok" {
			t.Errorf("image VOLUMEs inside: %q, want root's and writable", got)
		}
		if err := pod.rt.StopContainer(framework.Context(t), id, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("image volume", func(t *testing.T) {
		// Mount.image: the image's layers idmapped like the rootfs's, read-only.
		if pod.daemon == nil {
			t.Skip("SKIP-REASON: image volumes are checked on a peapod this suite started")
		}
		pod.pull(t, framework.ImageVolumeContent)
		cfg := sleeper("image-volume", framework.ImageBusybox, sc)
		cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/img", Image: &runtimeapi.ImageSpec{Image: framework.ImageVolumeContent}}}
		id := pod.run(t, cfg)
		if got := pod.sh(t, id, "cat /img/data/hello.txt; stat -c %u:%g /img/data/hello.txt"); got != framework.ImageVolumeHello+"\n0:0" {
			t.Errorf("image volume inside: %q, want its file, root's", got)
		}
		if r := pod.exec(t, id, "touch", "/img/data/x"); r.code == 0 {
			t.Errorf("an image volume was writable")
		}
		if err := pod.rt.StopContainer(framework.Context(t), id, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("writable layer", func(t *testing.T) {
		pod.sh(t, a, "echo hi > /written && mkdir /made")
		if pod.daemon == nil {
			t.Skip("SKIP-REASON: the container's writable layer is only known for a peapod this suite started")
		}
		upper := filepath.Join(pod.ctrInfo(t, a).Dir, "upper")
		want := fmt.Sprintf("%d:%d", usernsHostID, usernsHostID)
		for _, f := range []string{"written", "made", "."} {
			if got := statIDs(t, filepath.Join(upper, f)); got != want {
				t.Errorf("%s in the writable layer: %s on the host, want the mapped root %s", f, got, want)
			}
		}
	})

	tr := tracePod(t, pod.rt, pod.id)
	pin := pod.info(t).UserNSPath
	ctx := framework.Context(t)
	for _, id := range []string{a, b} {
		if err := pod.rt.StopContainer(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := pod.rt.StopPodSandbox(ctx, pod.id); err != nil {
		t.Fatal(err)
	}
	if err := pod.rt.RemovePodSandbox(ctx, pod.id); err != nil {
		t.Fatal(err)
	}
	checkPodsGone(t, env, tr)
	if pin != "" {
		if _, err := os.Lstat(pin); !os.IsNotExist(err) {
			t.Errorf("user namespace pin %s left (%v)", pin, err)
		}
	}
}

// TestUserNamespaceRefused: userns_options that the CRI forbids are InvalidArgument at
// RunPodSandbox and leave no pod; a container cannot ask for a user namespace other than its
// pod's.
func TestUserNamespaceRefused(t *testing.T) {
	env := framework.Shared(t)
	requireUserNamespaces(t, env)
	ctx := framework.Context(t)
	one := func(c, h, n uint32) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: c, HostId: h, Length: n}}
	}
	label := podLabel(t)
	t.Cleanup(func() { removeLabelled(t, env.Runtime, label) })
	for name, u := range map[string]*runtimeapi.UserNamespace{
		"two mappings":  {Mode: runtimeapi.NamespaceMode_POD, Uids: append(one(0, 1000, 100), one(100, 5000, 100)...), Gids: one(0, 1000, 100)},
		"root unmapped": {Mode: runtimeapi.NamespaceMode_POD, Uids: one(1, 1000, 100), Gids: one(1, 1000, 100)},
		"no mapping":    {Mode: runtimeapi.NamespaceMode_POD},
		"container":     {Mode: runtimeapi.NamespaceMode_CONTAINER},
		"target":        {Mode: runtimeapi.NamespaceMode_TARGET},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := podConfig(t, "userns-refused", label)
			cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: u}}}
			id, err := env.Runtime.RunPodSandbox(ctx, cfg, "")
			if err == nil {
				_ = env.Runtime.StopPodSandbox(ctx, id)
				_ = env.Runtime.RemovePodSandbox(ctx, id)
			}
			wantCode(t, "RunPodSandbox", err, codes.InvalidArgument)
		})
	}
	pods, err := env.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{testLabelKey: label}})
	if err != nil || len(pods) != 0 {
		t.Errorf("refused pods left: %d, %v", len(pods), err)
	}

	t.Run("container asks for another", func(t *testing.T) {
		plain := newTestPod(t, "userns-plain", nil)
		plain.refused(t, sleeper("pod-userns", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: usernsOption(usernsHostID)}), codes.InvalidArgument, "uses the node's user namespace")
		own := newTestPod(t, "userns-own", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: usernsOption(usernsHostID)}
		})
		own.refused(t, sleeper("other-mapping", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: usernsOption(usernsHostID + 65536)}), codes.InvalidArgument, "mappings differ")
	})
}

// pidNSInit is the host pid of PID 1 of the PID namespace pidns ("pid:[ino]"), 0 if none.
func pidNSInit(t *testing.T, pidns string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || l != pidns {
			continue
		}
		st, err := framework.ProcessStatus(pid)
		if err != nil {
			continue
		}
		if f := strings.Fields(st["NSpid"]); len(f) > 1 && f[len(f)-1] == "1" {
			return pid
		}
	}
	return 0
}

// TestUserNamespacePidHolderKilled: in a pod with its own user namespace, the PID namespace's
// PID 1 is a child of the holder process the shim watches (only a single-threaded process can
// join the user namespace and make the PID namespace inside it). Killing that watcher takes
// PID 1 with it (its parent-death signal), so the kernel kills the pod's processes, as with a
// plain holder: the containers exit 137, a new container is refused, and the pod is removed
// with nothing left.
func TestUserNamespacePidHolderKilled(t *testing.T) {
	framework.RequirePeapod(t)
	env := framework.Shared(t)
	requireUserNamespaces(t, env)
	pod := newTestPod(t, "userns-holder", func(c *runtimeapi.PodSandboxConfig) {
		ns := usernsOption(usernsHostID)
		ns.Pid = runtimeapi.NamespaceMode_POD
		c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns}
	})
	ids := []string{pod.run(t, sleeper("a", framework.ImageBusybox, nil)), pod.run(t, sleeper("b", framework.ImageBusybox, nil))}
	tr := tracePod(t, pod.rt, pod.id)
	shim := shimPid(t, pod.id)
	watcher := holderPid(t, shim)
	pid1 := pidNSInit(t, nsLink(t, pod.pid(t, ids[0]), "pid"))
	if pid1 == 0 || pid1 == watcher {
		t.Fatalf("PID 1 of the pod's namespace is %d, the watcher %d: want the watcher's child", pid1, watcher)
	}
	if err := syscall.Kill(watcher, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	processGone(t, watcher, 5*time.Second)
	processGone(t, pid1, 5*time.Second)
	for _, id := range ids {
		st := pod.waitExited(t, id, 10*time.Second)
		if st.ExitCode != 137 || st.Reason != "Error" {
			t.Errorf("container %s after the holder was killed: exit %d reason %q message %q, want 137 Error", id, st.ExitCode, st.Reason, st.Message)
		}
	}
	_, err := pod.create(t, sleeper("next", framework.ImageBusybox, nil))
	wantCode(t, "CreateContainer in a pod whose PID namespace is gone", err, codes.FailedPrecondition, "PID namespace")
	removePodClean(t, pod, tr)
	processGone(t, shim, 5*time.Second)
}

// TestUserNamespaceDaemonRestart: a user-namespaced pod survives a kill -9 of the daemon: its
// running container keeps its namespace, a create the kill interrupted is finished (the
// rootfs remounted with idmapped layers if need be) and the container starts, and a new
// container after the restart joins the same user namespace.
func TestUserNamespaceDaemonRestart(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	c := framework.MustConnect(t, d.Endpoint())
	requireUserNamespaces(t, &framework.Env{Runtime: c.Runtime})
	p := &testPod{env: framework.Shared(t), rt: c.Runtime, img: c.Image, daemon: d}
	pod := newTestPodOn(t, p, "userns-restart", func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: usernsOption(usernsHostID)}
	})
	running := pod.run(t, sleeper("running", framework.ImageBusybox, nil))
	userns := nsLink(t, pod.pid(t, running), "user")
	pending, err := pod.create(t, sleeper("pending", framework.ImageBusybox, nil))
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	killAndRestart(t, d, pod, pending)
	startableAfterRestart(t, pod, pending)
	after := pod.run(t, sleeper("after", framework.ImageBusybox, nil))
	for _, id := range []string{running, pending, after} {
		if got := nsLink(t, pod.pid(t, id), "user"); got != userns {
			t.Errorf("container %s in user namespace %s after the restart, want the pod's %s", id, got, userns)
		}
		if got := pod.sh(t, id, "stat -c %u /bin/busybox; id -u"); got != "0\n0" {
			t.Errorf("container %s after the restart: image file owner and uid %q, want root's", id, got)
		}
	}
}
