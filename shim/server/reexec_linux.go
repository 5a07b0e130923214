package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// A shim that has been busy (a create, an exec, an attach) keeps what the work left in its
// process for as long as it lives: heap spans with a few live objects each, the runtime's
// span sets and idle threads, the tables encoding/json builds. None of it is needed to hold
// a running pod, and a Go process never gives it back. So once a busy shim has been idle for
// a moment, it re-executes itself: it stops serving for a few milliseconds, hands every
// open file (the sockets, the containers' output pipes and logs, the state dir lock) and its
// state to a fresh copy of itself through execve (same pid, same children), which goes on
// serving. The daemon sees a connection close and reconnects (shim/client); a call made
// meanwhile is refused unprocessed with wire.ReexecutingMessage and sent again.

// errReexecuting refuses a call or session that comes while the shim re-executes: nothing
// of it was done, and the client sends it again once the shim serves.
var errReexecuting = fmt.Errorf("%s: %w", wire.ReexecutingMessage, errdefs.ErrUnavailable)

// reexecRetry is how soon an idle shim tries again when something was under way.
const reexecRetry = time.Second

// handover is what a shim passes to the process it re-executes into. Numbers are fds the
// new process inherits.
type handover struct {
	// Execs counts the re-executions of this shim so far.
	Execs          int                 `json:"execs"`
	Lock           int                 `json:"lock"`
	Listener       int                 `json:"listener"`
	StreamListener int                 `json:"stream_listener"`
	HolderPid      int                 `json:"holder_pid,omitempty"`
	HolderGone     bool                `json:"holder_gone,omitempty"`
	Seccomp        *bool               `json:"seccomp,omitempty"`
	Containers     []handoverContainer `json:"containers"`

	lock                     *os.File
	listener, streamListener *net.UnixListener
}

type handoverContainer struct {
	State        shim.ContainerState `json:"state"`
	StdinOnce    bool                `json:"stdin_once,omitempty"`
	StdinClaimed bool                `json:"stdin_claimed,omitempty"`
	Tty          bool                `json:"tty,omitempty"`
	// HasInput says the container was created with a stdin; Input is the writing end of its
	// pipe (-1 for none, or for a terminal, whose stdin is its console).
	HasInput    bool         `json:"has_input,omitempty"`
	Input       int          `json:"input"`
	InputClosed bool         `json:"input_closed,omitempty"`
	Readers     []int        `json:"readers,omitempty"`
	Log         *handoverLog `json:"log,omitempty"`
	// The runtime's view (helperContainer).
	Spec      []byte            `json:"spec"`
	SharedPid bool              `json:"shared_pid,omitempty"`
	Cgroups   map[string]string `json:"cgroups,omitempty"`
}

type handoverLog struct {
	Root string `json:"root"`
	Rel  string `json:"rel"`
	Path string `json:"path"`
	FD   int    `json:"fd"`
}

// pausableListener is the call server's listener. Its Close stops Accept without closing
// the socket, which a re-exec hands on (or serves again, if the exec fails).
type pausableListener struct {
	*net.UnixListener
	closed    chan struct{}
	closeOnce sync.Once
}

func newPausableListener(l *net.UnixListener) *pausableListener {
	return &pausableListener{UnixListener: l, closed: make(chan struct{})}
}

func (p *pausableListener) Accept() (net.Conn, error) {
	c, err := p.UnixListener.Accept()
	select {
	case <-p.closed:
		if c != nil {
			c.Close()
		}
		return nil, net.ErrClosed
	default:
	}
	return c, err
}

func (p *pausableListener) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closed)
		err = p.UnixListener.SetDeadline(time.Unix(1, 0))
	})
	return err
}

// enter admits a call (not a Wait) or a session, unless a re-exec is under way; heavy says it
// may leave work behind in the process (anything but a read of state).
func (s *Server) enter(heavy bool) bool {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	if s.gated {
		return false
	}
	s.active++
	if heavy {
		s.dirty = true
	}
	return true
}

func (s *Server) leave() {
	s.gateMu.Lock()
	s.active--
	s.gateMu.Unlock()
}

func (s *Server) reexecuting() bool {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	return s.gated
}

// idle runs IdleDelay after the last call: a shim that has been busy re-executes (when it
// can't yet, it tries again a little later). It does not collect garbage instead: in a
// fresh process, the collector's own structures would cost more memory than it gives back.
func (s *Server) idle() {
	retry, err := s.reexec()
	if err != nil {
		s.log.Error("re-exec", corelog.Error(err))
	}
	if retry {
		s.idleMu.Lock()
		if s.idleTimer != nil {
			s.idleTimer.Reset(reexecRetry)
		}
		s.idleMu.Unlock()
	}
}

