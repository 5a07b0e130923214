package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	defaultStartTimeout = 60 * time.Second
	defaultStopTimeout  = 30 * time.Second
)

type daemonOptions struct {
	bin          string
	registry     *Registry
	extraConfig  []string
	rawConfig    *string
	onlyConfig   bool
	args         []string
	env          []string
	root, state  string
	socket       string
	logLevel     string
	output       io.Writer
	startTimeout time.Duration
	stopTimeout  time.Duration
}

// DaemonOption configures NewDaemon, NewTestDaemon and StartDaemon.
type DaemonOption func(*daemonOptions)

// WithBinary runs the peapod binary at path instead of <repo>/bin/peapod.
func WithBinary(path string) DaemonOption { return func(o *daemonOptions) { o.bin = path } }

// WithRegistry adds r's mirror configuration (Registry.MirrorConfig) to the daemon's config.
// StartDaemon and NewTestDaemon use the suite's shared registry when this is not given.
func WithRegistry(r *Registry) DaemonOption { return func(o *daemonOptions) { o.registry = r } }

// WithConfig merges the TOML document doc over the generated config: tables merge key by key,
// other values replace. Several WithConfig apply in order.
func WithConfig(doc string) DaemonOption {
	return func(o *daemonOptions) { o.extraConfig = append(o.extraConfig, doc) }
}

// WithRawConfig writes doc verbatim as the config file, replacing the generated one (for
// tests of config errors). The --root, --state, --listen and --log-level flags are still
// passed unless WithOnlyConfigFlag is given too.
func WithRawConfig(doc string) DaemonOption { return func(o *daemonOptions) { o.rawConfig = &doc } }

// WithOnlyConfigFlag passes only --config FILE (plus WithArgs), so the daemon takes root,
// state, listen and log level from the config file alone.
func WithOnlyConfigFlag() DaemonOption { return func(o *daemonOptions) { o.onlyConfig = true } }

// WithArgs appends args to the daemon's command line.
func WithArgs(args ...string) DaemonOption {
	return func(o *daemonOptions) { o.args = append(o.args, args...) }
}

// WithEnv adds KEY=VALUE entries to the daemon's environment (which is otherwise the test
// process's).
func WithEnv(kv ...string) DaemonOption {
	return func(o *daemonOptions) { o.env = append(o.env, kv...) }
}

// WithRoot uses dir as the daemon's root instead of a fresh one (e.g. another daemon's root).
// The framework never removes a root it did not create.
func WithRoot(dir string) DaemonOption { return func(o *daemonOptions) { o.root = dir } }

// WithState uses dir as the daemon's state directory instead of a fresh one.
func WithState(dir string) DaemonOption { return func(o *daemonOptions) { o.state = dir } }

// WithSocket makes the daemon listen on path instead of <tmpdir>/peapod.sock.
func WithSocket(path string) DaemonOption { return func(o *daemonOptions) { o.socket = path } }

// WithLogLevel sets --log-level and log_level (default "debug").
func WithLogLevel(level string) DaemonOption { return func(o *daemonOptions) { o.logLevel = level } }

// WithOutput copies the daemon's stdout and stderr to w as well as capturing them.
func WithOutput(w io.Writer) DaemonOption { return func(o *daemonOptions) { o.output = w } }

// WithStartTimeout bounds how long Start waits for Version to answer (default 60s).
func WithStartTimeout(d time.Duration) DaemonOption {
	return func(o *daemonOptions) { o.startTimeout = d }
}

// WithStopTimeout bounds how long Stop waits after SIGTERM before SIGKILL (default 30s).
func WithStopTimeout(d time.Duration) DaemonOption {
	return func(o *daemonOptions) { o.stopTimeout = d }
}

// ExitedError reports a daemon that exited with a non-zero status or by a signal, or that
// exited before it answered Version.
type ExitedError struct {
	// ExitCode is the exit status, or -1 when a signal ended the process.
	ExitCode int
	// Signal is the signal that ended it, if any.
	Signal syscall.Signal
	// Output is what the daemon wrote to stdout and stderr during that run.
	Output string
	// BeforeReady is true when the daemon exited while Start was waiting for it.
	BeforeReady bool
}

