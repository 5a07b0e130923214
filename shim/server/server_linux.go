package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// Options configure the shim side.
type Options struct {
	PodID string
	// StateDir is the pod's state dir: socket, records, libcontainer root.
	StateDir string
	// Helper is the peapod-shim-runc binary: libcontainer's work runs in short-lived
	// helpers of it (see helperRuntime), and the PID namespace holder is its "pause". Runtime,
	// when set instead, creates containers in this process (tests).
	Helper  string
	Runtime Runtime
	Logger  *corelog.Logger
	// PidNamespace starts a holder process as PID 1 of a new PID namespace for the pod.
	PidNamespace bool
	// HolderCommand is the holder's argv; the default is Helper pause (/proc/self/exe pause
	// without a Helper).
	HolderCommand []string
	// HolderUser is "UID:GID", who the holder runs as (the pod's run_as_user and
	// run_as_group); "" keeps root. Either way it has no capabilities and no_new_privs.
	HolderUser string
	// HolderUserNS is the pod's own user namespace: the holder joins it before it makes the
	// PID namespace, which the user namespace then owns (so that the pod's containers may
	// mount their /proc), and runs as its root, not the node's. "" is the node's.
	HolderUserNS string
	// ExecDrain is how long ExecSync keeps reading a command's output after the command
	// exited, for what its background children still write; default 250ms.
	ExecDrain time.Duration
	// IdleDelay is how long after its last call a shim is idle (default 1s).
	IdleDelay time.Duration
	// ReexecArgs, if set, lets a shim that has been busy re-execute itself once idle
	// (reexec_linux.go): it returns the argv of the new process (ReexecBinary), which must
	// call Resume with handoverFD.
	ReexecArgs func(handoverFD int) []string
	// ReexecBinary is the binary a shim re-executes (default /proc/self/exe, itself).
	ReexecBinary string
	// InProcess, when set, runs libcontainer's work (shim/wire's helper requests) in this
	// process instead of in helpers of Helper: a monitor's first stage (peapod-shim-runc
	// serve) links libcontainer and creates a pod's first containers itself. It re-executes
	// into ReexecBinary once idle, busy or not, and the lean shim it becomes uses helpers.
	InProcess func(ctx context.Context, root string, req wire.HelperRequest, files []*os.File) (wire.HelperReply, error)
	// Version and Seccomp are reported by Info (with a Helper, Seccomp is what the helper
	// says of itself, unless the work is InProcess).
	Version string
	Seccomp bool
}

// Server is the shim side: it serves the API on the pod's socket and owns the containers.
type Server struct {
	opts   Options
	log    *corelog.Logger
	reaper *reaper

	mu         sync.Mutex
	containers map[string]*container
	reserved   map[string]bool
	stopping   bool

	// helper is the Runtime when it is opts.Helper's.
	helper *helperRuntime

	holderPid int
	// holderGone says the holder exited (killed from outside): the pod's PID namespace went
	// with it, and Info names none any more.
	holderGone bool
	shutdown   chan struct{}

	idleMu    sync.Mutex
	idleTimer *time.Timer

	// Serving, and re-executing (reexec_linux.go).
	lockFile                 *os.File
	listener, streamListener *net.UnixListener
	serveErr                 chan serveEnd
	inherited                *handover // what the previous process handed over, until Serve
	execs                    int       // re-executions so far
	// firstStage says this process is a first stage that has yet to re-execute into the
	// lean shim (Options.InProcess).
	firstStage bool

	gateMu sync.Mutex
	calls  *callServer
	active int  // calls (but Wait) and stream sessions under way
	dirty  bool // a call or session that may have left work behind in the process
	gated  bool // a re-exec is under way: calls are refused with errReexecuting
}

// serveEnd is a call server's end.
type serveEnd struct {
	srv *callServer
	err error
}

