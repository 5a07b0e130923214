package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// helperIdle is how long a started helper waits for work before the monitor ends it. A pod's
// containers are created one right after the other; an idle pod has no helper at all.
const helperIdle = 500 * time.Millisecond

// helperRuntime is the Runtime of a lean shim: every libcontainer operation runs in a helper
// process (see shim/wire's helper protocol), whose container processes are reparented to the
// shim when it exits. Starting a created container and signalling an init need no helper:
// the first is libcontainer's exec fifo, the second a kill.
//
// One helper is kept started ahead of use while containers are being created, so that a
// Create does not wait for a process to start: it is ended after helperIdle without work.
type helperRuntime struct {
	// inProcess, when set, runs every request in this process instead (a first stage's
	// Options.InProcess): no helper is ever started.
	inProcess func(ctx context.Context, root string, req wire.HelperRequest, files []*os.File) (wire.HelperReply, error)

	binary string
	env    []string
	root   string // libcontainer's state root
	reaper *reaper
	log    *corelog.Logger

	mu      sync.Mutex
	last    time.Time // of the last request
	warm    *helperProc
	idle    *time.Timer
	seccomp chan struct{} // closed once hasSeccomp is known
	once    sync.Once
	sec     bool
}

// helperProc is a started helper that waits for its request.
type helperProc struct {
	pid   int
	conn  *net.UnixConn
	hello wire.HelperHello
	err   error
	ready chan struct{} // closed once hello or err is set
}

func newHelperRuntime(binary, root string, r *reaper, l *corelog.Logger) *helperRuntime {
	return &helperRuntime{binary: binary, root: root, reaper: r, log: l, seccomp: make(chan struct{}), env: helperEnv(os.Environ())}
}

// helperEnv is the shim's environment without the Go runtime's tuning of a long-lived,
// mostly idle monitor (one P, a low GC target): a helper is a burst of work whose latency is
// a create's or an exec's, and libcontainer's init (the same binary) inherits it.
func helperEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k != "GOMAXPROCS" && k != "GOGC" && k != "GOMEMLIMIT" {
			out = append(out, kv)
		}
	}
	return out
}

// spawn starts a helper; it says hello in the background. ahead says it starts ahead of use:
// only then does it warm its caches while it waits (--warm), since a request already waiting
// would wait for that too, and a destroy or a signal needs none of them.
func (h *helperRuntime) spawn(ahead bool) *helperProc {
	p := &helperProc{ready: make(chan struct{})}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		p.err = fmt.Errorf("helper socket pair: %w", err)
		close(p.ready)
		return p
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "helper"), os.NewFile(uintptr(fds[1]), "helper-child")
	defer theirs.Close()
	fc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		p.err = fmt.Errorf("helper socket: %w", err)
		close(p.ready)
		return p
	}
	p.conn = fc.(*net.UnixConn)
	cmd := exec.Command(h.binary, "helper", "--root", h.root)
	if ahead {
		cmd.Args = append(cmd.Args, "--warm")
	}
	cmd.Args[0] = "peapod-shim-runc"
	cmd.Dir = "/"
	cmd.Env = h.env
	cmd.Stderr = os.Stderr              // the shim's log
	cmd.ExtraFiles = []*os.File{theirs} // fd 3 == wire.HelperFD
	pid, _, err := h.reaper.spawn(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
	if err != nil {
		p.conn.Close()
		p.err = fmt.Errorf("start helper %s: %w", h.binary, err)
		close(p.ready)
		return p
	}
	// The reaper waits for it; drop the pidfd os/exec holds.
	_ = cmd.Process.Release()
	p.pid = pid
	go func() {
		defer close(p.ready)
		r := wire.NewFrameReader(p.conn)
		t, b, err := r.Next()
		if err == nil && t != wire.FrameOK {
			err = fmt.Errorf("helper said %q: %w", t, wire.ErrProtocol)
		}
		if err == nil {
			err = json.Unmarshal(b, &p.hello)
		}
		if err != nil {
			p.err = fmt.Errorf("helper hello: %w", err)
			p.conn.Close()
			return
		}
		h.once.Do(func() {
			h.sec = p.hello.Seccomp
			close(h.seccomp)
		})
	}()
	return p
}

// Warm starts a helper ahead of use, unless one waits already.
func (h *helperRuntime) Warm() {
	if h.inProcess != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.warm == nil {
		h.warm = h.spawn(true)
	}
	h.armIdle()
}

func (h *helperRuntime) armIdle() {
	if h.idle == nil {
		h.idle = time.AfterFunc(helperIdle, h.cool)
		return
	}
	h.idle.Reset(helperIdle)
}

// cool ends the waiting helper: closing its socket makes it exit.
func (h *helperRuntime) cool() {
	h.mu.Lock()
	p := h.warm
	h.warm = nil
	h.mu.Unlock()
	if p != nil && p.conn != nil {
		p.conn.Close()
	}
}

