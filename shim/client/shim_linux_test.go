package client_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/client"
	"github.com/peapod-runtime/peapod/shim/internal/shimtest"
)

// Built once in TestMain when we are root: the shim binary and a busybox rootfs.
var (
	shimBin   string
	rootfsDir string
	setupErr  error
)

// helperEnv makes the test binary a short-lived parent that starts a shim and exits, to
// show the shim outlives its parent.
const helperEnv = "PEAPOD_SHIMTEST_START_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(startHelper(dir))
	}
	flag.Parse()
	// A fuzzing run (and each of its workers) runs only the fuzz target: no shim to build.
	fuzzing := flag.Lookup("test.fuzz").Value.String() != "" || flag.Lookup("test.fuzzworker").Value.String() == "true"
	if os.Geteuid() != 0 || fuzzing {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "peapod-shimtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shimBin, setupErr = shimtest.BuildShim(dir)
	if setupErr == nil {
		rootfsDir = filepath.Join(dir, "rootfs")
		setupErr = shimtest.BuildRootfs(rootfsDir)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func startHelper(stateDir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Start(ctx, client.StartOptions{Binary: os.Getenv("PEAPOD_SHIMTEST_BIN"), PodID: "orphan", StateDir: stateDir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c.Close()
	return 0
}

func requireShim(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	if setupErr != nil {
		if strings.HasPrefix(setupErr.Error(), "SKIP-REASON") {
			t.Skip(setupErr)
		}
		t.Fatal(setupErr)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// pod is one shim under test.
type pod struct {
	c        *client.Client
	stateDir string
	cgroup   string
	logDir   string
	shimPid  int
	stopped  bool
}

func stateDir(t testing.TB) string {
	// Short: the socket path must fit in sockaddr_un.
	d, err := os.MkdirTemp("/tmp", "ppst")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func startPod(t testing.TB, pidNS bool) *pod {
	t.Helper()
	// As the daemon starts a pod's shim: as its first stage, peapod-shim-runc.
	return startPodAs(t, pidNS, firstStageBin())
}

// startPodAs starts the pod's shim as firstStage, or as the lean shim itself when "".
func startPodAs(t testing.TB, pidNS bool, firstStage string) *pod {
	t.Helper()
	requireShim(t)
	p := &pod{cgroup: shimtest.CgroupParent(t), stateDir: stateDir(t), logDir: t.TempDir()}
	c, err := client.Start(ctxT(t, 20*time.Second), client.StartOptions{
		Binary: shimBin, FirstStage: firstStage, PodID: "pod-" + shimtest.RandomSuffix(), StateDir: p.stateDir, PidNamespace: pidNS,
	})
	if err != nil {
		t.Fatal(err)
	}
	p.c = c
	info, err := c.Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	p.shimPid = info.Pid
	t.Cleanup(func() { p.stop(t) })
	return p
}

// firstStageBin is the peapod-shim-runc built beside shimBin.
func firstStageBin() string { return filepath.Join(filepath.Dir(shimBin), "peapod-shim-runc") }

// stop deletes every container, shuts the shim down and makes sure it is gone.
func (p *pod) stop(t testing.TB) {
	if p.stopped {
		return
	}
	p.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, shim.SocketPath(p.stateDir))
	if err == nil {
		states, _ := c.List(ctx)
		for _, s := range states {
			if err := c.Delete(ctx, s.ID); err != nil {
				t.Errorf("cleanup: delete %s: %v", s.ID, err)
			}
		}
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("cleanup: shutdown: %v", err)
		}
	}
	p.c.Close()
	waitGone(t, p.shimPid)
	// The shim's stderr is its log: a panic or a race report (when built with -race) lands there.
	if b, err := os.ReadFile(shim.LogPath(p.stateDir)); err == nil {
		for _, bad := range []string{"panic:", "WARNING: DATA RACE", "fatal error:"} {
			if i := strings.Index(string(b), bad); i >= 0 {
				t.Errorf("shim log reports %q:\n%s", bad, b[i:min(len(b), i+4000)])
			}
		}
	}
}

func waitGone(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		// A killed process's leader is a zombie before its other threads are gone, and its
		// files (the shim's sockets) close with the last of them.
		if tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); strings.Contains(string(b), ") Z ") && len(tasks) <= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("process %d still alive; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *pod) spec(id string, args ...string) *specs.Spec {
	return shimtest.Spec(p.cgroup, id, args...)
}

func (p *pod) create(t *testing.T, id string, spec *specs.Spec, tty bool) string {
	t.Helper()
	logPath := filepath.Join(p.logDir, id, "0.log")
	_, err := p.c.Create(ctxT(t, 20*time.Second), shim.CreateOptions{ID: id, Spec: spec, Rootfs: rootfsDir, Tty: tty, LogPath: logPath})
	if err != nil {
		t.Fatal(err)
	}
	return logPath
}

func (p *pod) run(t *testing.T, id string, args ...string) string {
	t.Helper()
	logPath := p.create(t, id, p.spec(id, args...), false)
	if _, err := p.c.Start(ctxT(t, 10*time.Second), id); err != nil {
		t.Fatal(err)
	}
	return logPath
}

// waitLogLine waits until the log at path has a line whose text is text.
func waitLogLine(t *testing.T, path, text string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		for _, e := range readLog(t, path) {
			if e.text == text {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line %q in %s within 10s", text, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *pod) wait(t *testing.T, id string) shim.ContainerState {
	t.Helper()
	st, err := p.c.Wait(ctxT(t, 20*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type logEntry struct {
	ts      time.Time
	stream  string
	partial bool
	text    string
}

var logLine = regexp.MustCompile(`^(\S+) (stdout|stderr) ([PF]) (.*)$`)

func readLog(t *testing.T, path string) []logEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := logLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("log line not in CRI format: %q", sc.Text())
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatalf("log timestamp %q: %v", m[1], err)
		}
		out = append(out, logEntry{ts: ts, stream: m[2], partial: m[3] == "P", text: m[4]})
	}
	return out
}

func TestLifecycleAndLog(t *testing.T) {
	p := startPod(t, false)
	ctx := ctxT(t, 30*time.Second)
	logPath := p.create(t, "c1", p.spec("c1", "sh", "-c", "echo hello; echo oops >&2; printf tail"), false)

	st, err := p.c.State(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != shim.StatusCreated || st.Pid <= 0 || st.CreatedAt.IsZero() || !st.StartedAt.IsZero() {
		t.Fatalf("after create: %+v", st)
	}
	if _, err := p.c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.c.Start(ctx, "c1"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("second start: got %v, want FailedPrecondition", err)
	}
	st = p.wait(t, "c1")
	if st.Status != shim.StatusStopped || st.ExitCode != 0 || st.Signaled || st.OOMKilled || st.Reason != shim.ReasonCompleted {
		t.Fatalf("after exit: %+v", st)
	}
	if st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("times: %+v", st)
	}
	got := readLog(t, logPath)
	want := map[string]logEntry{
		"hello": {stream: "stdout"},
		"oops":  {stream: "stderr"},
		"tail":  {stream: "stdout", partial: true},
	}
	if len(got) != len(want) {
		t.Fatalf("log has %d entries, want %d: %+v", len(got), len(want), got)
	}
	for _, e := range got {
		w, ok := want[e.text]
		if !ok || w.stream != e.stream || w.partial != e.partial {
			t.Errorf("unexpected log entry %+v", e)
		}
	}
	// The record on disk says the same.
	recs, err := shim.ReadRecords(p.stateDir)
	if err != nil || len(recs) != 1 || recs[0].Status != shim.StatusStopped || recs[0].ExitCode != 0 {
		t.Errorf("records: %+v, %v", recs, err)
	}
	for range 2 {
		if err := p.c.Delete(ctx, "c1"); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	if _, err := p.c.State(ctx, "c1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("state after delete: %v, want NotFound", err)
	}
	if recs, _ := shim.ReadRecords(p.stateDir); len(recs) != 0 {
		t.Errorf("records after delete: %+v", recs)
	}
}

func TestExitCodes(t *testing.T) {
	p := startPod(t, false)
	ctx := ctxT(t, 30*time.Second)
	p.run(t, "one", "sh", "-c", "exit 1")
	p.run(t, "killed", "sleep", "1000")
	termLog := p.run(t, "term", "sh", "-c", "trap 'exit 7' TERM; echo trap-set; while true; do sleep 0.05; done")
	waitLogLine(t, termLog, "trap-set") // the trap is installed before the signal comes
	if err := p.c.Signal(ctx, "killed", syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if err := p.c.Signal(ctx, "term", syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id       string
		code     int
		signaled bool
		reason   string
	}{
		{"one", 1, false, shim.ReasonError},
		{"killed", 137, true, shim.ReasonError},
		{"term", 7, false, shim.ReasonError},
	} {
		st := p.wait(t, tc.id)
		if st.ExitCode != tc.code || st.Signaled != tc.signaled || st.OOMKilled || st.Reason != tc.reason {
			t.Errorf("%s: got %+v, want code %d signaled %v", tc.id, st, tc.code, tc.signaled)
		}
	}
	if err := p.c.Signal(ctx, "one", syscall.SIGTERM, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("signal stopped container: %v, want FailedPrecondition", err)
	}
	if _, err := p.c.State(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("state of unknown container: %v, want NotFound", err)
	}
	if err := p.c.Delete(ctx, "nope"); err != nil {
		t.Errorf("delete of unknown container: %v", err)
	}
	if _, err := p.c.Create(ctx, shim.CreateOptions{ID: "one", Spec: p.spec("one", "true"), Rootfs: rootfsDir}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("create duplicate: %v, want AlreadyExists", err)
	}
	if _, err := p.c.Create(ctx, shim.CreateOptions{ID: "bad/id", Spec: p.spec("x", "true"), Rootfs: rootfsDir}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("create bad id: %v, want InvalidArgument", err)
	}
	// The shim passes the spec on undecoded: the helper's verdict on it keeps its class, and
	// the refused container leaves nothing behind (the id is free again).
	noArgs := p.spec("noargs", "true")
	noArgs.Process.Args = nil
	if _, err := p.c.Create(ctx, shim.CreateOptions{ID: "noargs", Spec: noArgs, Rootfs: rootfsDir}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("create without process args: %v, want InvalidArgument", err)
	}
	if _, err := p.c.State(ctx, "noargs"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("state of the refused container: %v, want NotFound", err)
	}
}

func TestDeleteRunningAndCreated(t *testing.T) {
	p := startPod(t, false)
	ctx := ctxT(t, 30*time.Second)
	p.run(t, "running", "sleep", "1000")
	p.create(t, "created", p.spec("created", "sleep", "1000"), false)
	for _, id := range []string{"running", "created"} {
		st, _ := p.c.State(ctx, id)
		if err := p.c.Delete(ctx, id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
		if err := syscall.Kill(st.Pid, 0); err == nil {
			t.Errorf("%s: init %d still alive after delete", id, st.Pid)
		}
	}
	if err := p.c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(shim.SocketPath(p.stateDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after shutdown: %v", err)
	}
	waitGone(t, p.shimPid)
}

func TestShutdownRefusedWithContainers(t *testing.T) {
	p := startPod(t, false)
	p.run(t, "c", "sleep", "1000")
	if err := p.c.Shutdown(ctxT(t, 10*time.Second)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("shutdown with a container: %v, want FailedPrecondition", err)
	}
}

func TestExecSync(t *testing.T) {
	p := startPod(t, false)
	ctx := ctxT(t, 60*time.Second)
	p.run(t, "c", "sleep", "1000")
	p.run(t, "done", "true")
	p.wait(t, "done")

	for _, tc := range []struct {
		name     string
		opts     shim.ExecSyncOptions
		stdout   string
		stderr   string
		code     int
		timedOut bool
		maxTime  time.Duration
	}{
		{name: "echo", opts: shim.ExecSyncOptions{Args: []string{"echo", "hi"}}, stdout: "hi\n"},
		{name: "exit code and stderr", opts: shim.ExecSyncOptions{Args: []string{"sh", "-c", "echo e >&2; exit 3"}}, stderr: "e\n", code: 3},
		{name: "env cwd user", opts: shim.ExecSyncOptions{
			Args: []string{"sh", "-c", "echo $FOO $(pwd) $(id -u):$(id -g)"}, Env: []string{"FOO=bar", "PATH=/bin"}, Cwd: "/tmp",
			User: &specs.User{UID: 1000, GID: 3000},
		}, stdout: "bar /tmp 1000:3000\n"},
		{name: "missing command", opts: shim.ExecSyncOptions{Args: []string{"no-such-command"}}, code: 127},
		{name: "missing absolute path", opts: shim.ExecSyncOptions{Args: []string{"/no/such"}}, code: 127},
		{name: "timeout kills the tree", opts: shim.ExecSyncOptions{
			Args: []string{"sh", "-c", "sleep 100 & echo started; sleep 100"}, Timeout: 500 * time.Millisecond,
		}, stdout: "started\n", code: 137, timedOut: true, maxTime: 3 * time.Second},
		{name: "background child keeps stdout", opts: shim.ExecSyncOptions{
			Args: []string{"sh", "-c", "sleep 100 & echo bg"},
		}, stdout: "bg\n", maxTime: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, err := p.c.ExecSync(ctx, "c", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Stdout) != tc.stdout || res.ExitCode != tc.code || res.TimedOut != tc.timedOut {
				t.Errorf("got stdout %q stderr %q code %d timedOut %v", res.Stdout, res.Stderr, res.ExitCode, res.TimedOut)
			}
			if tc.stderr != "" && string(res.Stderr) != tc.stderr {
				t.Errorf("stderr %q, want %q", res.Stderr, tc.stderr)
			}
			if tc.maxTime > 0 && time.Since(start) > tc.maxTime {
				t.Errorf("took %v, want < %v", time.Since(start), tc.maxTime)
			}
		})
	}
	// The timed-out command's whole process group is gone; the container runs on.
	res, err := p.c.ExecSync(ctx, "c", shim.ExecSyncOptions{Args: []string{"sh", "-c", "ps -o stat,comm | grep -v '^Z' | grep -c sleep"}})
	if err != nil {
		t.Fatal(err)
	}
	// Left: the container's own sleep and the background sleep of the exec that was not
	// timed out (it is not ours to kill). The killed background sleep may linger as a zombie
	// of the container's init (sleep reaps nothing), so only live ones count.
	if n, _ := strconv.Atoi(strings.TrimSpace(string(res.Stdout))); n != 2 {
		t.Errorf("sleep processes left in the container: %q, want 2", res.Stdout)
	}
	if st, _ := p.c.State(ctx, "c"); st.Status != shim.StatusRunning {
		t.Errorf("container after exec timeout: %+v", st)
	}
	// Output larger than one call frame's limit (4 MiB) arrives whole.
	res, err = p.c.ExecSync(ctx, "c", shim.ExecSyncOptions{Args: []string{"head", "-c", "6000000", "/dev/zero"}})
	if err != nil || len(res.Stdout) != 6000000 || res.ExitCode != 0 {
		t.Errorf("large output: %d bytes, code %d, err %v", len(res.Stdout), res.ExitCode, err)
	}
	if _, err := p.c.ExecSync(ctx, "done", shim.ExecSyncOptions{Args: []string{"true"}}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("exec in stopped container: %v, want FailedPrecondition", err)
	}
	if _, err := p.c.ExecSync(ctx, "nope", shim.ExecSyncOptions{Args: []string{"true"}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("exec in unknown container: %v, want NotFound", err)
	}
}

func TestReopenLog(t *testing.T) {
	p := startPod(t, false)
	ctx := ctxT(t, 30*time.Second)
	logPath := p.run(t, "c", "sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.01; done")
	waitLogLine(t, logPath, "line 5")
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := p.c.ReopenLog(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	// The shim writes to the reopened file from here on: wait for a few lines there.
	for deadline := time.Now().Add(10 * time.Second); len(readLog(t, logPath)) < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no lines in the reopened %s within 10s", logPath)
		}
	}
	if err := p.c.Signal(ctx, "c", syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	p.wait(t, "c")
	if err := p.c.ReopenLog(ctx, "c"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("reopen log of stopped container: %v, want FailedPrecondition", err)
	}
	old, cur := readLog(t, rotated), readLog(t, logPath)
	if len(old) == 0 || len(cur) == 0 {
		t.Fatalf("entries before/after reopen: %d/%d", len(old), len(cur))
	}
	for i, e := range append(old, cur...) {
		if e.text != fmt.Sprintf("line %d", i) || e.partial || e.stream != "stdout" {
			t.Fatalf("entry %d is %+v: lost or repeated line around the reopen", i, e)
		}
	}
}

func TestTerminal(t *testing.T) {
	p := startPod(t, false)
	logPath := p.create(t, "tty", p.spec("tty", "sh", "-c", "echo out; echo err >&2; [ -t 1 ] && echo isatty"), true)
	if _, err := p.c.Start(ctxT(t, 10*time.Second), "tty"); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(t, "tty"); st.ExitCode != 0 {
		t.Fatalf("tty container: %+v", st)
	}
	var texts []string
	for _, e := range readLog(t, logPath) {
		if e.stream != "stdout" || e.partial {
			t.Errorf("tty entry %+v, want full stdout", e)
		}
		texts = append(texts, e.text)
	}
	if strings.Join(texts, ",") != "out,err,isatty" {
		t.Errorf("tty log %q", texts)
	}
}

func TestReconnectAndExitWhileDisconnected(t *testing.T) {
	requireShim(t)
	// Start the shim from a parent that exits at once: the shim must outlive it.
	dir := stateDir(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, "PEAPOD_SHIMTEST_BIN="+shimBin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	ctx := ctxT(t, 30*time.Second)
	c, err := client.Connect(ctx, shim.SocketPath(dir))
	if err != nil {
		t.Fatalf("connect after the parent exited: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{c: c, stateDir: dir, cgroup: shimtest.CgroupParent(t), logDir: t.TempDir(), shimPid: info.Pid}
	t.Cleanup(func() { p.stop(t) })

	p.run(t, "quick", "sh", "-c", "sleep 0.5; exit 5")
	p.run(t, "long", "sleep", "1000")
	c.Close()
	// The exit happens while no client is connected; the shim persists it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		recs, err := shim.ReadRecords(dir)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(recs, func(r shim.ContainerState) bool { return r.ID == "quick" && r.Status == shim.StatusStopped }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no persisted exit of quick within 10s: %+v", recs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	c, err = client.Connect(ctx, shim.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	p.c = c
	states, err := c.List(ctx)
	if err != nil || len(states) != 2 {
		t.Fatalf("list after reconnect: %+v, %v", states, err)
	}
	st, err := c.State(ctx, "quick")
	if err != nil || st.Status != shim.StatusStopped || st.ExitCode != 5 {
		t.Errorf("exit while disconnected: %+v, %v", st, err)
	}
	if st, _ := c.Wait(ctx, "quick"); st.ExitCode != 5 {
		t.Errorf("wait after the fact: %+v", st)
	}
	if st, _ := c.State(ctx, "long"); st.Status != shim.StatusRunning {
		t.Errorf("long after reconnect: %+v", st)
	}
}

func TestShimKilled(t *testing.T) {
	p := startPod(t, false)
	ctx := ctxT(t, 30*time.Second)
	p.run(t, "c", "sleep", "1000")
	p.run(t, "gone", "true")
	p.wait(t, "gone")
	st, _ := p.c.State(ctx, "c")

	waitErr := make(chan error, 1)
	go func() {
		_, err := p.c.Wait(ctx, "c")
		waitErr <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(p.shimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-waitErr; !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("pending wait when the shim dies: %v, want Unavailable", err)
	}
	if _, err := p.c.State(ctx, "c"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("call to a dead shim: %v, want Unavailable", err)
	}
	waitGone(t, p.shimPid)
	if _, err := client.Connect(ctx, shim.SocketPath(p.stateDir)); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("connect to a dead shim: %v, want Unavailable", err)
	}
	// What the dead shim persisted is still readable.
	recs, err := shim.ReadRecords(p.stateDir)
	if err != nil || len(recs) != 2 {
		t.Fatalf("records: %+v, %v", recs, err)
	}
	for _, r := range recs {
		if r.ID == "gone" && (r.Status != shim.StatusStopped || r.ExitCode != 0) {
			t.Errorf("record of gone: %+v", r)
		}
	}
	// The container survived its monitor; a new shim for the pod cleans it up on Delete.
	if err := syscall.Kill(st.Pid, 0); err != nil {
		t.Errorf("container init %d died with the shim: %v", st.Pid, err)
	}
	c, err := client.Start(ctx, client.StartOptions{Binary: shimBin, PodID: "again", StateDir: p.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	p.c.Close()
	p.c = c
	info, _ := c.Info(ctx)
	p.shimPid = info.Pid
	for _, id := range []string{"c", "gone"} {
		if err := c.Delete(ctx, id); err != nil {
			t.Errorf("delete %s left by the dead shim: %v", id, err)
		}
	}
	waitGone(t, st.Pid)
	if recs, _ := shim.ReadRecords(p.stateDir); len(recs) != 0 {
		t.Errorf("records after cleanup: %+v", recs)
	}
}

func TestSecondShimRefused(t *testing.T) {
	p := startPod(t, false)
	_, err := client.Start(ctxT(t, 20*time.Second), client.StartOptions{Binary: shimBin, PodID: "dup", StateDir: p.stateDir})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second shim for the pod: %v, want AlreadyExists", err)
	}
}

func TestPodPidNamespace(t *testing.T) {
	p := startPod(t, true)
	ctx := ctxT(t, 30*time.Second)
	info, err := p.c.Info(ctx)
	if err != nil || info.PidNamespace == "" || info.PidHolderPid == 0 {
		t.Fatalf("info: %+v, %v", info, err)
	}
	for _, id := range []string{"a", "b"} {
		spec := p.spec(id, "sleep", "1000")
		for i, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.PIDNamespace {
				spec.Linux.Namespaces[i].Path = info.PidNamespace
			}
		}
		p.create(t, id, spec, false)
		if _, err := p.c.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	res, err := p.c.ExecSync(ctx, "a", shim.ExecSyncOptions{Args: []string{"sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; ps -o comm | grep -c sleep"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Stdout); got != "peapod-shim pause 2\n" {
		t.Errorf("in the pod pid namespace: %q (want the holder as PID 1 and both containers' sleep)", got)
	}
	// Killing one container leaves the namespace and the other container alone.
	if err := p.c.Signal(ctx, "a", syscall.SIGKILL, true); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(t, "a"); st.ExitCode != 137 {
		t.Errorf("a: %+v", st)
	}
	if st, _ := p.c.State(ctx, "b"); st.Status != shim.StatusRunning {
		t.Errorf("b after a was killed: %+v", st)
	}
	// Stopping the shim stops the holder.
	p.stop(t)
	waitGone(t, info.PidHolderPid)
}

func TestOOMKilled(t *testing.T) {
	testutil.RequireCgroupV1(t)
	p := startPod(t, false)
	spec := p.spec("oom", "sh", "-c", "a=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
	limit := int64(32 << 20)
	spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
	p.create(t, "oom", spec, false)
	if _, err := p.c.Start(ctxT(t, 10*time.Second), "oom"); err != nil {
		t.Fatal(err)
	}
	st := p.wait(t, "oom")
	if !st.OOMKilled || st.Reason != shim.ReasonOOMKilled || st.ExitCode == 0 {
		t.Errorf("oom container: %+v", st)
	}
}

func TestStaleHolderKilled(t *testing.T) {
	p := startPod(t, true)
	ctx := ctxT(t, 30*time.Second)
	info, err := p.c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.shimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, p.shimPid)
	if err := syscall.Kill(info.PidHolderPid, 0); err != nil {
		t.Fatalf("holder died with its shim: %v", err)
	}
	c, err := client.Start(ctx, client.StartOptions{Binary: shimBin, PodID: "again", StateDir: p.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	p.c.Close()
	p.c = c
	next, _ := c.Info(ctx)
	p.shimPid = next.Pid
	waitGone(t, info.PidHolderPid)
}

// BenchmarkLifecycle measures Create, Start, and Delete of a running container (SIGKILL,
// reap, persist, destroy) through the Client.
func BenchmarkLifecycle(b *testing.B) {
	requireShim(b)
	p := startPod(b, false)
	ctx := context.Background()
	var create, start, del time.Duration
	for i := range b.N {
		id := fmt.Sprintf("b%d", i)
		t0 := time.Now()
		if _, err := p.c.Create(ctx, shim.CreateOptions{ID: id, Spec: p.spec(id, "sleep", "1000"), Rootfs: rootfsDir}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := p.c.Start(ctx, id); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := p.c.Delete(ctx, id); err != nil {
			b.Fatal(err)
		}
		create, start, del = create+t1.Sub(t0), start+t2.Sub(t1), del+time.Since(t2)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64((create/n).Microseconds())/1000, "create-ms")
	b.ReportMetric(float64((start/n).Microseconds())/1000, "start-ms")
	b.ReportMetric(float64((del/n).Microseconds())/1000, "stop+delete-ms")
}

// sleeper creates and starts container id running sleep 1000 in p.
func (p *pod) sleeper(tb testing.TB, id string) {
	tb.Helper()
	ctx := context.Background()
	if _, err := p.c.Create(ctx, shim.CreateOptions{ID: id, Spec: p.spec(id, "sleep", "1000"), Rootfs: rootfsDir}); err != nil {
		tb.Fatal(err)
	}
	if _, err := p.c.Start(ctx, id); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkExecSync measures an ExecSync of `true` in a running container.
func BenchmarkExecSync(b *testing.B) {
	requireShim(b)
	p := startPod(b, false)
	ctx := context.Background()
	p.sleeper(b, "c")
	b.ResetTimer()
	for range b.N {
		if res, err := p.c.ExecSync(ctx, "c", shim.ExecSyncOptions{Args: []string{"true"}}); err != nil || res.ExitCode != 0 {
			b.Fatal(res, err)
		}
	}
}

// TestSigtermLeavesContainers: a shim stopped by a signal removes its socket and exits, and
// leaves its containers (and the pod's PID namespace) running, like a killed one; the next
// shim of the pod cleans up.
func TestSigtermLeavesContainers(t *testing.T) {
	p := startPod(t, true)
	ctx := ctxT(t, 30*time.Second)
	info, err := p.c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec := p.spec("c", "sleep", "1000")
	spec.Linux.Namespaces[1] = specs.LinuxNamespace{Type: specs.PIDNamespace, Path: info.PidNamespace}
	p.create(t, "c", spec, false)
	if _, err := p.c.Start(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	st, _ := p.c.State(ctx, "c")
	if err := syscall.Kill(p.shimPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitGone(t, p.shimPid)
	if _, err := os.Stat(shim.SocketPath(p.stateDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after SIGTERM: %v", err)
	}
	for _, pid := range []int{st.Pid, info.PidHolderPid} {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("process %d did not survive its shim's SIGTERM: %v", pid, err)
		}
	}
	c, err := client.Start(ctx, client.StartOptions{Binary: shimBin, PodID: "again", StateDir: p.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	p.c.Close()
	p.c = c
	next, _ := c.Info(ctx)
	p.shimPid = next.Pid
	if err := c.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, info.PidHolderPid)
	waitGone(t, st.Pid)
}

// TestShimIsLeanOnceIdle: the shim starts with one P whatever the daemon's environment says,
// and once its containers run and it is idle, no libcontainer helper is left beside them:
// the pod costs the shim alone.
func TestShimIsLeanOnceIdle(t *testing.T) {
	t.Setenv("GOMAXPROCS", "2")
	p := startPod(t, false)
	p.run(t, "c", "sleep", "1000")
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.shimPid))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range strings.Split(string(environ), "\x00") {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			got = append(got, kv)
		}
	}
	if len(got) != 1 || got[0] != "GOMAXPROCS=1" {
		t.Errorf("shim environment has %q, want [GOMAXPROCS=1]", got)
	}
	st, err := p.c.State(ctxT(t, 5*time.Second), "c")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var helpers []string
		// Children are listed per thread: a Go process starts them from any.
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p.shimPid))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of the shim: %v", err)
		}
		var kids []string
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			kids = append(kids, strings.Fields(string(b))...)
		}
		seen := false
		for _, k := range kids {
			if k == strconv.Itoa(st.Pid) {
				seen = true
				continue
			}
			cmdline, _ := os.ReadFile("/proc/" + k + "/cmdline")
			helpers = append(helpers, k+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
		// The init is the shim's child once the helper that created it has exited.
		if seen && len(helpers) == 0 {
			break
		}
		if time.Now().After(deadline) {
			if !seen {
				t.Fatalf("the container's init %d is not a child of the shim after 5s (children %q)", st.Pid, kids)
			}
			t.Fatalf("shim children besides the container's init after 5s idle: %q", helpers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShimCostPerContainer: what a running container costs the idle shim in goroutines (its
// exit's monitor and one output copier per stream, nothing that only waits for them), and
// what the shim costs once a burst of calls is over: its threads, and its private memory,
// shed by re-executing itself 1s after the burst (shim/server's reexec_linux.go).
func TestShimCostPerContainer(t *testing.T) {
	p := startPod(t, false)
	goroutines := func() int {
		time.Sleep(100 * time.Millisecond)
		info, err := p.c.Info(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return info.Goroutines
	}
	p.run(t, "a", "sleep", "1000")
	one := goroutines()

	p.run(t, "b", "sleep", "1000")
	if two := goroutines(); two-one > 3 {
		t.Errorf("a second running container costs the shim %d goroutines (%d -> %d), want at most 3", two-one, one, two)
	}
	// A burst: execs with output, as a probe or kubectl exec would.
	for i := range 20 {
		res, err := p.c.ExecSync(ctxT(t, 10*time.Second), "a", shim.ExecSyncOptions{Args: []string{"sh", "-c", "seq 1 5000"}})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("exec %d: %v (exit %d)", i, err, res.ExitCode)
		}
	}
	// The shim re-executes 1s after the last call; Info is a call too, so read /proc only.
	waitReexecs(t, p, 1)
	time.Sleep(100 * time.Millisecond)
	threads, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.shimPid))
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) > maxShimThreads {
		t.Errorf("idle shim has %d threads, want at most %d", len(threads), maxShimThreads)
	}
	// Anonymous memory only: the pages of a binary just built count as dirty too.
	anon := smapsRollup(t, p.shimPid, "Pss_Anon")
	t.Logf("idle shim: %d threads, %d KiB anonymous", len(threads), anon)
	if anon > maxShimAnonKiB {
		t.Errorf("idle shim with two containers has %d KiB of anonymous memory, want at most %d", anon, maxShimAnonKiB)
	}
}

// The idle shim's bounds, measured with two running containers after a burst of execs and the
// re-exec that follows: 5 threads (main, sysmon, the poller, spares left by blocking
// syscalls) and 1.0 MiB of anonymous memory. Before shims re-executed, the same shim kept
// 7 threads and 2.3 MiB: the Go runtime's leftovers of the burst (spans with a few live
// objects each, its sets of spans per size class, idle threads), kept for reuse.
const (
	maxShimThreads = 7
	maxShimAnonKiB = 1280
)

// smapsRollup reads one field (in KiB) of /proc/<pid>/smaps_rollup.
func smapsRollup(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("smaps_rollup %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in smaps_rollup of %d", field, pid)
	return 0
}

// TestPrepareStartsHelper: no libcontainer helper is kept warm after a create (one starting
// beside the Start that follows slowed it down); the daemon's Prepare, sent before a create,
// starts one, which warms its caches while it waits (--warm). (A lean shim's: a first stage
// has no helpers, see TestFirstStage.)
func TestPrepareStartsHelper(t *testing.T) {
	p := startPodAs(t, false, "")
	p.run(t, "a", "sleep", "1000")
	// The helper that created the container exits after its answer; none may wait beside it
	// (a warm one would wait helperIdle, 500ms).
	deadline := time.Now().Add(300 * time.Millisecond)
	for n := len(shimHelpers(t, p.shimPid)); n > 0; n = len(shimHelpers(t, p.shimPid)) {
		if time.Now().After(deadline) {
			t.Fatalf("%d libcontainer helpers beside the shim 300ms after a create: %q", n, shimHelpers(t, p.shimPid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.c.Prepare(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// A process's children files are not reliable while it runs (proc(5)): on a loaded node
	// the helper Prepare started was once not listed when Prepare answered.
	h := shimHelpers(t, p.shimPid)
	for deadline := time.Now().Add(2 * time.Second); len(h) == 0 && time.Now().Before(deadline); h = shimHelpers(t, p.shimPid) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(h) != 1 || !strings.HasSuffix(h[0], " --warm") {
		t.Fatalf("after Prepare the shim has helpers %q, want one started ahead of use (--warm)", h)
	}
	// The create uses it; the pod's second container runs as the first did.
	p.run(t, "b", "sleep", "1000")
}

// TestFirstStage: a shim started as its first stage (peapod-shim-runc serve) creates and
// execs in its own process, with no helper, then re-executes into the lean peapod-shim (same
// pid), whose creates and execs go through helpers; containers of both run on.
func TestFirstStage(t *testing.T) {
	p := startPod(t, false)
	if exe := shimExe(t, p.shimPid); filepath.Base(exe) != "peapod-shim-runc" {
		t.Fatalf("the shim runs %s, want the first stage peapod-shim-runc", exe)
	}
	p.run(t, "a", "sleep", "1000")
	res, err := p.c.ExecSync(ctxT(t, 10*time.Second), "a", shim.ExecSyncOptions{Args: []string{"echo", "first"}})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "first" {
		t.Fatalf("exec in the first stage: %q, %v", res.Stdout, err)
	}
	if h := shimHelpers(t, p.shimPid); len(h) != 0 {
		t.Fatalf("the first stage started helpers %q", h)
	}
	if got := reexecs(t, p); got != 0 {
		t.Fatalf("%d re-execs before the first stage was idle", got)
	}
	waitReexecs(t, p, 1)
	if exe := shimExe(t, p.shimPid); exe != shimBin {
		t.Fatalf("after its re-exec the shim runs %s, want %s", exe, shimBin)
	}
	info, err := p.c.Info(ctxT(t, 5*time.Second))
	if err != nil || info.Pid != p.shimPid {
		t.Fatalf("info after the re-exec: %+v, %v (pid was %d)", info, err, p.shimPid)
	}
	if st, err := p.c.State(ctxT(t, 5*time.Second), "a"); err != nil || st.Status != shim.StatusRunning {
		t.Fatalf("the first stage's container after the re-exec: %+v, %v", st, err)
	}
	res, err = p.c.ExecSync(ctxT(t, 10*time.Second), "a", shim.ExecSyncOptions{Args: []string{"echo", "lean"}})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "lean" {
		t.Fatalf("exec in the lean shim: %q, %v", res.Stdout, err)
	}
	p.run(t, "b", "sh", "-c", "exit 4")
	if st := p.wait(t, "b"); st.ExitCode != 4 {
		t.Fatalf("container created by the lean shim: %+v", st)
	}
	if err := p.c.Signal(ctxT(t, 5*time.Second), "a", syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(t, "a"); st.ExitCode != 137 {
		t.Fatalf("the first stage's container killed by the lean shim: %+v", st)
	}
}

// shimExe is the binary the shim process runs.
func shimExe(t *testing.T, pid int) string {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// shimHelpers lists the shim's children that are libcontainer helpers, as "pid cmdline".
func shimHelpers(t *testing.T, shimPid int) []string {
	t.Helper()
	// Children are listed per thread: a Go process starts them from any.
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", shimPid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of the shim: %v", err)
	}
	var out []string
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, k := range strings.Fields(string(b)) {
			cmdline, _ := os.ReadFile("/proc/" + k + "/cmdline")
			args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
			if len(args) > 1 && args[1] == "helper" {
				out = append(out, k+" "+strings.Join(args, " "))
			}
		}
	}
	return out
}