func (e *ExitedError) Error() string {
	what := "peapod exited with status " + strconv.Itoa(e.ExitCode)
	if e.Signal != 0 {
		what = "peapod was killed by " + e.Signal.String()
	}
	if e.BeforeReady {
		what += " before it answered Version"
	}
	return what + "; output:\n" + tail(e.Output, 4000)
}

// Daemon is a peapod process in a throwaway root, state directory and socket under
// /tmp/pp-*. Its methods are safe for concurrent use.
type Daemon struct {
	opts       daemonOptions
	dir        string
	root       string
	state      string
	socket     string
	configPath string
	cniConfDir string
	args       []string
	out        *LockedBuffer

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	exitErr  error         // cmd.Wait's error, valid once exited is closed
	runStart int           // offset into out where this run's output starts
	observed bool          // the caller saw the last exit (Stop, Kill, Wait, failed Start)
}

// NewDaemon prepares a daemon: temporary directories, CNI config dir and config file. It
// starts nothing; call Start, and Close when done.
func NewDaemon(opts ...DaemonOption) (*Daemon, error) {
	o := daemonOptions{logLevel: "debug", startTimeout: defaultStartTimeout, stopTimeout: defaultStopTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	repo, repoErr := RepoRoot()
	if o.bin == "" {
		if repoErr != nil {
			return nil, fmt.Errorf("find bin/peapod: %w", repoErr)
		}
		o.bin = filepath.Join(repo, "bin", "peapod")
	}
	if _, err := os.Stat(o.bin); err != nil {
		return nil, fmt.Errorf("peapod binary %s: %w (run `make build`, or pass -peapod-bin)", o.bin, err)
	}
	// Short paths: a unix socket path has at most 107 bytes, and the daemon puts
	// per-pod sockets named by 64-hex ids under its state directory.
	dir, err := os.MkdirTemp("/tmp", "pp-")
	if err != nil {
		return nil, fmt.Errorf("make daemon dir: %w", err)
	}
	// Searchable by all, as /var/lib is: the root of a pod's user namespace (an unmapped
	// host id) must reach its container's rootfs below it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("make daemon dir: %w", err)
	}
	d := &Daemon{
		opts:       o,
		dir:        dir,
		root:       o.root,
		state:      o.state,
		socket:     o.socket,
		configPath: filepath.Join(dir, "peapod.toml"),
		cniConfDir: filepath.Join(dir, "cni"),
		out:        &LockedBuffer{},
		observed:   true,
	}
	if d.root == "" {
		d.root = filepath.Join(dir, "root")
	}
	if d.state == "" {
		d.state = filepath.Join(dir, "run")
	}
	if d.socket == "" {
		d.socket = filepath.Join(dir, "peapod.sock")
	}
	if err := os.Mkdir(d.cniConfDir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("make cni conf dir: %w", err)
	}
	cniBin := "/opt/cni/bin"
	if repoErr == nil {
		cniBin = filepath.Join(repo, "bin", "cni")
	}
	var conf []byte
	if o.rawConfig != nil {
		conf = []byte(*o.rawConfig)
	} else {
		conf, err = d.generateConfig(cniBin)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.WriteFile(d.configPath, conf, 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("write daemon config: %w", err)
	}
	d.args = []string{"--config", d.configPath}
	if !o.onlyConfig {
		d.args = append(d.args, "--root", d.root, "--state", d.state, "--listen", d.socket, "--log-level", o.logLevel)
	}
	d.args = append(d.args, o.args...)
	return d, nil
}

func (d *Daemon) generateConfig(cniBin string) ([]byte, error) {
	cfg := map[string]any{
		"root":          d.root,
		"state":         d.state,
		"listen":        d.socket,
		"log_level":     d.opts.logLevel,
		"cgroup_driver": "cgroupfs",
		"network": map[string]any{
			"conf_dir": d.cniConfDir,
			"bin_dirs": []any{cniBin},
		},
		"streaming": map[string]any{"address": "127.0.0.1:0"},
		"debug":     map[string]any{"address": d.DebugSocket()},
	}
	docs := d.opts.extraConfig
	if d.opts.registry != nil {
		docs = append([]string{d.opts.registry.MirrorConfig()}, docs...)
	}
	for _, doc := range docs {
		var extra map[string]any
		if err := toml.Unmarshal([]byte(doc), &extra); err != nil {
			return nil, fmt.Errorf("extra daemon config: %w", err)
		}
		mergeTOML(cfg, extra)
	}
	out, err := toml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode daemon config: %w", err)
	}
	return out, nil
}