// New checks opts and returns a Server; Serve starts it.
func New(opts Options) (*Server, error) {
	if opts.PodID == "" || opts.StateDir == "" || opts.Runtime == nil && opts.Helper == "" {
		return nil, fmt.Errorf("shim server needs a pod id, a state dir and a runtime: %w", errdefs.ErrInvalidArgument)
	}
	if opts.Logger == nil {
		opts.Logger = corelog.Nop()
	}
	if len(opts.HolderCommand) == 0 {
		opts.HolderCommand = []string{"/proc/self/exe", "pause"}
		if opts.Helper != "" {
			opts.HolderCommand[0] = opts.Helper
		}
	}
	if opts.IdleDelay <= 0 {
		opts.IdleDelay = time.Second
	}
	if opts.ReexecBinary == "" {
		opts.ReexecBinary = "/proc/self/exe"
	}
	if opts.ExecDrain <= 0 {
		opts.ExecDrain = 250 * time.Millisecond
	}
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		reaper:     newReaper(opts.Logger),
		containers: make(map[string]*container),
		reserved:   make(map[string]bool),
		shutdown:   make(chan struct{}),
	}
	if opts.Runtime == nil {
		s.helper = newHelperRuntime(opts.Helper, filepath.Join(opts.StateDir, "libct"), s.reaper, opts.Logger)
		if opts.InProcess != nil {
			s.helper.inProcess = opts.InProcess
			s.helper.setSeccomp(opts.Seccomp)
			s.firstStage = opts.ReexecArgs != nil
		}
		s.opts.Runtime = s.helper
	}
	return s, nil
}

// Serve runs the shim until a Shutdown call or until ctx is done. It calls ready once the
// socket accepts connections, or with the error that prevents it (which it also returns).
// Containers outlive a Serve that ends because ctx is done: they are reparented.
func (s *Server) Serve(ctx context.Context, ready func(error)) (retErr error) {
	readyOnce := func(err error) {
		if ready != nil {
			ready(err)
			ready = nil
		}
	}
	defer func() { readyOnce(retErr) }()

	// Orphans of the containers and exec sessions must become our children, so that we reap
	// them at once and not PID 1 whenever it gets to it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	var l, sl *net.UnixListener
	keepHolder := false
	if h := s.inherited; h != nil {
		// A re-executed shim: everything is open already (reexec_linux.go).
		s.lockFile = h.lock
		l, sl = h.listener, h.streamListener
	} else {
		lock, err := lockStateDir(s.opts.StateDir)
		if err != nil {
			return err
		}
		s.lockFile = lock
	}
	defer s.lockFile.Close()
	rctx, stopReaper := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReaper()
	go s.reaper.run(rctx)

	if s.inherited == nil {
		var err error
		if l, sl, err = s.setUp(); err != nil {
			if s.holderPid > 0 {
				s.stopHolder()
			}
			return err
		}
	}
	if s.holderPid > 0 {
		// A shim stopped by a signal leaves the pod's PID namespace to the containers in it,
		// as it leaves the containers; the next shim of the pod kills a stale holder.
		defer func() {
			if !keepHolder {
				s.stopHolder()
			}
		}()
	}
	defer os.Remove(shim.SocketPath(s.opts.StateDir))
	defer os.Remove(shim.StreamSocketPath(s.opts.StateDir))
	// The sockets outlive a re-exec: only Serve's end removes them.
	l.SetUnlinkOnClose(false)
	sl.SetUnlinkOnClose(false)
	s.listener, s.streamListener = l, sl

	defer l.Close()
	defer sl.Close()
	s.serveErr = make(chan serveEnd, 1)
	s.serveCalls(ctx)
	// Sessions outlive a cancelled ctx just long enough to kill their exec processes.
	sessionCtx, endSessions := context.WithCancel(context.WithoutCancel(ctx))
	var sessions sync.WaitGroup
	sessions.Go(func() { s.serveStreams(sessionCtx, sl, &sessions) })
	defer func() {
		sl.Close()
		endSessions()
		waitTimeout(&sessions, 2*time.Second)
	}()

	if s.inherited != nil {
		s.log.Info("shim re-executed", corelog.Int("containers", len(s.containers)), corelog.Int("execs", s.inherited.Execs))
		s.inherited = nil
	} else {
		s.log.Info("shim serving", corelog.String("socket", shim.SocketPath(s.opts.StateDir)), corelog.Int("holder_pid", s.holderPid))
		readyOnce(nil)
		if s.helper != nil {
			// A shim starts with a pod's first container: have a helper ready for its create
			// (started once the daemon knows the shim serves: the daemon's Info comes first).
			s.helper.Warm()
		}
	}
	if s.helper != nil {
		defer s.helper.cool()
	}

	for {
		select {
		case <-ctx.Done():
			keepHolder = true
		case <-s.shutdown:
		case end := <-s.serveErr:
			if s.reexecuting() || end.srv != s.currentCalls() {
				// A server stopped for a re-exec: this process ends in execve, or serves
				// on with a new server if that failed.
				continue
			}
			return fmt.Errorf("serve: %w", end.err)
		}
		break
	}
	s.stopServing(ctx)
	return nil
}

