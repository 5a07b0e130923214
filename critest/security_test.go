package critest

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// testPod is one pod shared by a test's subtests.
type testPod struct {
	env *framework.Env
	// rt and img are the clients of the runtime the pod runs on; daemon is nil unless this
	// suite started that runtime.
	rt     internalapi.RuntimeService
	img    internalapi.ImageManagerService
	daemon *framework.Daemon
	id     string
	cfg    *runtimeapi.PodSandboxConfig
}

// newTestPod runs a pod on the suite's runtime (configure may change its config first) and
// removes it in cleanup.
func newTestPod(t *testing.T, name string, configure func(*runtimeapi.PodSandboxConfig)) *testPod {
	t.Helper()
	env := framework.Shared(t)
	return newTestPodOn(t, &testPod{env: env, rt: env.Runtime, img: env.Image(t), daemon: env.Daemon}, name, configure)
}

// newTestPodOn runs a pod on p's runtime.
func newTestPodOn(t *testing.T, p *testPod, name string, configure func(*runtimeapi.PodSandboxConfig)) *testPod {
	t.Helper()
	ctx := framework.Context(t)
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "critest",
			Uid: fmt.Sprintf("%s-%d", name, time.Now().UnixNano())},
		Hostname:     name,
		LogDirectory: t.TempDir(),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
	if configure != nil {
		configure(cfg)
	}
	id, err := p.rt.RunPodSandbox(ctx, cfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		ctx := framework.Quiet(context.Background())
		_ = p.rt.StopPodSandbox(ctx, id)
		if err := p.rt.RemovePodSandbox(ctx, id); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	})
	p.id, p.cfg = id, cfg
	return p
}

// pull pulls an image unless it is there already.
func (p *testPod) pull(t *testing.T, image string) {
	t.Helper()
	ctx := framework.Context(t)
	if st, err := p.img.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image}, false); err == nil && st.GetImage() != nil {
		return
	}
	if _, err := p.img.PullImage(ctx, &runtimeapi.ImageSpec{Image: image}, nil, nil); err != nil {
		t.Fatalf("PullImage %s: %v", image, err)
	}
}

// sleeper is a container config that runs sleep in image with the security context sc.
func sleeper(name, image string, sc *runtimeapi.LinuxContainerSecurityContext) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  []string{"sleep", "3600"},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: sc},
	}
}

// create makes a container in the pod (pulling its image first).
func (p *testPod) create(t *testing.T, cfg *runtimeapi.ContainerConfig) (string, error) {
	t.Helper()
	p.pull(t, cfg.Image.Image)
	return p.rt.CreateContainer(framework.Context(t), p.id, cfg, p.cfg)
}

// run creates and starts a container, failing t on error.
func (p *testPod) run(t *testing.T, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	id, err := p.create(t, cfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Metadata.Name, err)
	}
	if err := p.rt.StartContainer(framework.Context(t), id); err != nil {
		t.Fatalf("StartContainer %s: %v", cfg.Metadata.Name, err)
	}
	return id
}

// execResult is one ExecSync's outcome.
type execResult struct {
	stdout, stderr string
	code           int
}