// mergeTOML merges src into dst: tables recursively, anything else replaced.
func mergeTOML(dst, src map[string]any) {
	for k, v := range src {
		sv, sIsMap := v.(map[string]any)
		dv, dIsMap := dst[k].(map[string]any)
		if sIsMap && dIsMap {
			mergeTOML(dv, sv)
			continue
		}
		dst[k] = v
	}
}

// NewTestDaemon is NewDaemon for tests, not started: it adds the suite's -peapod-bin, shared
// registry (unless WithRegistry or WithRawConfig is given) and -daemon-output, fails t on
// error, and in t.Cleanup stops the daemon (failing t unless it exits 0), logs its output if t
// failed, and removes everything it created.
func NewTestDaemon(t testing.TB, opts ...DaemonOption) *Daemon {
	t.Helper()
	var probe daemonOptions
	for _, opt := range opts {
		opt(&probe)
	}
	var pre []DaemonOption
	if bin := suiteFlags().peapodBin; bin != "" {
		pre = append(pre, WithBinary(bin))
	}
	if suiteFlags().daemonOutput {
		pre = append(pre, WithOutput(os.Stderr))
	}
	if probe.registry == nil && probe.rawConfig == nil {
		pre = append(pre, WithRegistry(SharedRegistry(t)))
	}
	d, err := NewDaemon(append(pre, opts...)...)
	if err != nil {
		t.Fatalf("prepare peapod: %v", err)
	}
	t.Cleanup(func() {
		if err := d.stopForCleanup(); err != nil {
			t.Errorf("peapod at %s: %v", d.dir, err)
		}
		if t.Failed() {
			t.Logf("peapod output (%s):\n%s", d.dir, tail(d.Stderr(), 64*1024))
		}
		if err := d.Close(); err != nil {
			t.Errorf("clean up peapod at %s: %v", d.dir, err)
		}
	})
	return d
}

// StartDaemon is NewTestDaemon plus Start: it returns once the daemon answers Version.
func StartDaemon(t testing.TB, opts ...DaemonOption) *Daemon {
	t.Helper()
	d := NewTestDaemon(t, opts...)
	if err := d.Start(t.Context()); err != nil {
		t.Fatalf("start peapod: %v", err)
	}
	return d
}

// LaunchDaemon is NewDaemon plus Start, for programs; the caller must Close the daemon.
func LaunchDaemon(ctx context.Context, opts ...DaemonOption) (*Daemon, error) {
	d, err := NewDaemon(opts...)
	if err != nil {
		return nil, err
	}
	if err := d.Start(ctx); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	return d, nil
}

// Start runs the daemon and waits until Version answers on its socket. If the process exits
// first, the error is an *ExitedError with BeforeReady set and the run's output.
func (d *Daemon) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.cmd != nil && !isClosed(d.exited) {
		d.mu.Unlock()
		return fmt.Errorf("peapod already running as pid %d", d.cmd.Process.Pid)
	}
	if d.cmd != nil {
		fmt.Fprintf(d.out, "\n----- peapod restarted (%s) -----\n", time.Now().Format(time.RFC3339Nano))
	}
	var w io.Writer = d.out
	if d.opts.output != nil {
		w = io.MultiWriter(d.out, d.opts.output)
	}
	cmd := exec.Command(d.opts.bin, d.args...)
	cmd.Stdout, cmd.Stderr = w, w
	if len(d.opts.env) > 0 {
		cmd.Env = append(os.Environ(), d.opts.env...)
	}
	// Own process group: a ^C on the test's terminal must not reach the daemon directly.
	// Pdeathsig: a test binary that dies (timeout panic) takes its daemon along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	d.runStart = d.out.Len()
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("start %s: %w", d.opts.bin, err)
	}
	exited := make(chan struct{})
	d.cmd, d.exited, d.exitErr, d.observed = cmd, exited, nil, false
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		if d.cmd == cmd {
			d.exitErr = err
		}
		d.mu.Unlock()
		close(exited)
	}()

	if err := d.waitReady(ctx, exited); err != nil {
		var ee *ExitedError
		if !errors.As(err, &ee) {
			_ = d.Kill()
		}
		d.mu.Lock()
		d.observed = true
		d.mu.Unlock()
		return err
	}
	return nil
}

