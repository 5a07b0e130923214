package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/wire"

	plog "github.com/peapod-runtime/peapod/internal/log"
)

// StartOptions say which shim to start for which pod.
type StartOptions struct {
	// Binary is the peapod-shim executable.
	Binary string
	// FirstStage, when set, is the peapod-shim-runc executable, and the shim starts as it
	// (`peapod-shim-runc serve --lean Binary`): it creates the pod's first containers in its
	// own process, then re-executes into Binary once idle (shim/serve). Empty starts Binary.
	FirstStage string
	PodID      string
	// StateDir is the pod's own state dir (e.g. /run/peapod/pods/<pod-id>); the shim's
	// socket, log, records and libcontainer state go there.
	StateDir string
	// PidNamespace makes the shim hold a PID namespace for the whole pod (Info.PidNamespace).
	PidNamespace bool
	// HolderUser is "UID:GID" for the PID namespace holder; "" keeps root.
	HolderUser string
	// HolderUserNS is the pod's own user namespace (a pin), which then owns the PID
	// namespace; "" is the node's.
	HolderUserNS string
	Logger       *zap.Logger
}

// Client is the daemon's connection to one pod's shim. Its methods are safe for concurrent
// use. An error wrapping errdefs.ErrUnavailable means the shim is gone (killed, or never
// there): its containers' fate is then only what ReadRecords says.
//
// A shim re-executes itself now and then (shim/server's reexec_linux.go): its connection then
// closes, and a call made meanwhile is refused unprocessed. The Client reconnects at once and
// sends such a call again; Done closes only when the shim can't be reached any more.
type Client struct {
	socket string

	mu       sync.Mutex
	cc       *callConn
	replaced chan struct{} // closed when cc is replaced by a new connection
	closed   bool          // by Close: no reconnecting

	done     chan struct{}
	doneOnce sync.Once
}

// reconnectTimeout bounds how long a re-executing shim may take to serve again.
const reconnectTimeout = 5 * time.Second

// readyFD is the fd on which a starting shim reports whether it serves (see wire.WriteReady).
const readyFD = 3

// Start launches a shim for a pod, detached in its own session so that it survives the
// daemon, waits until it serves its socket, and connects to it. A shim that already serves
// the pod makes Start fail with errdefs.ErrAlreadyExists; use Connect.
func Start(ctx context.Context, o StartOptions) (*Client, error) {
	if o.Binary == "" || o.PodID == "" || o.StateDir == "" {
		return nil, fmt.Errorf("start shim: binary, pod id and state dir are required: %w", errdefs.ErrInvalidArgument)
	}
	l := o.Logger
	if l == nil {
		l = zap.NewNop()
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("start shim: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start shim: %w", err)
	}
	defer r.Close()
	args := []string{"serve", "--pod-id", o.PodID, "--state-dir", o.StateDir, "--ready-fd", "3"}
	if o.PidNamespace {
		args = append(args, "--pid-namespace")
		if o.HolderUser != "" {
			args = append(args, "--holder-user", o.HolderUser)
		}
		if o.HolderUserNS != "" {
			args = append(args, "--holder-userns", o.HolderUserNS)
		}
	}
	bin := o.Binary
	if o.FirstStage != "" {
		bin = o.FirstStage
		args = append(args, "--lean", o.Binary)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{w} // fd 3 == readyFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// One P from the runtime's start: a second P's caches, half filled while the shim starts
	// up, would stay private memory of every pod's shim for its whole life. No heap
	// profiling: its sampled stacks and the 1.4 MB hash table they go in would be private
	// memory too, for a profile nobody reads.
	cmd.Env = append(withoutEnv(os.Environ(), "GOMAXPROCS"), "GOMAXPROCS=1")
	cmd.Env = append(withoutEnv(cmd.Env, "GODEBUG"), "GODEBUG="+shimGODEBUG(os.Getenv("GODEBUG")))
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start shim %s: %w", bin, err)
	}
	w.Close()
	pid := cmd.Process.Pid
	// While the daemon lives it is the shim's parent and must reap it when it exits.
	exited := reap(cmd)

	msg := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		msg <- b
	}()
	var ready []byte
	select {
	case ready = <-msg:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("start shim for pod %s: %w", o.PodID, ctx.Err())
	}
	if err := wire.ReadReady(ready); err != nil {
		_ = cmd.Process.Kill()
		if len(bytes.TrimSpace(ready)) == 0 {
			select {
			case werr := <-exited:
				err = fmt.Errorf("%w: %v", err, werr)
			case <-time.After(time.Second):
			}
		}
		return nil, fmt.Errorf("start shim for pod %s (see %s): %w", o.PodID, shim.LogPath(o.StateDir), err)
	}
	l.Info("shim started", plog.PodSandboxID(o.PodID), zap.Int(plog.KeyPID, pid))
	return Connect(ctx, shim.SocketPath(o.StateDir))
}