func (r execResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// exec runs cmd in the container; a non-zero exit is a result, any other error fails t.
func (p *testPod) exec(t *testing.T, id string, cmd ...string) execResult {
	t.Helper()
	stdout, stderr, err := p.rt.ExecSync(framework.Context(t), id, cmd, 20*time.Second)
	r := execResult{stdout: string(stdout), stderr: string(stderr)}
	if err != nil {
		var ee interface{ ExitStatus() int }
		if !errors.As(err, &ee) {
			t.Fatalf("ExecSync %q: %v", cmd, err)
		}
		r.code = ee.ExitStatus()
	}
	return r
}

// sh runs a shell script in the container and returns its trimmed stdout, failing t unless
// it exits 0.
func (p *testPod) sh(t *testing.T, id, script string) string {
	t.Helper()
	r := p.exec(t, id, "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("%q: %v", script, r)
	}
	return strings.TrimSpace(r.stdout)
}

// procStatus returns the fields of /proc/self/status of a process in the container.
func (p *testPod) procStatus(t *testing.T, id string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for line := range strings.Lines(p.sh(t, id, "cat /proc/self/status")) {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// sandboxInfo is what peapod's verbose PodSandboxStatus tells about a pod.
type sandboxInfo struct {
	CgroupParent string `json:"cgroup_parent"`
	QoS          string `json:"qos"`
	UserNSPath   string `json:"userns_path"`
}

func (p *testPod) info(t *testing.T) sandboxInfo {
	t.Helper()
	st, err := p.rt.PodSandboxStatus(framework.Context(t), p.id, true)
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	var info sandboxInfo
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("sandbox info %q: %v", st.GetInfo()["info"], err)
	}
	return info
}

// leftovers is what a refused CreateContainer must not leave: containers in the pod, and
// with a peapod we started, container directories, rootfs mounts and container cgroups.
type leftovers struct {
	containers int
	dirs       []string
	mounts     []string
	cgroups    []string
}

func (p *testPod) leftovers(t *testing.T) leftovers {
	t.Helper()
	ctrs, err := p.rt.ListContainers(framework.Context(t), &runtimeapi.ContainerFilter{PodSandboxId: p.id})
	if err != nil {
		t.Fatalf("ListContainers: %v", err)
	}
	l := leftovers{containers: len(ctrs)}
	if p.daemon == nil {
		return l
	}
	dir := filepath.Join(p.daemon.Root(), "containers")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		l.dirs = append(l.dirs, e.Name())
	}
	if l.mounts, err = framework.MountsUnder(dir); err != nil {
		t.Fatalf("mounts: %v", err)
	}
	if cg := p.info(t).CgroupParent; cg != "" {
		for _, ctrl := range []string{"cpu", "memory", "pids"} {
			entries, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup", ctrl, cg))
			for _, e := range entries {
				if e.IsDir() {
					l.cgroups = append(l.cgroups, ctrl+":"+e.Name())
				}
			}
		}
	}
	return l
}

func (l leftovers) equal(o leftovers) bool {
	return l.containers == o.containers && slices.Equal(l.dirs, o.dirs) &&
		slices.Equal(l.mounts, o.mounts) && slices.Equal(l.cgroups, o.cgroups)
}

// refused checks that CreateContainer of cfg fails with code and leaves nothing behind.
func (p *testPod) refused(t *testing.T, cfg *runtimeapi.ContainerConfig, code codes.Code, msg string) {
	t.Helper()
	before := p.leftovers(t)
	id, err := p.create(t, cfg)
	if err == nil {
		t.Fatalf("CreateContainer %s succeeded (id %s), want %v", cfg.Metadata.Name, id, code)
	}
	if status.Code(err) != code {
		t.Errorf("CreateContainer %s: %v (code %v), want code %v", cfg.Metadata.Name, err, status.Code(err), code)
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Errorf("CreateContainer %s: error %q does not mention %q", cfg.Metadata.Name, err, msg)
	}
	if after := p.leftovers(t); !after.equal(before) {
		t.Errorf("refused CreateContainer %s left something behind:\nbefore %+v\nafter  %+v", cfg.Metadata.Name, before, after)
	}
}

func i64(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }

// hostProcIDs reads the effective uid and gid and the sorted groups of pid from the host's
// /proc/<pid>/status.
func hostProcIDs(t *testing.T, pid int) (uid, gid string, groups []string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the ids of pid %d: %v", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		switch {
		case k == "Uid" && len(f) == 4:
			uid = f[1]
		case k == "Gid" && len(f) == 4:
			gid = f[1]
		case k == "Groups":
			groups = f
		}
	}
	slices.Sort(groups)
	return uid, gid, groups
}

// idsOf parses `id -u; id -g; id -G` output.
func idsOf(t *testing.T, out string) (uid, gid string, groups []string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	if len(lines) != 3 {
		t.Fatalf("id output %q", out)
	}
	groups = strings.Fields(lines[2])
	slices.Sort(groups)
	return lines[0], lines[1], groups
}