func (s *Server) stopServing(ctx context.Context) {
	// Remove the socket first: once a caller's Shutdown returns, the socket is gone. Then give
	// the answer to Shutdown a moment to be written before connections are closed.
	_ = os.Remove(shim.SocketPath(s.opts.StateDir))
	_ = os.Remove(shim.StreamSocketPath(s.opts.StateDir))
	time.Sleep(20 * time.Millisecond)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.currentCalls().Shutdown(sctx); err != nil {
		s.log.Warn("stop serving", corelog.Error(err))
	}
	s.log.Info("shim stopped")
}

// setUp starts the pod's PID namespace holder if it has one and opens the sockets.
func (s *Server) setUp() (l, sl *net.UnixListener, err error) {
	// A holder left by a shim that was killed holds a namespace nobody monitors any more.
	if pid := shim.KillStaleHolder(s.opts.StateDir); pid > 0 {
		s.log.Warn("killed stale pod pid namespace holder", corelog.Int(corelog.KeyPID, pid))
	}
	if s.opts.PidNamespace {
		if err := s.startHolder(); err != nil {
			return nil, nil, err
		}
	}
	if l, err = listen(shim.SocketPath(s.opts.StateDir)); err != nil {
		return nil, nil, err
	}
	if sl, err = listen(shim.StreamSocketPath(s.opts.StateDir)); err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, sl, nil
}

// serveCalls serves the call protocol on s.listener with a new call server, whose end goes
// to s.serveErr. A re-exec stops it (pausing the listener: the socket stays open).
func (s *Server) serveCalls(ctx context.Context) {
	// A new server's Accept must not find the deadline that paused the last one.
	_ = s.listener.SetDeadline(time.Time{})
	srv := newCallServer(s, newPausableListener(s.listener))
	s.gateMu.Lock()
	s.calls = srv
	s.gateMu.Unlock()
	go func() {
		err := srv.Serve(ctx)
		select {
		case s.serveErr <- serveEnd{srv, err}:
		default:
		}
	}()
}

func (s *Server) currentCalls() *callServer {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	return s.calls
}

// waitTimeout waits for wg, but not longer than d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// touch notes activity: idle runs IdleDelay after the last call.
func (s *Server) touch() {
	if s.opts.ReexecArgs == nil || s.helper == nil {
		return
	}
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if s.idleTimer == nil {
		s.idleTimer = time.AfterFunc(s.opts.IdleDelay, s.idle)
		return
	}
	s.idleTimer.Reset(s.opts.IdleDelay)
}

// lockStateDir makes sure one shim serves a pod at a time.
func lockStateDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "shim.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open shim lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("a shim already serves %s: %w", dir, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}

// listen binds the socket, replacing a stale one left by a shim that was killed (the state
// dir lock says no live shim owns it).
func listen(path string) (*net.UnixListener, error) {
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("socket path %s is longer than %d bytes: %w", path, len(unix.RawSockaddrUnix{}.Path)-1, errdefs.ErrInvalidArgument)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return l, nil
}