// Connect connects to the shim serving socketPath (SocketPath of the pod's state dir).
// A shim that cannot be reached, for whatever reason the dial fails (missing, dead, a
// socket path the kernel refuses), gives an error wrapping errdefs.ErrUnavailable: the
// caller then cleans up after it as after a dead shim. Only ctx's end is not Unavailable.
func Connect(ctx context.Context, socketPath string) (*Client, error) {
	c := &Client{socket: socketPath, done: make(chan struct{})}
	// A shim that accepted the connection but closed it before its hello is re-executing
	// (or stopping): dial again (as lost does); a shim gone for good has removed its socket
	// by then.
	start := time.Now()
	for delay := time.Millisecond; ; delay = nextDelay(delay) {
		err := c.dial(ctx)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errClosedBeforeHello) || time.Since(start) > reconnectTimeout {
			return nil, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, fromWire("connect", c.socket, ctx.Err())
		}
	}
}

// nextDelay is the pause before the next attempt of a retry loop: doubling from 1ms, at
// most 50ms.
func nextDelay(d time.Duration) time.Duration { return min(2*d, 50*time.Millisecond) }

// errClosedBeforeHello marks a connection the shim closed before its hello.
var errClosedBeforeHello = errors.New("the shim closed the connection before its hello")

// dial connects to the socket and makes the connection the current one.
func (c *Client) dial(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		if ctx.Err() != nil {
			return fromWire("connect", c.socket, err)
		}
		if errors.Is(err, syscall.ENOENT) && isSocket(shim.LegacySocketPath(filepath.Dir(c.socket))) {
			return fmt.Errorf("shim at %s: only a ttrpc socket is there, of a peapod-shim older than this daemon, which cannot reach its containers: %w",
				filepath.Dir(c.socket), errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("shim connect at %s: %w: %w", c.socket, errdefs.ErrUnavailable, err)
	}
	set := make(chan struct{})
	var cc *callConn
	cc, err = newCallConn(ctx, conn, func() {
		<-set
		c.lost(cc)
	})
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return fromWire("connect", c.socket, err)
		}
		if errors.Is(err, wire.ErrProtocol) {
			return fmt.Errorf("shim at %s: it does not speak %s: %w: %w", c.socket, wire.CallProtocol, errdefs.ErrFailedPrecondition, err)
		}
		if isConnectionGone(err) {
			err = fmt.Errorf("%w: %w", errClosedBeforeHello, err)
		}
		return fmt.Errorf("shim connect at %s: %w: %w", c.socket, errdefs.ErrUnavailable, err)
	}
	c.mu.Lock()
	old := c.replaced
	c.cc, c.replaced = cc, make(chan struct{})
	closed := c.closed
	c.mu.Unlock()
	close(set)
	if old != nil {
		close(old)
	}
	if closed {
		cc.Close()
	}
	return nil
}

// lost runs when connection cc closes: unless the Client was closed, the shim may be
// re-executing, and serves again on the same socket in a moment.
func (c *Client) lost(cc *callConn) {
	c.mu.Lock()
	current, closed := c.cc == cc, c.closed
	c.mu.Unlock()
	if closed {
		c.finish()
		return
	}
	if !current {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), reconnectTimeout)
	defer cancel()
	for delay := time.Millisecond; ; delay = nextDelay(delay) {
		err := c.dial(ctx)
		if err == nil {
			return
		}
		// A socket nobody listens on (or no socket): the shim is gone.
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) || ctx.Err() != nil {
			c.finish()
			return
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			c.finish()
			return
		}
	}
}

func (c *Client) finish() { c.doneOnce.Do(func() { close(c.done) }) }

func (c *Client) current() (*callConn, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cc, c.replaced
}

// do runs call on the current connection, and again on the next one when the shim refused
// it because it re-executes, or when the connection closed under it while the shim goes on
// (a shim answers every call it took before it closes a connection: such a call was not
// taken).
func (c *Client) do(ctx context.Context, call func(*callConn) error) error {
	// Only the time between attempts counts: a Wait may be answered after hours.
	var waited time.Duration
	for delay := time.Millisecond; ; delay = nextDelay(delay) {
		cc, replaced := c.current()
		err := call(cc)
		if err == nil || !retryable(err) || waited > reconnectTimeout {
			return err
		}
		// The shim closes the connection as it re-executes (or put the re-exec off, and
		// answers on this one again in a moment).
		start := time.Now()
		select {
		case <-replaced:
		case <-time.After(delay):
		case <-c.done:
			return err
		case <-ctx.Done():
			return err
		}
		waited += time.Since(start)
	}
}