// TestSecurityIdentity: uid, gid and groups from run_as_user/username/group, supplemental
// groups and the image's /etc/passwd and /etc/group, with both groups policies, as `id`
// sees them inside and as ContainerStatus reports them.
func TestSecurityIdentity(t *testing.T) {
	pod := newTestPod(t, "identity", nil)
	uidGroup := fmt.Sprint(framework.UserUIDGroupUID)
	primary := fmt.Sprint(framework.UserUIDGroupPrimary)
	supp := fmt.Sprint(framework.UserUIDGroupSupp)
	for _, tc := range []struct {
		name   string
		image  string
		sc     *runtimeapi.LinuxContainerSecurityContext
		uid    string
		gid    string
		groups []string
	}{
		{"default root", framework.ImageBusybox, nil, "0", "0", []string{"0"}},
		{"image numeric user without passwd entry", framework.ImageUserUID, nil, fmt.Sprint(framework.UserUID), "0", []string{"0"}},
		{"image username www-data", framework.ImageUserUsername, nil, "33", "33", []string{"33"}},
		{"image uid with groups merged", framework.ImageUserUIDGroup, nil, uidGroup, primary, []string{primary, supp}},
		{"image uid strict", framework.ImageUserUIDGroup,
			&runtimeapi.LinuxContainerSecurityContext{SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict},
			uidGroup, primary, []string{primary}},
		{"image uid merge plus supplemental", framework.ImageUserUIDGroup,
			&runtimeapi.LinuxContainerSecurityContext{SupplementalGroups: []int64{1234}},
			uidGroup, primary, []string{primary, "1234", supp}},
		{"image uid strict plus supplemental", framework.ImageUserUIDGroup,
			&runtimeapi.LinuxContainerSecurityContext{SupplementalGroups: []int64{1234}, SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict},
			uidGroup, primary, []string{primary, "1234"}},
		{"run_as_username from image passwd", framework.ImageUserUIDGroup,
			&runtimeapi.LinuxContainerSecurityContext{RunAsUsername: framework.UserUIDGroupName},
			uidGroup, primary, []string{primary, supp}},
		{"run_as_user overrides image user", framework.ImageUserUsername,
			&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000)}, "1000", "0", []string{"0"}},
		{"run_as_user run_as_group supplemental", framework.ImageBusybox,
			&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(3000), SupplementalGroups: []int64{2000}},
			"1000", "3000", []string{"2000", "3000"}},
		{"run_as_username with run_as_group", framework.ImageBusybox,
			&runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "www-data", RunAsGroup: i64(4000)},
			"33", "4000", []string{"4000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			id := pod.run(t, sleeper(name, tc.image, tc.sc))
			uid, gid, groups := idsOf(t, pod.sh(t, id, "id -u; id -g; id -G"))
			want := slices.Sorted(slices.Values(tc.groups))
			if uid != tc.uid || gid != tc.gid || !slices.Equal(groups, want) {
				t.Errorf("inside: uid %s gid %s groups %v, want %s %s %v", uid, gid, groups, tc.uid, tc.gid, want)
			}
			// The kernel's view of the container's own process, from the host.
			if uid, gid, groups := hostProcIDs(t, pod.pid(t, id)); uid != tc.uid || gid != tc.gid || !slices.Equal(groups, want) {
				t.Errorf("/proc/<pid>/status: uid %s gid %s groups %v, want %s %s %v", uid, gid, groups, tc.uid, tc.gid, want)
			}
			st, err := pod.rt.ContainerStatus(framework.Context(t), id, false)
			if err != nil {
				t.Fatalf("ContainerStatus: %v", err)
			}
			u := st.GetStatus().GetUser().GetLinux()
			var sg []string
			for _, g := range u.GetSupplementalGroups() {
				sg = append(sg, fmt.Sprint(g))
			}
			slices.Sort(sg)
			if fmt.Sprint(u.GetUid()) != tc.uid || fmt.Sprint(u.GetGid()) != tc.gid || !slices.Equal(sg, want) {
				t.Errorf("status user %v, want uid %s gid %s groups %v", u, tc.uid, tc.gid, want)
			}
		})
	}
	t.Run("status follows the process", func(t *testing.T) {
		// Started as root, the process makes itself www-data: ContainerStatus reports who it
		// is now, as /proc says, not who it was started as.
		cfg := sleeper("becomes-www-data", framework.ImageBusybox, nil)
		cfg.Command = []string{"start-stop-daemon", "-S", "-q", "-c", "www-data", "-n", "no-such-process", "-a", "/bin/sleep", "--", "3600"}
		id := pod.run(t, cfg)
		pid := pod.pid(t, id)
		deadline := time.Now().Add(10 * time.Second)
		for uid, _, _ := hostProcIDs(t, pid); uid != "33"; uid, _, _ = hostProcIDs(t, pid) {
			if time.Now().After(deadline) {
				t.Fatalf("the container's process is still uid %s, want 33", uid)
			}
			time.Sleep(20 * time.Millisecond)
		}
		u := pod.status(t, id).GetUser().GetLinux()
		if u.GetUid() != 33 || u.GetGid() != 33 || !slices.Equal(u.GetSupplementalGroups(), []int64{33}) {
			t.Errorf("status user %v, want uid 33 gid 33 groups [33] as /proc says", u)
		}
	})
	t.Run("refused", func(t *testing.T) {
		pod.refused(t, sleeper("no-such-user", framework.ImageBusybox,
			&runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "nosuchuser"}), codes.InvalidArgument, "nosuchuser")
		pod.refused(t, sleeper("group-alone", framework.ImageBusybox,
			&runtimeapi.LinuxContainerSecurityContext{RunAsGroup: i64(3000)}), codes.InvalidArgument, "run_as_group")
		pod.refused(t, sleeper("negative-uid", framework.ImageBusybox,
			&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(-5)}), codes.InvalidArgument, "run_as_user")
	})
}

