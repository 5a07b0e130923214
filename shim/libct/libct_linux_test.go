package libct

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/shim/internal/shimtest"
)

// TestMain is also libcontainer's init when the test binary is re-executed as
// "<test binary> init" (as runc's libcontainer/integration/init_test.go does).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
		return
	}
	// Container inits are reparented to the nearest subreaper when libcontainer's helpers
	// exit: make that this test process, so the tests can wait for them.
	if os.Geteuid() == 0 {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	os.Exit(m.Run())
}

func TestIsSystemdCgroupsPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"", false},
		{"/kubepods/burstable/pod1/c1", false},
		{"kubepods-burstable-pod1.slice:cri-containerd:c1", true},
		{"system.slice:peapod:abc", true},
		{"relative/path", false},
	} {
		if got := isSystemdCgroupsPath(tc.path); got != tc.want {
			t.Errorf("%q: got %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestReadCounter(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          uint64
		err           bool
	}{
		{"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", 3, false},
		{"memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n", 1, false},
		{"old.oom_control", "oom_kill_disable 0\nunder_oom 0\n", 0, true},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readCounter(p, "oom_kill")
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %d, %v", tc.name, got, err)
		}
	}
}

func TestNewProcess(t *testing.T) {
	p := &specs.Process{
		Args: []string{"sh"}, Cwd: "/", User: specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3, 4}},
		Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 5}},
	}
	lp, err := newProcess(p, Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	if lp.UID != 1 || lp.GID != 2 || fmt.Sprint(lp.AdditionalGroups) != "[3 4]" || len(lp.Rlimits) != 1 || lp.Rlimits[0].Type != unix.RLIMIT_NOFILE {
		t.Errorf("converted process: %+v", lp)
	}
	if lp.Stdin != nil || lp.Stdout != nil || lp.Stderr != nil {
		t.Errorf("nil files must stay nil interfaces: %#v %#v %#v", lp.Stdin, lp.Stdout, lp.Stderr)
	}
	p.Rlimits[0].Type = "RLIMIT_BOGUS"
	if _, err := newProcess(p, Stdio{}); err == nil {
		t.Error("unknown rlimit accepted")
	}
}

func waitPid(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatalf("wait %d: %v", pid, err)
	}
	return ws
}

// newTestRuntime builds a busybox rootfs and a Runtime whose state is under root, both in a
// temporary directory, and the test's cgroup parent. Only a missing busybox skips the test.
func newTestRuntime(t *testing.T) (rt *Runtime, rootfs, root, cg string) {
	t.Helper()
	dir := t.TempDir()
	rootfs, root = filepath.Join(dir, "rootfs"), filepath.Join(dir, "root")
	if err := shimtest.BuildRootfs(rootfs); err != nil {
		// Only a missing busybox is the machine's fault; any other error is the test's.
		if strings.HasPrefix(err.Error(), "SKIP-REASON") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	cg = shimtest.CgroupParent(t)
	rt, err := New(Options{Root: root, Logger: corelog.New(zaptest.NewLogger(t).Core())})
	if err != nil {
		t.Fatal(err)
	}
	return rt, rootfs, root, cg
}

// TestRuntime drives one container through libct alone: create, start, exec, exit,
// Stopped, Destroy; and checks the oom_score_adj clamp against the real kernel.
func TestRuntime(t *testing.T) {
	testutil.RequireRoot(t)
	rt, rootfs, root, cg := newTestRuntime(t)
	ctx := context.Background()
	spec := func(id string, args ...string) *specs.Spec {
		s := shimtest.Spec(cg, id, args...)
		s.Root.Path = rootfs
		return s
	}

	// Below our own oom_score_adj: clamped by default, because this machine lacks
	// CAP_SYS_RESOURCE (where it has it, the value is simply applied).
	s := spec("c1", "sh", "-c", "cat /proc/self/oom_score_adj; echo to-stderr >&2")
	low := -999
	s.Process.OOMScoreAdj = &low
	outR, outW, _ := os.Pipe()
	defer outR.Close()
	c, err := rt.Create(ctx, "c1", s, Stdio{Stdout: outW, Stderr: outW})
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(outR)
	if ws := waitPid(t, c.Pid()); ws.ExitStatus() != 0 {
		t.Errorf("exit %v, output %q", ws, out)
	}
	own, _ := ownOOMScoreAdj()
	want := strconv.Itoa(own)
	if hasCapSysResource() {
		want = "-999"
	}
	if lines := strings.Fields(string(out)); len(lines) != 2 || lines[0] != want || lines[1] != "to-stderr" {
		t.Errorf("output %q, want oom_score_adj %s", out, want)
	}
	if oom, err := c.Stopped(ctx); err != nil || oom {
		t.Errorf("stopped: oom %v, err %v", oom, err)
	}
	if err := c.Signal(ctx, unix.SIGTERM, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("signal a stopped container: %v, want FailedPrecondition", err)
	}
	if err := c.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasCapSysResource() {
		// Without the clamp, the kernel refuses the value and libcontainer fails: the reason
		// the clamp exists.
		off := false
		strict, err := New(Options{Root: root, ClampOOMScoreAdj: &off})
		if err != nil {
			t.Fatal(err)
		}
		s := spec("c0", "true")
		s.Process.OOMScoreAdj = &low
		if _, err := strict.Create(ctx, "c0", s, Stdio{}); err == nil {
			t.Error("oom_score_adj -999 without CAP_SYS_RESOURCE and without clamp: created")
		}
	}
	if _, err := rt.Create(ctx, "bad", &specs.Spec{}, Stdio{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty spec: %v, want InvalidArgument", err)
	}

	// Exec into a running container, then SIGKILL it.
	c2, err := rt.Create(ctx, "c2", spec("c2", "sleep", "1000"), Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Create(ctx, "c2", spec("c2", "true"), Stdio{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("duplicate id: %v, want AlreadyExists", err)
	}
	execR, execW, _ := os.Pipe()
	defer execR.Close()
	pid, err := c2.Exec(ctx, &specs.Process{Args: []string{"sh", "-c", "echo $$ $(cat /proc/self/oom_score_adj)"}, Cwd: "/", Env: []string{"PATH=/bin"}}, Stdio{Stdout: execW})
	execW.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ = io.ReadAll(execR)
	if ws := waitPid(t, pid); ws.ExitStatus() != 0 || len(strings.Fields(string(out))) != 2 {
		t.Errorf("exec: %v, output %q", ws, out)
	}
	if _, err := c2.Exec(ctx, &specs.Process{Args: []string{"nope"}, Cwd: "/", Env: []string{"PATH=/bin"}}, Stdio{}); err == nil || !strings.Contains(err.Error(), `exec: "nope"`) {
		t.Errorf("exec of a missing command: %v", err)
	}
	if err := c2.Signal(ctx, unix.SIGKILL, true); err != nil {
		t.Fatal(err)
	}
	if ws := waitPid(t, c2.Pid()); !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("after SIGKILL: %v", ws)
	}
	if _, err := c2.Stopped(ctx); err != nil {
		t.Error(err)
	}
	if err := c2.Destroy(ctx); err != nil {
		t.Fatal(err)
	}

	// Remove cleans up what a lost shim left: a running container and its state.
	c3, err := rt.Create(ctx, "c3", spec("c3", "sleep", "1000"), Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(c3.Pid(), &ws, 0, nil)
		done <- ws
	}()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rt.Remove(rctx, "c3"); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := rt.Remove(rctx, "c3"); err != nil {
		t.Errorf("remove twice: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "c3")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir after remove: %v", err)
	}
}