func (d *Daemon) waitReady(ctx context.Context, exited chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.startTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-exited:
			return d.exitedError(true)
		case <-ctx.Done():
			return fmt.Errorf("peapod did not answer Version on %s (last error: %v): %w; output:\n%s",
				d.socket, lastErr, ctx.Err(), tail(d.runOutput(), 4000))
		case <-tick.C:
		}
		if lastErr = probeVersion(ctx, d.socket); lastErr == nil {
			return nil
		}
	}
}

// probeVersion answers nil when a CRI Version call on socket succeeds. It dials first so a
// missing or stale socket costs no gRPC backoff.
func probeVersion(ctx context.Context, socket string) error {
	c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", socket)
	if err != nil {
		return err
	}
	_ = c.Close()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
	return err
}

// exitedError describes the last exit; nil for status 0.
func (d *Daemon) exitedError(beforeReady bool) error {
	d.mu.Lock()
	err := d.exitErr
	d.mu.Unlock()
	if err == nil && !beforeReady {
		return nil
	}
	ee := &ExitedError{Output: d.runOutput(), BeforeReady: beforeReady}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		ee.ExitCode = xe.ExitCode()
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ee.Signal = ws.Signal()
			ee.ExitCode = -1
		}
	} else if err != nil {
		return fmt.Errorf("wait for peapod: %w", err)
	}
	return ee
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after the stop timeout). It returns nil
// when the daemon exits 0, an *ExitedError otherwise. Stopping a stopped daemon returns the
// last exit's result.
func (d *Daemon) Stop() error {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.observed = true
	d.mu.Unlock()
	if cmd == nil {
		return errors.New("peapod was never started")
	}
	if !isClosed(exited) {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(d.opts.stopTimeout)
		defer t.Stop()
		select {
		case <-exited:
		case <-t.C:
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("peapod (pid %d) did not exit within %s of SIGTERM and was killed; output:\n%s",
				cmd.Process.Pid, d.opts.stopTimeout, tail(d.runOutput(), 4000))
		}
	}
	return d.exitedError(false)
}

// Kill sends SIGKILL and waits for the process to be gone.
func (d *Daemon) Kill() error {
	return d.signalAndWait(syscall.SIGKILL)
}

// Signal sends sig to the daemon without waiting.
func (d *Daemon) Signal(sig syscall.Signal) error {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return errors.New("peapod is not running")
	}
	return cmd.Process.Signal(sig)
}

func (d *Daemon) signalAndWait(sig syscall.Signal) error {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.observed = true
	d.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return errors.New("peapod is not running")
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal peapod: %w", err)
	}
	<-exited
	return nil
}

// Wait waits for the daemon to exit by itself and returns nil for status 0, an *ExitedError
// otherwise.
func (d *Daemon) Wait(ctx context.Context) error {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return errors.New("peapod was never started")
	}
	select {
	case <-exited:
	case <-ctx.Done():
		return fmt.Errorf("wait for peapod to exit: %w", ctx.Err())
	}
	d.mu.Lock()
	d.observed = true
	d.mu.Unlock()
	return d.exitedError(false)
}

// Restart stops the daemon (it must exit 0) and starts it again with the same root, state,
// socket, config and flags.
func (d *Daemon) Restart(ctx context.Context) error {
	if d.Running() {
		if err := d.Stop(); err != nil {
			return fmt.Errorf("stop before restart: %w", err)
		}
	}
	return d.Start(ctx)
}

// Running reports whether the process is alive (not yet waited for).
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd != nil && !isClosed(d.exited)
}

// PID is the current process id, 0 if not running.
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || isClosed(d.exited) {
		return 0
	}
	return d.cmd.Process.Pid
}

// Dir is the temporary directory holding everything the framework created for the daemon.
func (d *Daemon) Dir() string { return d.dir }

// Binary is the peapod binary the daemon runs.
func (d *Daemon) Binary() string { return d.opts.bin }