// unary makes call m with req through do, and decodes its answer into resp (if not nil).
func (c *Client) unary(ctx context.Context, m wire.Method, req, resp any) error {
	return c.do(ctx, func(cc *callConn) error { return cc.call(ctx, m, req, resp, nil) })
}

// retryable says err is a refusal of a re-executing shim or a lost connection.
func retryable(err error) bool {
	var once *notAgain
	if errors.As(err, &once) {
		return false
	}
	var ce *wire.CallError
	if errors.As(err, &ce) {
		return ce.Reexecuting()
	}
	return isConnectionGone(err)
}

// reexecuting says err is a re-executing shim's refusal of a call or session.
func reexecuting(err error) bool {
	var ce *wire.CallError
	return errors.As(err, &ce) && ce.Reexecuting()
}

// notAgain is an error of a call that must not be sent again (a stream that gave output).
type notAgain struct{ err error }

func (e *notAgain) Error() string { return e.err.Error() }
func (e *notAgain) Unwrap() error { return e.err }

// Close closes the connection; the shim and its containers keep running.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	cc := c.cc
	c.mu.Unlock()
	return cc.Close()
}

// Done is closed when the connection is gone for good (Close, or the shim exited).
func (c *Client) Done() <-chan struct{} { return c.done }

// SocketPath is the socket this client is connected to.
func (c *Client) SocketPath() string { return c.socket }

func (c *Client) err(op string, err error) error { return fromWire(op, c.socket, err) }

// Info describes the shim.
func (c *Client) Info(ctx context.Context) (shim.Info, error) {
	var r shim.Info
	if err := c.unary(ctx, wire.MethodInfo, nil, &r); err != nil {
		return shim.Info{}, c.err("info", err)
	}
	return r, nil
}

// Create creates a container and starts its init, which waits for Start before it runs the
// user's process (the container is StatusCreated). It returns the init's pid.
func (c *Client) Create(ctx context.Context, o shim.CreateOptions) (int, error) {
	if o.Spec == nil {
		return 0, fmt.Errorf("create container %s: no spec: %w", o.ID, errdefs.ErrInvalidArgument)
	}
	spec, err := json.Marshal(o.Spec)
	if err != nil {
		return 0, fmt.Errorf("create container %s: encode spec: %v: %w", o.ID, err, errdefs.ErrInvalidArgument)
	}
	req := wire.CreateRequest{
		ID:        o.ID,
		Spec:      spec,
		Rootfs:    o.Rootfs,
		Stdin:     o.Stdin,
		StdinOnce: o.StdinOnce,
		Tty:       o.Tty,
		LogPath:   o.LogPath,
		LogRoot:   o.LogRoot,
	}
	var r wire.PidResponse
	if err := c.unary(ctx, wire.MethodCreate, req, &r); err != nil {
		return 0, c.err("create", err)
	}
	return r.Pid, nil
}

// Start runs the user process of a created container and returns its pid.
// A container that is not StatusCreated gives errdefs.ErrFailedPrecondition.
func (c *Client) Start(ctx context.Context, id string) (int, error) {
	var r wire.PidResponse
	if err := c.unary(ctx, wire.MethodStart, wire.IDRequest{ID: id}, &r); err != nil {
		return 0, c.err("start", err)
	}
	return r.Pid, nil
}

// Signal sends sig to the container's init, or to all its processes. A stopped container
// gives errdefs.ErrFailedPrecondition.
func (c *Client) Signal(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	err := c.unary(ctx, wire.MethodSignal, wire.SignalRequest{ID: id, Signal: int(sig), All: all}, nil)
	return c.err("signal", err)
}

// State reports one container; an unknown one gives errdefs.ErrNotFound.
func (c *Client) State(ctx context.Context, id string) (shim.ContainerState, error) {
	var r shim.ContainerState
	if err := c.unary(ctx, wire.MethodState, wire.IDRequest{ID: id}, &r); err != nil {
		return shim.ContainerState{}, c.err("state", err)
	}
	return r, nil
}

// List reports every container of the shim.
func (c *Client) List(ctx context.Context) ([]shim.ContainerState, error) {
	var r wire.ListResponse
	if err := c.unary(ctx, wire.MethodList, nil, &r); err != nil {
		return nil, c.err("list", err)
	}
	if r.Containers == nil {
		r.Containers = []shim.ContainerState{}
	}
	return r.Containers, nil
}