// capNames lists the capabilities by number.
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// defaultCaps is the runtime default set.
var defaultCaps = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
	"SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

func capMask(t *testing.T, names ...string) uint64 {
	t.Helper()
	var m uint64
	for _, n := range names {
		i := slices.Index(capNames, n)
		if i < 0 {
			t.Fatalf("unknown capability %s", n)
		}
		m |= 1 << i
	}
	return m
}

func parseMask(t *testing.T, st map[string]string, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(st[key], 16, 64)
	if err != nil {
		t.Fatalf("%s %q: %v", key, st[key], err)
	}
	return v
}

func capList(m uint64) []string {
	var out []string
	for i, n := range capNames {
		if m&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// runtimeCaps is what the runtime holds (CapBnd ∩ CapPrm): "all capabilities" here.
func runtimeCaps(t *testing.T, env *framework.Env) uint64 {
	t.Helper()
	st, err := framework.ProcessStatus(env.PID(t))
	if err != nil {
		t.Fatalf("runtime status: %v", err)
	}
	return parseMask(t, st, "CapBnd") & parseMask(t, st, "CapPrm")
}

// TestSecurityCapabilities: the default set, add and drop (ALL too), ambient capabilities of
// a non-root user, as CapEff/CapBnd/CapAmb inside.
func TestSecurityCapabilities(t *testing.T) {
	pod := newTestPod(t, "caps", nil)
	all := runtimeCaps(t, pod.env)
	def := capMask(t, defaultCaps...)
	caps := func(add, drop, ambient []string) *runtimeapi.Capability {
		return &runtimeapi.Capability{AddCapabilities: add, DropCapabilities: drop, AddAmbientCapabilities: ambient}
	}
	for _, tc := range []struct {
		name          string
		sc            *runtimeapi.LinuxContainerSecurityContext
		eff, bnd, amb uint64
	}{
		{"default", nil, def, def, 0},
		{"add and drop", &runtimeapi.LinuxContainerSecurityContext{Capabilities: caps([]string{"NET_ADMIN", "CAP_SYS_TIME"}, []string{"CHOWN", "cap_kill"}, nil)},
			(def | capMask(t, "NET_ADMIN", "SYS_TIME")) &^ capMask(t, "CHOWN", "KILL"), (def | capMask(t, "NET_ADMIN", "SYS_TIME")) &^ capMask(t, "CHOWN", "KILL"), 0},
		{"drop all", &runtimeapi.LinuxContainerSecurityContext{Capabilities: caps(nil, []string{"ALL"}, nil)}, 0, 0, 0},
		{"drop all add one", &runtimeapi.LinuxContainerSecurityContext{Capabilities: caps([]string{"NET_BIND_SERVICE"}, []string{"ALL"}, nil)},
			capMask(t, "NET_BIND_SERVICE"), capMask(t, "NET_BIND_SERVICE"), 0},
		{"add all", &runtimeapi.LinuxContainerSecurityContext{Capabilities: caps([]string{"ALL"}, nil, nil)}, all, all, 0},
		{"non-root loses caps", &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000)}, 0, def, 0},
		{"non-root ambient", &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000), Capabilities: caps(nil, nil, []string{"NET_BIND_SERVICE"})},
			capMask(t, "NET_BIND_SERVICE"), def, capMask(t, "NET_BIND_SERVICE")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := pod.run(t, sleeper(strings.ReplaceAll(tc.name, " ", "-"), framework.ImageBusybox, tc.sc))
			st := pod.procStatus(t, id)
			for _, x := range []struct {
				key  string
				want uint64
			}{{"CapEff", tc.eff}, {"CapBnd", tc.bnd}, {"CapAmb", tc.amb}} {
				if got := parseMask(t, st, x.key); got != x.want {
					t.Errorf("%s = %v, want %v", x.key, capList(got), capList(x.want))
				}
			}
		})
	}
	t.Run("unknown capability refused", func(t *testing.T) {
		pod.refused(t, sleeper("bogus-cap", framework.ImageBusybox,
			&runtimeapi.LinuxContainerSecurityContext{Capabilities: caps([]string{"CAP_BOGUS"}, nil, nil)}), codes.InvalidArgument, "CAP_BOGUS")
	})
}