// Root is the daemon's --root.
func (d *Daemon) Root() string { return d.root }

// State is the daemon's --state.
func (d *Daemon) State() string { return d.state }

// Socket is the path of the daemon's CRI socket.
func (d *Daemon) Socket() string { return d.socket }

// DebugSocket is the unix socket of the daemon's pprof endpoint (see Goroutines).
func (d *Daemon) DebugSocket() string { return filepath.Join(d.dir, "debug.sock") }

// Endpoint is "unix://" + Socket().
func (d *Daemon) Endpoint() string { return "unix://" + d.socket }

// ConfigPath is the config file passed with --config.
func (d *Daemon) ConfigPath() string { return d.configPath }

// CNIConfDir is the (initially empty) [network] conf_dir.
func (d *Daemon) CNIConfDir() string { return d.cniConfDir }

// Args is the daemon's command line after the binary.
func (d *Daemon) Args() []string { return append([]string(nil), d.args...) }

// Stderr is everything the daemon wrote to stdout and stderr, over all its runs.
func (d *Daemon) Stderr() string { return d.out.String() }

// StderrLen is the length of Stderr now; pass it to StderrSince to see later output only.
func (d *Daemon) StderrLen() int { return d.out.Len() }

// StderrSince is the output written after offset (from StderrLen).
func (d *Daemon) StderrSince(offset int) string { return d.out.From(offset) }

func (d *Daemon) runOutput() string {
	d.mu.Lock()
	off := d.runStart
	d.mu.Unlock()
	return d.out.From(off)
}

// Connect dials the daemon's socket with the kubelet's CRI clients.
func (d *Daemon) Connect(ctx context.Context) (*Client, error) { return Connect(ctx, d.Endpoint()) }

// stopForCleanup stops a running daemon and reports a non-zero exit, or an exit the test
// never looked at (a crash).
func (d *Daemon) stopForCleanup() error {
	d.mu.Lock()
	cmd, observed := d.cmd, d.observed
	d.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if !d.Running() {
		if observed {
			return nil
		}
		if err := d.exitedError(false); err != nil {
			return fmt.Errorf("peapod exited unexpectedly during the test: %w", err)
		}
		return errors.New("peapod exited (status 0) unexpectedly during the test")
	}
	d.removeLeftPods()
	if err := d.Stop(); err != nil {
		return fmt.Errorf("stop with SIGTERM: %w", err)
	}
	return nil
}

// removeLeftPods removes, through the CRI, the pods a test left on a daemon that is being
// stopped (a test that failed before its own cleanup), so that the daemon takes down their
// cgroups and networks; Close only kills processes and unmounts. Best effort: a daemon a
// test broke on purpose may not manage it.
func (d *Daemon) removeLeftPods() {
	ctx, cancel := context.WithTimeout(Quiet(context.Background()), 30*time.Second)
	defer cancel()
	rs, err := ConnectRuntime(ctx, d.Endpoint())
	if err != nil {
		return
	}
	defer rs.Close(ctx) //nolint:errcheck
	if n, err := RemoveAllPods(ctx, rs); n > 0 || err != nil {
		fmt.Fprintf(os.Stderr, "peapod at %s: removed %d pods left by the tests (%v)\n", d.dir, n, err)
	}
}

// Close stops the daemon if it runs, kills processes it left behind that reference its
// directory (shims, containers), unmounts everything under that directory and removes it.
// It refuses to remove the directory while anything is still mounted below it.
func (d *Daemon) Close() error {
	var errs []error
	if d.Running() {
		if err := d.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if killed, err := KillProcessesReferencing(d.dir); err != nil {
		errs = append(errs, err)
	} else if len(killed) > 0 {
		errs = append(errs, fmt.Errorf("killed processes left behind under %s: %v", d.dir, killed))
	}
	if err := UnmountAll(d.dir); err != nil {
		errs = append(errs, err)
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(d.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", d.dir, err))
	}
	return errors.Join(errs...)
}

func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// LockedBuffer is an append-only output buffer safe for concurrent writers and readers (a
// process's output that a test reads while it runs).
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *LockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *LockedBuffer) From(off int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if off > len(s) {
		return ""
	}
	return s[off:]
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// hasPathPrefix reports whether p is dir or below it.
func hasPathPrefix(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