// reexec re-executes the shim if it has been busy since it started and nothing is under
// way. It returns only if it did not (retry says something was under way), or if execve
// failed, after which the shim serves on as before.
func (s *Server) reexec() (retry bool, err error) {
	s.gateMu.Lock()
	if !s.dirty && !s.firstStage || s.gated {
		s.gateMu.Unlock()
		return false, nil
	}
	if s.active > 0 {
		s.gateMu.Unlock()
		return true, nil
	}
	s.gated = true
	s.gateMu.Unlock()
	reopen := func() {
		s.gateMu.Lock()
		s.gated = false
		s.gateMu.Unlock()
	}

	// Nothing may change from here on: no reaping, no create under way, no helper waiting.
	s.reaper.acquire()
	cs, busy := s.quiet()
	if busy != "" {
		s.reaper.release()
		reopen()
		s.log.Debug("re-exec put off", corelog.String("busy", busy))
		return true, nil
	}
	// Only now do pending Wait calls end: a re-exec put off leaves them be. (A Wait that
	// comes from now on is refused: gated.)
	calls := s.currentCalls()
	calls.endWaits(errReexecuting)

	// The output copiers stop at a line's end or flush what they hold as a partial entry:
	// what is still in the pipes is the next process's.
	var live []*container
	for _, c := range cs {
		if !c.hasExited() {
			live = append(live, c)
			for _, f := range c.readers {
				_ = f.SetReadDeadline(time.Unix(1, 0))
			}
		}
	}
	stuck := false
	deadline := time.NewTimer(ioDrainTimeout)
	for _, c := range live {
		select {
		case <-c.ioDone:
		case <-deadline.C:
			stuck = true
		}
		if stuck {
			break
		}
	}
	deadline.Stop()
	if stuck {
		s.restartCopiers(live)
		s.reaper.release()
		reopen()
		return true, fmt.Errorf("a container's output copier did not stop")
	}

	// Stop the call server: no call is under way (quiet), and every Wait was answered.
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = calls.Shutdown(sctx)
	cancel()

	h, fds, err := s.handover(cs)
	if err == nil {
		var fd int
		fd, err = writeHandover(h)
		if err == nil {
			fds = append(fds, fd)
			argv := s.opts.ReexecArgs(fd)
			s.log.Info("re-executing", corelog.Int("containers", len(cs)), corelog.Int("execs", h.Execs), corelog.Int64("rss_anon_kib", rssAnonKiB()))
			err = syscall.Exec(s.opts.ReexecBinary, argv, os.Environ())
			err = fmt.Errorf("execve: %w", err)
		}
	}
	// Still here: serve on.
	for _, fd := range fds {
		unix.Close(fd)
	}
	s.restartCopiers(live)
	s.serveCalls(context.Background())
	s.reaper.release()
	reopen()
	// Not again after every call: what failed here (the binary gone, out of memory or
	// files) fails the next time too.
	s.gateMu.Lock()
	s.dirty, s.firstStage = false, false
	s.gateMu.Unlock()
	return false, err
}

// quiet returns the containers, or what is under way. The caller holds the reaper.
func (s *Server) quiet() ([]*container, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reserved) > 0 {
		return nil, "create"
	}
	if s.stopping {
		return nil, "stopping"
	}
	s.helper.mu.Lock()
	warm := s.helper.warm != nil
	s.helper.mu.Unlock()
	if warm {
		return nil, "helper"
	}
	if s.holderPid > 0 && !s.holderGone && !s.reaper.waitingFor(s.holderPid) {
		return nil, "holder exit" // reaped, its watcher not yet told
	}
	cs := make([]*container, 0, len(s.containers))
	for _, c := range s.containers {
		if _, ok := c.rt.(*helperContainer); !ok {
			return nil, "runtime"
		}
		if !c.hasExited() && !s.reaper.waitingFor(c.rt.Pid()) {
			return nil, "exit"
		}
		cs = append(cs, c)
	}
	return cs, ""
}

// restartCopiers starts the output copiers of containers whose copiers a re-exec stopped.
func (s *Server) restartCopiers(cs []*container) {
	for _, c := range cs {
		for _, f := range c.readers {
			_ = f.SetReadDeadline(time.Time{})
		}
		select {
		case <-c.ioDone:
		default:
			continue // still copying
		}
		c.ioDone = make(chan struct{})
		c.hub = newOutputHub(maxAttachBacklog)
		c.startCopiers(c.tty)
	}
}