// TestSecurityPrivileged: a privileged container in a privileged pod has every capability
// the runtime holds, the host's devices, nothing masked and a writable /sys; a privileged
// container in an unprivileged pod is refused.
func TestSecurityPrivileged(t *testing.T) {
	pod := newTestPod(t, "privileged", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}
	})
	all := runtimeCaps(t, pod.env)
	id := pod.run(t, sleeper("priv", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{Privileged: true}))
	st := pod.procStatus(t, id)
	if got := parseMask(t, st, "CapEff"); got != all {
		t.Errorf("CapEff %v, want all the runtime holds %v", capList(got), capList(all))
	}
	if got := parseMask(t, st, "CapBnd"); got != all {
		t.Errorf("CapBnd %v, want %v", capList(got), capList(all))
	}
	// A host device no unprivileged container gets.
	var hostDev string
	for _, d := range []string{"/dev/kmsg", "/dev/mem", "/dev/loop-control", "/dev/vda", "/dev/sda"} {
		if _, err := os.Stat(d); err == nil {
			hostDev = d
			break
		}
	}
	if hostDev != "" {
		if r := pod.exec(t, id, "test", "-c", hostDev, "-o", "-b", hostDev); r.code != 0 {
			t.Errorf("privileged container lacks host device %s: %v", hostDev, r)
		}
	}
	if n := pod.sh(t, id, "wc -c < /proc/timer_list"); n == "0" {
		t.Errorf("/proc/timer_list is masked in a privileged container")
	}
	if m := pod.sh(t, id, "grep ' /sys ' /proc/self/mounts"); !strings.Contains(m, " rw,") {
		t.Errorf("/sys in a privileged container: %s, want rw", m)
	}
	if m := pod.sh(t, id, "grep ' /proc/sys ' /proc/self/mounts || true"); strings.Contains(m, " ro,") {
		t.Errorf("/proc/sys is read-only in a privileged container: %s", m)
	}

	plain := newTestPod(t, "unprivileged", nil)
	plain.refused(t, sleeper("priv", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{Privileged: true}),
		codes.InvalidArgument, "privileged")
	// An unprivileged container does not see the host device.
	uid := plain.run(t, sleeper("plain", framework.ImageBusybox, nil))
	if hostDev != "" {
		if r := plain.exec(t, uid, "test", "-e", hostDev); r.code == 0 {
			t.Errorf("unprivileged container sees host device %s", hostDev)
		}
	}
}