// Wait blocks until the container has exited and its exit is persisted, and returns its
// final state. If the shim dies meanwhile, it returns an error wrapping errdefs.ErrUnavailable.
func (c *Client) Wait(ctx context.Context, id string) (shim.ContainerState, error) {
	var r shim.ContainerState
	if err := c.unary(ctx, wire.MethodWait, wire.IDRequest{ID: id}, &r); err != nil {
		return shim.ContainerState{}, c.err("wait", err)
	}
	return r, nil
}

// Delete kills the container if it runs, removes its cgroup, state and record. Deleting a
// container that is not there succeeds.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.err("delete", c.unary(ctx, wire.MethodDelete, wire.IDRequest{ID: id}, nil))
}

// ExecSync runs a command in a running container and returns its output and exit code. A
// command that cannot be found gives exit code 127 (126 if it cannot run), not an error; a
// timeout gives TimedOut with the container left running; a container that is not running
// gives errdefs.ErrFailedPrecondition. ctx should outlive o.Timeout.
func (c *Client) ExecSync(ctx context.Context, id string, o shim.ExecSyncOptions) (shim.ExecSyncResult, error) {
	req := wire.ExecSyncRequest{ID: id, Args: o.Args, Env: o.Env, Cwd: o.Cwd, User: o.User, Timeout: int64(o.Timeout)}
	var res shim.ExecSyncResult
	err := c.do(ctx, func(cc *callConn) error {
		res = shim.ExecSyncResult{}
		got := false
		var exit wire.ExecSyncExit
		err := cc.call(ctx, wire.MethodExecSync, req, &exit, func(stream byte, p []byte) error {
			got = true
			var buf *[]byte
			switch stream {
			case wire.StreamStdout:
				buf = &res.Stdout
			case wire.StreamStderr:
				buf = &res.Stderr
			default:
				return fmt.Errorf("exec output on stream %d: %w", stream, wire.ErrProtocol)
			}
			if len(*buf)+len(p) > shim.MaxExecOutput {
				return fmt.Errorf("exec output over %d bytes: %w", shim.MaxExecOutput, wire.ErrProtocol)
			}
			*buf = append(*buf, p...)
			return nil
		})
		if err != nil {
			if got {
				if isConnectionGone(err) {
					err = fmt.Errorf("shim exec in %s: the connection closed before the exit: %w", id, errdefs.ErrUnavailable)
				}
				return &notAgain{err}
			}
			return err
		}
		res.ExitCode, res.TimedOut = exit.ExitCode, exit.TimedOut
		return nil
	})
	if err != nil {
		var na *notAgain
		if errors.As(err, &na) && errors.Is(na.err, errdefs.ErrUnavailable) {
			return shim.ExecSyncResult{}, na.err
		}
		return shim.ExecSyncResult{}, c.err("exec", err)
	}
	return res, nil
}

// ReopenLog makes the shim close and reopen a running container's log file at the same path,
// after the kubelet renamed it. A container that is not running gives
// errdefs.ErrFailedPrecondition.
func (c *Client) ReopenLog(ctx context.Context, id string) error {
	return c.err("reopen log", c.unary(ctx, wire.MethodReopenLog, wire.IDRequest{ID: id}, nil))
}

// Prepare tells the shim that a Create follows, so that it readies what a create needs
// meanwhile. It is a hint: a shim that predates it answers NotImplemented.
func (c *Client) Prepare(ctx context.Context) error {
	return c.err("prepare", c.unary(ctx, wire.MethodPrepare, nil, nil))
}

// Shutdown stops the shim: it removes its socket and exits. It is refused with
// errdefs.ErrFailedPrecondition while the shim holds containers (Delete them first). It
// returns once the shim has closed the connection, and closes the Client.
func (c *Client) Shutdown(ctx context.Context) error {
	if err := c.unary(ctx, wire.MethodShutdown, nil, nil); err != nil {
		// A refusal comes back as an answer; a connection closed under the call means the
		// shim took the request and went away before its answer was written.
		if err = c.err("shutdown", err); !errors.Is(err, errdefs.ErrUnavailable) {
			return err
		}
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("shim shutdown: %w", ctx.Err())
	}
	return c.Close()
}

// shimGODEBUG is the daemon's GODEBUG with heap profiling off.
func shimGODEBUG(daemon string) string {
	if daemon == "" {
		return "memprofilerate=0"
	}
	return daemon + ",memprofilerate=0"
}

// isSocket says path is a unix socket (not followed if a symlink).
func isSocket(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// withoutEnv is env without the variable name.
func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