// busy notes a request and says whether a helper should be kept warm after it: after an
// exec when the previous request was less than helperIdle ago (a burst of execs). A lone
// exec (a probe every few seconds) starts no helper it does not use, nor does a pod's
// teardown (destroy, signal). Nor does a create: the daemon says when the next one comes
// (Prepare), and a helper starting beside the Start that follows a create slows it down.
func (h *helperRuntime) busy(op string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	burst := !h.last.IsZero() && now.Sub(h.last) < helperIdle
	h.last = now
	return op == wire.HelperExec && burst
}

// take returns a helper for one request: the waiting one, or a new one.
func (h *helperRuntime) take() *helperProc {
	h.mu.Lock()
	p := h.warm
	h.warm = nil
	h.mu.Unlock()
	if p == nil {
		p = h.spawn(false)
	}
	return p
}

// Seccomp says whether the helper was built with seccomp support, once a helper said so.
func (h *helperRuntime) Seccomp(ctx context.Context) bool {
	select {
	case <-h.seccomp:
		return h.sec
	default:
	}
	h.Warm()
	select {
	case <-h.seccomp:
		return h.sec
	case <-ctx.Done():
		return false
	case <-time.After(5 * time.Second):
		return false
	}
}

// call runs one request in a helper and returns its reply; files are the new process's fds.
// Callers hold reaping off (reaper.spawn or hold) until they have registered what it started.
func (h *helperRuntime) call(ctx context.Context, req wire.HelperRequest, files []*os.File) (wire.HelperReply, error) {
	if h.inProcess != nil {
		// As in a helper, a request runs to its end once started.
		reply, err := h.inProcess(context.WithoutCancel(ctx), h.root, req, files)
		if err != nil {
			return reply, fmt.Errorf("libcontainer (%s %s): %w", req.Op, req.ID, err)
		}
		return reply, nil
	}
	p := h.take()
	if h.busy(req.Op) {
		// The next exec of a burst usually follows: its helper starts while this one works
		// (started after the answer, its fork held the exec's answer back, and its start
		// ran beside the command; ExecSync p95 -5 ms).
		go h.Warm()
	}
	select {
	case <-p.ready:
	case <-ctx.Done():
		if p.conn != nil {
			p.conn.Close()
		}
		return wire.HelperReply{}, ctx.Err()
	}
	if p.err != nil {
		return wire.HelperReply{}, p.err
	}
	defer p.conn.Close()
	// Once sent, a request is not given up when ctx ends: as libcontainer's own calls, it
	// runs to its end (a create abandoned halfway would leave a container nobody tracks).
	var reply wire.HelperReply
	err := func() error {
		if err := wire.SendFiles(p.conn, files); err != nil {
			return err
		}
		if err := wire.NewFrameWriter(p.conn).WriteJSON(wire.FrameHeader, req); err != nil {
			return fmt.Errorf("send helper request: %w", err)
		}
		t, b, err := wire.NewFrameReader(p.conn).Next()
		if err != nil {
			return fmt.Errorf("helper reply: %w", err)
		}
		if t != wire.FrameOK {
			return fmt.Errorf("helper replied %q: %w", t, wire.ErrProtocol)
		}
		return json.Unmarshal(b, &reply)
	}()
	// The helper exits right after its reply; what it started is then reparented to the
	// shim. Until then an exit of it is the helper's zombie: its pid cannot be reused, and the
	// reaper collects it once it is the shim's.
	if err != nil {
		return reply, fmt.Errorf("libcontainer helper (%s %s): %w", req.Op, req.ID, err)
	}
	return reply, reply.Err()
}

// stdioFiles lists the fds of stdio that are set, and marks them in req.
func stdioFiles(req *wire.HelperRequest, stdio Stdio) []*os.File {
	var files []*os.File
	for _, f := range []struct {
		file *os.File
		flag *bool
	}{{stdio.Stdin, &req.Stdin}, {stdio.Stdout, &req.Stdout}, {stdio.Stderr, &req.Stderr}, {stdio.ConsoleSocket, &req.Console}} {
		if f.file != nil {
			*f.flag = true
			files = append(files, f.file)
		}
	}
	return files
}

func (h *helperRuntime) Create(ctx context.Context, id string, spec CreateSpec, stdio Stdio) (RuntimeContainer, error) {
	req := wire.HelperRequest{Op: wire.HelperCreate, ID: id, Spec: spec.JSON, Rootfs: spec.Rootfs, Terminal: spec.Terminal}
	reply, err := h.call(ctx, req, stdioFiles(&req, stdio))
	if err != nil {
		return nil, err
	}
	return &helperContainer{h: h, id: id, spec: spec.JSON, pid: reply.Pid, sharedPid: reply.SharedPid, cgroups: reply.CgroupPaths}, nil
}

func (h *helperRuntime) Remove(ctx context.Context, id string) error {
	if _, err := os.Stat(filepath.Join(h.root, id)); errors.Is(err, fs.ErrNotExist) {
		return nil // nothing left: no helper needed
	}
	_, err := h.call(ctx, wire.HelperRequest{Op: wire.HelperRemove, ID: id}, nil)
	return err
}