// suidImage is a busybox image with /bin/euid, a static setuid-root program printing its
// effective uid. It skips t without a C compiler that links statically.
func suidImage(t *testing.T, env *framework.Env) string {
	t.Helper()
	const ref = "registry.k8s.io/e2e-test-images/peapod-setuid:1.0"
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("SKIP-REASON: no C compiler (cc) to build the setuid test program")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "euid.c")
	if err := os.WriteFile(src, []byte("#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"%d\\n\",(int)geteuid());return 0;}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "euid")
	if out, err := exec.Command(cc, "-static", "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		t.Skipf("SKIP-REASON: cannot link a static C program (install libc6-dev): %v: %s", err, out)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := framework.NewLayer([]framework.TarEntry{{Name: "bin/euid", Type: tar.TypeReg, Mode: 0o4755, Body: body}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := framework.BuildImage(framework.ImageSpec{Busybox: true, Layers: []v1.Layer{layer}, Config: v1.Config{Cmd: []string{"sh"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Registry.Push(framework.Context(t), ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// TestSecurityNoNewPrivs: no_new_privs sets the NoNewPrivs bit, and a setuid-root program
// then runs with the caller's uid; without it the same program runs as root.
func TestSecurityNoNewPrivs(t *testing.T) {
	pod := newTestPod(t, "nnp", nil)
	image := suidImage(t, pod.env)
	for _, tc := range []struct {
		nnp       bool
		bit, euid string
	}{{false, "0", "0"}, {true, "1", "1000"}} {
		t.Run(fmt.Sprintf("no_new_privs=%v", tc.nnp), func(t *testing.T) {
			id := pod.run(t, sleeper(fmt.Sprintf("nnp-%v", tc.nnp), image,
				&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000), NoNewPrivs: tc.nnp}))
			if got := pod.procStatus(t, id)["NoNewPrivs"]; got != tc.bit {
				t.Errorf("NoNewPrivs %q, want %s", got, tc.bit)
			}
			if got := pod.sh(t, id, "/bin/euid"); got != tc.euid {
				t.Errorf("setuid-root program's euid %s, want %s", got, tc.euid)
			}
		})
	}
}

// TestSecurityFilesystem: a read-only rootfs refuses writes with EROFS while a mounted volume
// stays writable; the default masked and read-only paths; requested ones replace them.
func TestSecurityFilesystem(t *testing.T) {
	pod := newTestPod(t, "fs", nil)
	t.Run("readonly rootfs", func(t *testing.T) {
		vol := t.TempDir()
		cfg := sleeper("ro", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{ReadonlyRootfs: true})
		cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: vol}}
		id := pod.run(t, cfg)
		if r := pod.exec(t, id, "touch", "/etc/new"); r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("write to the read-only rootfs: %v, want EROFS", r)
		}
		if r := pod.exec(t, id, "sh", "-c", "echo hi > /data/f"); r.code != 0 {
			t.Errorf("write to the volume: %v", r)
		}
		if b, err := os.ReadFile(filepath.Join(vol, "f")); err != nil || string(b) != "hi\n" {
			t.Errorf("volume file on the host: %q %v", b, err)
		}
	})
	t.Run("default masked and readonly paths", func(t *testing.T) {
		id := pod.run(t, sleeper("defaults", framework.ImageBusybox, nil))
		for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"} {
			if _, err := os.Stat(p); err != nil {
				continue // this kernel has no such file (here: no CONFIG_PROC_KCORE)
			}
			// A masked file is /dev/null bound over it: a character device that reads empty.
			if out := pod.sh(t, id, fmt.Sprintf("test -c %[1]s && echo dev; wc -c < %[1]s", p)); out != "dev\n0" {
				t.Errorf("%s: %q, want masked (a character device, empty)", p, out)
			}
		}
		if r := pod.exec(t, id, "ls", "/sys/firmware"); strings.TrimSpace(r.stdout) != "" {
			t.Errorf("/sys/firmware lists %q, want masked", r.stdout)
		}
		for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger"} {
			if _, err := os.Stat(p); err != nil {
				continue // not on this kernel
			}
			if m := pod.sh(t, id, fmt.Sprintf("grep ' %s ' /proc/self/mounts", p)); !strings.Contains(m, " ro,") {
				t.Errorf("%s mount %q, want read-only", p, m)
			}
		}
	})
	t.Run("requested paths replace the defaults", func(t *testing.T) {
		id := pod.run(t, sleeper("custom", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
			MaskedPaths: []string{"/etc/group"}, ReadonlyPaths: []string{"/var/tmp"},
		}))
		if n := pod.sh(t, id, "wc -c < /etc/group"); n != "0" {
			t.Errorf("/etc/group has %s bytes, want masked", n)
		}
		if n := pod.sh(t, id, "wc -c < /proc/timer_list"); n == "0" {
			t.Errorf("/proc/timer_list is masked though the request replaced the defaults")
		}
		if r := pod.exec(t, id, "touch", "/var/tmp/x"); r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("write under a read-only path: %v, want EROFS", r)
		}
		if r := pod.exec(t, id, "touch", "/tmp/x"); r.code != 0 {
			t.Errorf("write to /tmp: %v", r)
		}
	})
}