// startHolder starts PID 1 of the pod's PID namespace: a process that only reaps and sleeps,
// which containers join through Info.PidNamespace.
func (s *Server) startHolder() error {
	argv := s.opts.HolderCommand
	if s.opts.HolderUser != "" {
		argv = append(slices.Clone(argv), s.opts.HolderUser)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Args[0] = "peapod-shim"
	// Its working directory is the pod's state dir, so that whoever cleans that dir up (a
	// test harness, an operator with fuser) finds it.
	cmd.Dir = s.opts.StateDir
	cmd.SysProcAttr = &unix.SysProcAttr{Cloneflags: unix.CLONE_NEWPID}
	if s.opts.HolderUserNS != "" {
		// A process of ours cannot join a user namespace (it has threads), so the holder
		// does it: it joins, unshares the PID namespace and forks the namespace's PID 1,
		// which it watches (pause.go). The namespace is its pid_for_children.
		cmd.SysProcAttr = &unix.SysProcAttr{}
		cmd.Env = append(os.Environ(), holderUserNSEnv+"="+s.opts.HolderUserNS)
	}
	pid, exited, err := s.reaper.spawn(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
	if err != nil {
		return fmt.Errorf("start pod pid namespace holder: %w", err)
	}
	// The reaper waits for it; drop the pidfd os/exec holds.
	_ = cmd.Process.Release()
	s.holderPid = pid
	if err := shim.WriteHolderFile(s.opts.StateDir, pid); err != nil {
		s.reaper.killGroup(pid)
		return err
	}
	s.watchHolder(pid, exited)
	return nil
}

// watchHolder notes the holder's exit.
func (s *Server) watchHolder(pid int, exited <-chan unix.WaitStatus) {
	go func() {
		ws := <-exited
		code, _ := exitCode(ws)
		s.mu.Lock()
		stopping := s.stopping
		s.holderGone = true
		s.mu.Unlock()
		if !stopping {
			// The kernel killed every process of the namespace with it: the containers in it
			// are reaped and reported exited as usual.
			s.log.Error("pod pid namespace holder exited; the pod's PID namespace is gone", corelog.Int("pid", pid), corelog.Int("exit_code", code))
		}
	}()
}

func (s *Server) stopHolder() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.reaper.killGroup(s.holderPid)
	shim.RemoveHolderFile(s.opts.StateDir)
}

func (s *Server) pidNamespace() string {
	s.mu.Lock()
	gone := s.holderGone
	s.mu.Unlock()
	if s.holderPid == 0 || gone {
		return ""
	}
	if s.opts.HolderUserNS != "" {
		return "/proc/" + strconv.Itoa(s.holderPid) + "/ns/pid_for_children"
	}
	return "/proc/" + strconv.Itoa(s.holderPid) + "/ns/pid"
}

// holderUserNSEnv names the pod's user namespace to the holder (see cmd/peapod-shim-runc's
// pause.go, which reads it before the Go runtime starts).
const holderUserNSEnv = "PEAPOD_PAUSE_USERNS"

func (s *Server) info(ctx context.Context) shim.Info {
	ns, holder := s.pidNamespace(), s.holderPid
	if ns == "" {
		holder = 0
	}
	return shim.Info{
		Pid:          os.Getpid(),
		PodID:        s.opts.PodID,
		PidNamespace: ns,
		PidHolderPid: holder,
		Seccomp:      s.seccomp(ctx),
		Version:      s.opts.Version,
		Goroutines:   runtime.NumGoroutine(),
	}
}

func (s *Server) seccomp(ctx context.Context) bool {
	if s.helper != nil {
		return s.helper.Seccomp(ctx)
	}
	return s.opts.Seccomp
}

// checkID accepts what libcontainer accepts as a file name under its root: 1 to 128 of
// [A-Za-z0-9_.-], not starting with a dot, dash or underscore. (A regexp would cost the
// shim 100 KiB of heap for its whole life.)
func checkID(id string) error {
	ok := len(id) > 0 && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("container id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (s *Server) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s in pod %s: %w", id, s.opts.PodID, errdefs.ErrNotFound)
	}
	return c, nil
}

func (s *Server) list() []shim.ContainerState {
	s.mu.Lock()
	cs := make([]*container, 0, len(s.containers))
	for _, c := range s.containers {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	out := make([]shim.ContainerState, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.state())
	}
	return out
}

// requestShutdown stops the shim once no container is left.
func (s *Server) requestShutdown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.containers) + len(s.reserved); n > 0 {
		return fmt.Errorf("pod %s still has %d containers: %w", s.opts.PodID, n, errdefs.ErrFailedPrecondition)
	}
	if !s.stopping {
		s.stopping = true
		close(s.shutdown)
	}
	return nil
}