// helperContainer is a container a helper created.
type helperContainer struct {
	h         *helperRuntime
	id        string
	spec      []byte // the daemon's OCI spec: an exec's process is its process changed
	pid       int
	sharedPid bool
	cgroups   map[string]string
}

func (c *helperContainer) Pid() int { return c.pid }

// Start opens the container's exec fifo, as libcontainer's own Exec does: the init, blocked
// writing to it, then execs the user's process.
func (c *helperContainer) Start(ctx context.Context) error {
	path := filepath.Join(c.h.root, c.id, "exec.fifo")
	type result struct {
		f   *os.File
		err error
	}
	opened := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
		opened <- result{f, err}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-opened:
			if r.err != nil {
				return fmt.Errorf("start container %s: %w", c.id, r.err)
			}
			return c.readFifo(r.f, path)
		case <-tick.C:
			if !processAlive(c.pid) {
				// The init may have gone after writing: a non-blocking open finds its byte.
				f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
				if err == nil {
					if err := c.readFifo(f, path); err == nil {
						return nil
					}
				}
				return fmt.Errorf("start container %s: its init is gone: %w", c.id, errdefs.ErrFailedPrecondition)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *helperContainer) readFifo(f *os.File, path string) error {
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("start container %s: %w", c.id, err)
	}
	if len(b) == 0 {
		return fmt.Errorf("start container %s: it was started already: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("start container %s: %w", c.id, err)
	}
	return nil
}

// processAlive says pid runs and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := len(b) - 1
	for i > 0 && b[i] != ')' {
		i--
	}
	return i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// Signal kills the init directly, unless every process of a container must be signalled
// and the init's death does not end them: that goes through a helper.
func (c *helperContainer) Signal(ctx context.Context, sig syscall.Signal, all bool) error {
	if !all || sig == unix.SIGKILL && !c.sharedPid {
		if !c.h.reaper.signal(c.pid, sig) {
			return fmt.Errorf("container %s is not running: %w", c.id, errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	var err error
	c.h.reaper.hold(func() {
		_, err = c.h.call(ctx, wire.HelperRequest{Op: wire.HelperSignal, ID: c.id, Signal: int(sig), All: all}, nil)
	})
	return err
}

func (c *helperContainer) Exec(ctx context.Context, e wire.ExecOverrides, stdio Stdio) (int, error) {
	req := wire.HelperRequest{Op: wire.HelperExec, ID: c.id, Spec: c.spec, Exec: &e}
	reply, err := c.h.call(ctx, req, stdioFiles(&req, stdio))
	if err != nil {
		return 0, err
	}
	return reply.Pid, nil
}

// Stopped reads the OOM kill counter of the container's memory cgroup (memory.oom_control on
// cgroup v1, memory.events on v2) and kills what is left of a container sharing a PID
// namespace.
func (c *helperContainer) Stopped(ctx context.Context) (bool, error) {
	var candidates []string
	if p := c.cgroups["memory"]; p != "" {
		candidates = append(candidates, filepath.Join(p, "memory.oom_control"))
	}
	if p := c.cgroups[""]; p != "" {
		candidates = append(candidates, filepath.Join(p, "memory.events"))
	}
	oom, err := false, error(nil)
	for _, f := range candidates {
		n, rerr := readCounter(f, "oom_kill")
		if errors.Is(rerr, fs.ErrNotExist) {
			continue
		}
		oom, err = n > 0, rerr
		break
	}
	if c.sharedPid {
		c.h.reaper.hold(func() {
			if _, kerr := c.h.call(ctx, wire.HelperRequest{Op: wire.HelperKillAll, ID: c.id}, nil); kerr != nil {
				c.h.log.Warn("kill remaining processes", corelog.String("container_id", c.id), corelog.Error(kerr))
			}
		})
	}
	return oom, err
}

// Destroy runs under reaper.hold (the server's caller holds it).
func (c *helperContainer) Destroy(ctx context.Context) error {
	_, err := c.h.call(ctx, wire.HelperRequest{Op: wire.HelperDestroy, ID: c.id}, nil)
	return err
}

// Checkpoint runs under reaper.hold (the server's caller holds it): a helper runs
// peapod-checkpoint, found beside it, which dumps the container with CRIU.
func (c *helperContainer) Checkpoint(ctx context.Context, imagesDir, workDir string, leaveRunning bool) error {
	_, err := c.h.call(ctx, wire.HelperRequest{Op: wire.HelperCheckpoint, ID: c.id, ImagesDir: imagesDir, WorkDir: workDir, LeaveRunning: leaveRunning}, nil)
	return err
}

// readCounter reads "key value" from a cgroup file such as memory.events.
func readCounter(path, key string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fs.ErrNotExist
}

// knownSeccomp is what a helper said of seccomp, if one has said it yet.
func (h *helperRuntime) knownSeccomp() (bool, bool) {
	select {
	case <-h.seccomp:
		return h.sec, true
	default:
		return false, false
	}
}

// setSeccomp is what a helper of the previous process said (Resume).
func (h *helperRuntime) setSeccomp(sec bool) {
	h.once.Do(func() {
		h.sec = sec
		close(h.seccomp)
	})
}