// TestSecuritySeccomp: RuntimeDefault (and its deprecated spellings) blocks unshare of a
// user namespace with EPERM where Unconfined allows it; a Localhost profile blocking mkdir
// makes mkdir fail; missing or invalid profiles and unusable AppArmor profiles are refused.
func TestSecuritySeccomp(t *testing.T) {
	pod := newTestPod(t, "seccomp", nil)
	dir := t.TempDir()
	noMkdir := filepath.Join(dir, "no-mkdir.json")
	if err := os.WriteFile(noMkdir, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	invalid := filepath.Join(dir, "invalid.json")
	if err := os.WriteFile(invalid, []byte(`{"defaultAction": 12`), 0o644); err != nil {
		t.Fatal(err)
	}
	profile := func(typ runtimeapi.SecurityProfile_ProfileType, ref string) *runtimeapi.LinuxContainerSecurityContext {
		return &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: typ, LocalhostRef: ref}}
	}
	for _, tc := range []struct {
		name        string
		sc          *runtimeapi.LinuxContainerSecurityContext
		unshareOK   bool
		mkdirDenied bool
	}{
		{"runtime default", profile(runtimeapi.SecurityProfile_RuntimeDefault, ""), false, false},
		{"unconfined", profile(runtimeapi.SecurityProfile_Unconfined, ""), true, false},
		{"legacy runtime/default", &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "runtime/default"}, false, false},
		{"legacy docker/default", &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "docker/default"}, false, false},
		{"legacy unconfined", &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "unconfined"}, true, false},
		{"localhost no mkdir", profile(runtimeapi.SecurityProfile_Localhost, noMkdir), true, true},
		{"legacy localhost no mkdir", &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/" + noMkdir}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := pod.run(t, sleeper(strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), "/", "-"), framework.ImageBusybox, tc.sc))
			r := pod.exec(t, id, "unshare", "-U", "true")
			switch {
			case tc.unshareOK && r.code != 0:
				t.Errorf("unshare -U: %v, want allowed", r)
			case !tc.unshareOK && (r.code == 0 || !strings.Contains(r.stderr, "Operation not permitted")):
				t.Errorf("unshare -U: %v, want EPERM", r)
			}
			r = pod.exec(t, id, "mkdir", "/tmp/d")
			if tc.mkdirDenied != (r.code != 0) {
				t.Errorf("mkdir: %v, want denied=%v", r, tc.mkdirDenied)
			}
			if tc.mkdirDenied && !strings.Contains(r.stderr, "Operation not permitted") {
				t.Errorf("mkdir under a profile returning errno: %v, want EPERM", r)
			}
			if want := map[bool]string{false: "0", true: "2"}[tc.sc.GetSeccomp().GetProfileType() != runtimeapi.SecurityProfile_Unconfined && tc.sc.GetSeccompProfilePath() != "unconfined"]; pod.procStatus(t, id)["Seccomp"] != want {
				t.Errorf("Seccomp mode %q, want %s", pod.procStatus(t, id)["Seccomp"], want)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.json")
		pod.refused(t, sleeper("missing-profile", framework.ImageBusybox, profile(runtimeapi.SecurityProfile_Localhost, missing)), codes.InvalidArgument, missing)
		pod.refused(t, sleeper("missing-legacy", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/" + missing}), codes.InvalidArgument, missing)
		pod.refused(t, sleeper("invalid-profile", framework.ImageBusybox, profile(runtimeapi.SecurityProfile_Localhost, invalid)), codes.InvalidArgument, invalid)
		pod.refused(t, sleeper("bad-legacy", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "nonsense"}), codes.InvalidArgument, "nonsense")
	})
	t.Run("apparmor", func(t *testing.T) {
		if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.HasPrefix(string(b), "Y") {
			t.Skip("SKIP-REASON: AppArmor is enabled on this host; this checks a host without it")
		}
		id := pod.run(t, sleeper("apparmor-unconfined", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
			Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}))
		pod.sh(t, id, "true")
		pod.refused(t, sleeper("apparmor-localhost", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
			Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "peapod-test"}}),
			codes.InvalidArgument, "AppArmor")
		pod.refused(t, sleeper("apparmor-legacy", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
			ApparmorProfile: "localhost/peapod-test"}), codes.InvalidArgument, "AppArmor")
	})
	t.Run("apparmor-confined", func(t *testing.T) {
		if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err != nil || !strings.HasPrefix(string(b), "Y") {
			t.Skip("SKIP-REASON: AppArmor is not enabled on this host; this reads a container's confinement on a host with it")
		}
		// What the kernel says the container's processes run under, not what the spec asked.
		id := pod.run(t, sleeper("apparmor-unconfined-on", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
			Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}))
		if got := pod.sh(t, id, "cat /proc/self/attr/current"); got != "unconfined" {
			t.Errorf("Unconfined container runs under %q, want unconfined", got)
		}
		profile := loadedComplainProfile(t)
		if profile == "" {
			t.Skip("SKIP-REASON: no AppArmor profile in complain mode is loaded to confine a container with")
		}
		id = pod.run(t, sleeper("apparmor-localhost-on", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
			Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}}))
		if got := pod.sh(t, id, "cat /proc/self/attr/current"); !strings.HasPrefix(got, profile+" (") {
			t.Errorf("container of Localhost profile %q runs under %q", profile, got)
		}
	})
}