// handover dups every file the next process keeps (without close-on-exec) and describes
// the state; fds are the dups.
func (s *Server) handover(cs []*container) (h handover, fds []int, err error) {
	keep := func(rc syscall.Conn) int {
		if err != nil {
			return -1
		}
		fd, derr := dupConn(rc)
		if derr != nil {
			err = derr
			return -1
		}
		fds = append(fds, fd)
		return fd
	}
	h.Execs = s.execs + 1
	h.Lock = keep(s.lockFile)
	h.Listener = keep(s.listener)
	h.StreamListener = keep(s.streamListener)
	s.mu.Lock()
	h.HolderPid, h.HolderGone = s.holderPid, s.holderGone
	s.mu.Unlock()
	if sec, ok := s.helper.knownSeccomp(); ok {
		h.Seccomp = &sec
	}
	for _, c := range cs {
		rt := c.rt.(*helperContainer)
		hc := handoverContainer{
			State: c.state(), StdinOnce: c.stdinOnce, StdinClaimed: c.stdinClaimed.Load(), Tty: c.tty,
			Input: -1, Spec: rt.spec, SharedPid: rt.sharedPid, Cgroups: rt.cgroups,
		}
		if !c.hasExited() {
			if c.input != nil {
				hc.HasInput = true
				hc.InputClosed = c.input.closed.Load()
				if !c.tty && !hc.InputClosed {
					hc.Input = keep(c.input.f)
				}
			}
			for _, f := range c.readers {
				hc.Readers = append(hc.Readers, keep(f))
			}
			if w := c.logw; w != nil {
				w.mu.Lock()
				if w.f != nil {
					hc.Log = &handoverLog{Root: w.root, Rel: w.rel, Path: w.path, FD: keep(w.f)}
				}
				w.mu.Unlock()
			}
		}
		h.Containers = append(h.Containers, hc)
	}
	return h, fds, err
}

// dupConn dups rc's fd without close-on-exec (and without Fd, which would make a pollable
// file blocking).
func dupConn(rc syscall.Conn) (int, error) {
	raw, err := rc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(f uintptr) { fd, derr = unix.Dup(int(f)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	return fd, nil
}

// writeHandover puts h in a memfd the next process inherits.
func writeHandover(h handover) (int, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return -1, fmt.Errorf("encode handover: %w", err)
	}
	fd, err := unix.MemfdCreate("peapod-shim-handover", 0)
	if err != nil {
		return -1, fmt.Errorf("handover memfd: %w", err)
	}
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("write handover: %w", err)
		}
		b = b[n:]
	}
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("rewind handover: %w", err)
	}
	return fd, nil
}

// Resume is New for a shim that re-executed itself: fd is the handover the previous
// process left (ReexecArgs). Serve then serves what it handed over.
func Resume(opts Options, fd int) (*Server, error) {
	f := os.NewFile(uintptr(fd), "handover")
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("read handover: %w", err)
	}
	var h handover
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("decode handover: %w", err)
	}
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	if s.helper == nil {
		return nil, fmt.Errorf("resume: no helper: %w", errdefs.ErrInvalidArgument)
	}
	h.lock = os.NewFile(uintptr(h.Lock), "shim.lock")
	unix.CloseOnExec(h.Lock)
	if h.listener, err = fileListener(h.Listener); err == nil {
		h.streamListener, err = fileListener(h.StreamListener)
	}
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	s.execs = h.Execs
	if h.Seccomp != nil {
		s.helper.setSeccomp(*h.Seccomp)
	}
	s.holderPid, s.holderGone = h.HolderPid, h.HolderGone
	if s.holderPid > 0 && !s.holderGone {
		s.watchHolder(s.holderPid, s.reaper.register(s.holderPid))
	}
	for _, hc := range h.Containers {
		c := s.resumeContainer(hc)
		s.containers[c.id] = c
	}
	s.inherited = &h
	return s, nil
}

func fileListener(fd int) (*net.UnixListener, error) {
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listener fd %d: %w", fd, err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("listener fd %d is not a unix socket", fd)
	}
	return ul, nil
}

// inherit is fd as a file of this process (close-on-exec again).
func inherit(fd int, name string) *os.File {
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name)
}

func (s *Server) resumeContainer(hc handoverContainer) *container {
	id := hc.State.ID
	c := s.newContainer(id, hc.StdinOnce, hc.Tty)
	c.st = hc.State
	c.rt = &helperContainer{h: s.helper, id: id, spec: hc.Spec, pid: hc.State.Pid, sharedPid: hc.SharedPid, cgroups: hc.Cgroups}
	c.stdinClaimed.Store(hc.StdinClaimed)
	if hc.State.Status == shim.StatusStopped {
		close(c.exited)
		close(c.ioDone)
		c.hub.end()
		return c
	}
	for i, fd := range hc.Readers {
		c.readers = append(c.readers, inherit(fd, fmt.Sprintf("%s-out%d", id, i)))
	}
	switch {
	case hc.Tty && len(c.readers) > 0:
		c.console = c.readers[0]
		if hc.HasInput {
			c.input = &inputEnd{f: c.console, tty: true}
		}
	case hc.Input >= 0:
		c.input = &inputEnd{f: inherit(hc.Input, id+"-stdin")}
	case hc.HasInput:
		c.input = &inputEnd{} // closed already
	}
	if c.input != nil && hc.InputClosed {
		c.input.closed.Store(true)
	}
	if l := hc.Log; l != nil {
		c.logw = newLogWriter(l.Root, l.Rel, l.Path, inherit(l.FD, l.Path), c.log)
	}
	c.startCopiers(hc.Tty)
	go s.monitor(c, s.reaper.register(hc.State.Pid))
	return c
}

// rssAnonKiB is this process's resident anonymous memory (what a re-exec sheds).
func rssAnonKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			var n int64
			_, _ = fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &n)
			return n
		}
	}
	return -1
}
