package framework

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The framework's own tests re-execute the test binary as a stand-in daemon, so the process
// handling (start, readiness, stop, restart, kill, exit reporting, cleanup) is tested without
// bin/peapod.
const fakeDaemonEnv = "PEAPOD_FRAMEWORK_FAKE_DAEMON"

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(fakeDaemonEnv); ok {
		os.Exit(fakeDaemon(mode))
	}
	os.Exit(m.Run())
}

type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "fake", RuntimeVersion: "0", RuntimeApiVersion: "v1"}, nil
}

type fakeImages struct {
	runtimeapi.UnimplementedImageServiceServer
}

func (fakeImages) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}

// fakeDaemon behaves like peapod's process contract: flags, a CRI socket, SIGTERM → remove
// the socket and exit. mode "refuse" exits 3 at once; "term-exit-2" exits 2 on SIGTERM.
func fakeDaemon(mode string) int {
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	listen := fs.String("listen", "", "")
	fs.String("config", "", "")
	fs.String("root", "", "")
	fs.String("state", "", "")
	fs.String("log-level", "", "")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if mode == "refuse" {
		fmt.Fprintln(os.Stderr, `{"level":"error","msg":"root is locked","holder_pid":4242}`)
		return 3
	}
	_ = os.Remove(*listen) // stale after a SIGKILL
	ln, err := net.Listen("unix", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, fakeRuntime{})
	runtimeapi.RegisterImageServiceServer(srv, fakeImages{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		srv.GracefulStop()
	}()
	fmt.Fprintln(os.Stderr, "fake daemon serving")
	_ = srv.Serve(ln)
	_ = os.Remove(*listen)
	if mode == "term-exit-2" {
		return 2
	}
	return 0
}

func fakeDaemonOpts(mode string) []DaemonOption {
	return []DaemonOption{
		WithBinary(os.Args[0]),
		WithEnv(fakeDaemonEnv + "=" + mode),
		WithRegistry(&Registry{host: "127.0.0.1:5000"}),
		WithStartTimeout(20 * time.Second),
	}
}

func TestDaemonLifecycle(t *testing.T) {
	d := NewTestDaemon(t, fakeDaemonOpts("serve")...)
	if d.Running() || d.PID() != 0 {
		t.Fatalf("running before Start")
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	pid := d.PID()
	if pid == 0 || !d.Running() {
		t.Fatalf("not running after Start")
	}
	c, err := d.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Runtime.Version(Context(t), "")
	if err != nil || v.RuntimeName != "fake" {
		t.Fatalf("Version = %v, %v", v, err)
	}
	_ = c.Close()
	if err := d.Start(t.Context()); err == nil {
		t.Errorf("second Start succeeded")
	}

	if err := d.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d.PID() == pid || d.PID() == 0 {
		t.Errorf("pid %d after restart (was %d)", d.PID(), pid)
	}
	if got := strings.Count(d.Stderr(), "fake daemon serving"); got != 2 {
		t.Errorf("output holds %d runs, want 2:\n%s", got, d.Stderr())
	}

	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	if d.Running() {
		t.Fatal("running after Kill")
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatalf("start after kill (stale socket): %v", err)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(d.Socket()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after SIGTERM: %v", err)
	}
	if !strings.HasPrefix(d.Dir(), "/tmp/pp-") || len(d.State())+80 > 107 {
		t.Errorf("paths too long for per-pod sockets: state %s", d.State())
	}
}

func TestDaemonExitBeforeReady(t *testing.T) {
	d := NewTestDaemon(t, fakeDaemonOpts("refuse")...)
	start := time.Now()
	err := d.Start(t.Context())
	var ee *ExitedError
	if !errors.As(err, &ee) {
		t.Fatalf("Start = %v, want *ExitedError", err)
	}
	if ee.ExitCode != 3 || !ee.BeforeReady || !strings.Contains(ee.Output, "4242") {
		t.Errorf("ExitedError = %+v", ee)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %s to notice the exit", time.Since(start))
	}
}

func TestDaemonStopReportsExitStatus(t *testing.T) {
	d := NewTestDaemon(t, fakeDaemonOpts("term-exit-2")...)
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	err := d.Stop()
	var ee *ExitedError
	if !errors.As(err, &ee) || ee.ExitCode != 2 || ee.BeforeReady {
		t.Fatalf("Stop = %v, want exit status 2", err)
	}
}

func TestDaemonConfig(t *testing.T) {
	d, err := NewDaemon(
		WithBinary("/bin/true"),
		WithRegistry(&Registry{host: "127.0.0.1:5000"}),
		WithConfig("pinned_images = [\"x\"]\n[network]\nconf_dir = \"/elsewhere\"\n"),
		WithConfig("log_level = \"warn\"\n"),
		WithArgs("--extra"),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var cfg struct {
		Root, State, Listen string
		LogLevel            string   `toml:"log_level"`
		CgroupDriver        string   `toml:"cgroup_driver"`
		PinnedImages        []string `toml:"pinned_images"`
		Network             struct {
			ConfDir string   `toml:"conf_dir"`
			BinDirs []string `toml:"bin_dirs"`
		}
		Streaming  struct{ Address string }
		Registries map[string]struct {
			Mirrors  []string
			Insecure bool
		}
	}
	raw, err := os.ReadFile(d.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := toml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Network.ConfDir != "/elsewhere" || len(cfg.Network.BinDirs) != 1 || !strings.HasSuffix(cfg.Network.BinDirs[0], "/bin/cni") {
		t.Errorf("network = %+v\n%s", cfg.Network, raw)
	}
	if cfg.Root != d.Root() || cfg.State != d.State() || cfg.Listen != d.Socket() {
		t.Errorf("paths = %s %s %s", cfg.Root, cfg.State, cfg.Listen)
	}
	if cfg.LogLevel != "warn" || cfg.CgroupDriver != "cgroupfs" || len(cfg.PinnedImages) != 1 || cfg.Streaming.Address != "127.0.0.1:0" {
		t.Errorf("config = %+v\n%s", cfg, raw)
	}
	if m := cfg.Registries["registry.k8s.io"].Mirrors; len(m) != 1 || m[0] != "http://127.0.0.1:5000" {
		t.Errorf("mirrors = %v\n%s", m, raw)
	}
	args := strings.Join(d.Args(), " ")
	for _, want := range []string{"--config " + d.ConfigPath(), "--root " + d.Root(), "--state " + d.State(), "--listen " + d.Socket(), "--log-level debug", "--extra"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
}

func TestDaemonCloseCleansUp(t *testing.T) {
	requireRoot(t)
	d, err := NewDaemon(WithBinary("/bin/true"))
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(d.Dir(), "run", "mnt")
	if err := os.MkdirAll(filepath.Join(mnt, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", filepath.Join(mnt, "inner"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	// A left-behind process, as a shim would be: it mentions the directory on its command line.
	stray := exec.Command("/bin/sh", "-c", "sleep 60", d.Dir())
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	strayDone := make(chan struct{})
	go func() { _ = stray.Wait(); close(strayDone) }()

	mounts, err := MountsUnder(d.Dir())
	if err != nil || len(mounts) != 2 || !strings.HasSuffix(mounts[0], "/inner") {
		t.Fatalf("MountsUnder = %v, %v", mounts, err)
	}
	err = d.Close()
	if err == nil || !strings.Contains(err.Error(), "left behind") {
		t.Errorf("Close = %v, want a report of the stray process", err)
	}
	select {
	case <-strayDone:
	case <-time.After(5 * time.Second):
		t.Errorf("stray process survived Close")
	}
	if _, err := os.Stat(d.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir remains: %v", err)
	}
}

func TestMentionsPath(t *testing.T) {
	cases := []struct {
		s, dir string
		want   bool
	}{
		{"peapod\x00--root\x00/tmp/pp-1/root\x00", "/tmp/pp-1", true},
		{"peapod\x00--root\x00/tmp/pp-12/root\x00", "/tmp/pp-1", false},
		{"x\x00/tmp/pp-1", "/tmp/pp-1", true},
		{"x\x00--state=/tmp/pp-1\x00", "/tmp/pp-1", true},
	}
	for _, tc := range cases {
		if got := mentionsPath(tc.s, tc.dir); got != tc.want {
			t.Errorf("mentionsPath(%q, %q) = %v", tc.s, tc.dir, got)
		}
	}
}

func TestProcHelpers(t *testing.T) {
	pid := os.Getpid()
	rss, err := ProcessRSS(pid)
	if err != nil || rss <= 0 {
		t.Errorf("ProcessRSS = %d, %v", rss, err)
	}
	if _, err := ProcessPSS(pid); err != nil {
		t.Errorf("ProcessPSS: %v", err)
	}
	if n, err := ProcessThreads(pid); err != nil || n < 1 {
		t.Errorf("ProcessThreads = %d, %v", n, err)
	}
	fds, err := ProcessFDs(pid)
	if err != nil || len(fds) < 3 {
		t.Errorf("ProcessFDs = %v, %v", fds, err)
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	kids, err := ChildPIDs(pid)
	found := false
	for _, k := range kids {
		found = found || k == cmd.Process.Pid
	}
	if err != nil || !found {
		t.Errorf("ChildPIDs = %v, %v; want %d among them", kids, err, cmd.Process.Pid)
	}
}

// TestKillProcessesReferencingTakesDescendants: a process that names the directory is killed
// with its descendants, which name neither it nor a cwd under it (a shim's PID holder and
// containers), so none is left to init once its parent dies.
func TestKillProcessesReferencingTakesDescendants(t *testing.T) {
	dir := t.TempDir()
	// sh (naming dir as its $0) starts a sleep in its own session, then waits.
	cmd := exec.Command("sh", "-c", "setsid sleep 300 & echo $!; wait", dir)
	cmd.Dir = "/"
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	if _, err := fmt.Fscan(out, &child); err != nil {
		t.Fatalf("read the child's pid: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	killed, err := KillProcessesReferencing(dir)
	if err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	var pids []int
	for _, p := range killed {
		pids = append(pids, p.PID)
	}
	if len(pids) != 2 || pids[0] != cmd.Process.Pid || pids[1] != child {
		t.Errorf("killed %v, want [%d %d] (the shell, then its child)", pids, cmd.Process.Pid, child)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil {
		if st, err := ProcessStatus(child); err != nil || strings.HasPrefix(st["State"], "Z") {
			break // a zombie waiting for init's reaping is gone enough
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d still alive after KillProcessesReferencing", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