// loadedComplainProfile is a loaded AppArmor profile in complain mode (it logs, never
// refuses, so busybox runs under it whatever it allows), or "".
func loadedComplainProfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		t.Fatalf("AppArmor is enabled but its profiles cannot be read: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if name, ok := strings.CutSuffix(strings.TrimSpace(line), " (complain)"); ok && !strings.Contains(name, " ") {
			return name
		}
	}
	return ""
}

// TestSecuritySandbox: the pod-level security context: run_as_user/group of the pod, host
// namespaces, and a privileged pod's own containers staying unprivileged unless asked.
func TestSecuritySandbox(t *testing.T) {
	pod := newTestPod(t, "sandbox-sc", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
			Privileged: true,
		}
	})
	id := pod.run(t, sleeper("plain-in-privileged-pod", framework.ImageBusybox, nil))
	if got := parseMask(t, pod.procStatus(t, id), "CapEff"); got != capMask(t, defaultCaps...) {
		t.Errorf("unprivileged container of a privileged pod: CapEff %v, want the default set", capList(got))
	}
	if n := pod.sh(t, id, "wc -c < /proc/timer_list"); n != "0" {
		t.Errorf("unprivileged container of a privileged pod: /proc/timer_list not masked")
	}
}

// holderStatus finds the PID namespace holder of the container whose host pid is ctrPid (the
// process that is PID 1 of its PID namespace) and returns its /proc/<pid>/status fields.
func holderStatus(t *testing.T, ctrPid int) (int, map[string]string) {
	t.Helper()
	want := nsLink(t, ctrPid, "pid")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || l != want {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		fields := map[string]string{}
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.Join(strings.Fields(v), " ")
			}
		}
		if nspid := strings.Fields(fields["NSpid"]); len(nspid) > 1 && nspid[len(nspid)-1] == "1" {
			return pid, fields
		}
	}
	t.Fatalf("no PID 1 in the pid namespace %s of pid %d", want, ctrPid)
	return 0, nil
}

// TestPodPidHolder: the holder of a pod's shared PID namespace runs as the pod's run_as_user
// and run_as_group, with no supplementary groups, no capabilities and no_new_privs, as the
// kernel reports it on the host and inside the pod; without them it is root, still without
// capabilities. The pod's containers run beside it as before.
func TestPodPidHolder(t *testing.T) {
	framework.RequirePeapod(t)
	for _, tc := range []struct {
		name     string
		uid, gid *runtimeapi.Int64Value
		ids      string
	}{
		{"run_as_user and run_as_group", i64(1000), i64(2000), "1000:2000"},
		{"run_as_user alone", i64(1001), nil, "1001:0"},
		{"no identity", nil, nil, "0:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := newTestPod(t, "pid-holder", func(c *runtimeapi.PodSandboxConfig) {
				c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
					RunAsUser:        tc.uid, RunAsGroup: tc.gid,
				}
			})
			id := pod.run(t, sleeper("a", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}}))
			uid, gid, _ := strings.Cut(tc.ids, ":")
			want := map[string]string{
				"Uid": strings.Repeat(uid+" ", 3) + uid, "Gid": strings.Repeat(gid+" ", 3) + gid, "Groups": "",
				"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
				"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1",
			}
			pid, got := holderStatus(t, pod.pid(t, id))
			for k, v := range want {
				if got[k] != v {
					t.Errorf("holder %d on the host: %s %q, want %q", pid, k, got[k], v)
				}
			}
			inside := map[string]string{}
			for line := range strings.Lines(pod.sh(t, id, "cat /proc/1/status")) {
				if k, v, ok := strings.Cut(line, ":"); ok {
					inside[k] = strings.Join(strings.Fields(v), " ")
				}
			}
			if inside["Uid"] != want["Uid"] || inside["CapEff"] != want["CapEff"] || inside["NoNewPrivs"] != "1" {
				t.Errorf("PID 1 seen in the pod: Uid %q CapEff %q NoNewPrivs %q, want %q %q 1", inside["Uid"], inside["CapEff"], inside["NoNewPrivs"], want["Uid"], want["CapEff"])
			}
			if got := pod.sh(t, id, "ps -o pid,comm | grep -c sleep"); got != "1" {
				t.Errorf("the container sees %s sleep processes, want its own", got)
			}
		})
	}
}
