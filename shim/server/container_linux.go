package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// ioDrainTimeout bounds how long an exit waits for the container's output to reach the log:
// a process that escaped the kill may hold the pipe open forever.
const ioDrainTimeout = 2 * time.Second

// container is one container the Server owns.
type container struct {
	id        string
	rt        RuntimeContainer
	stateDir  string
	log       *corelog.Logger
	stdinOnce bool
	tty       bool

	// ops serializes Start, Delete and ReopenLog of this container.
	ops     sync.Mutex
	deleted bool

	// mu guards st; an update persists the new state before anyone can see it.
	mu sync.Mutex
	st shim.ContainerState

	exited chan struct{} // closed once the exit is persisted and in st
	ioDone chan struct{} // closed once the output copiers have stopped

	// input is the container's stdin when it was created with Stdin (the pipe's writing end,
	// or the console), shared by attached sessions; nil otherwise.
	input *inputEnd
	// stdinClaimed is set by the first session attached with stdin to a StdinOnce container:
	// the end of that session's stdin closes the container's.
	stdinClaimed atomic.Bool
	console      *os.File // the pty master of a terminal container
	logw         *LogWriter
	readers      []*os.File
	// hub fans the output out to attached sessions, beside the log.
	hub *outputHub
}

func (c *container) state() shim.ContainerState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// update applies f to a copy of the state, persists it, and only then makes it visible.
func (c *container) update(f func(*shim.ContainerState)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.st
	f(&next)
	if err := shim.WriteRecord(c.stateDir, next); err != nil {
		// Still report what happened: a lie about a live container would be worse than an
		// exit that is not on disk. The error is in the shim log.
		c.log.Error("persist container state", corelog.Error(err))
		c.st = next
		return err
	}
	c.st = next
	return nil
}

func (c *container) hasExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// createRequest is Create's input after decoding.
type createRequest struct {
	shim.CreateOptions
	specJSON []byte
}

func (s *Server) create(ctx context.Context, req createRequest) (int, error) {
	id := req.ID
	if err := checkID(id); err != nil {
		return 0, err
	}
	if req.Rootfs == "" {
		return 0, fmt.Errorf("container %s: no rootfs: %w", id, errdefs.ErrInvalidArgument)
	}
	// The spec stays JSON: the helper decodes and checks it (shim/wire's HelperRequest).
	spec := CreateSpec{JSON: req.specJSON, Rootfs: req.Rootfs, Terminal: req.Tty}
	if req.Spec != nil {
		b, err := json.Marshal(req.Spec)
		if err != nil {
			return 0, fmt.Errorf("container %s: encode spec: %v: %w", id, err, errdefs.ErrInvalidArgument)
		}
		spec.JSON = b
	}
	if len(spec.JSON) == 0 {
		return 0, fmt.Errorf("container %s: no spec: %w", id, errdefs.ErrInvalidArgument)
	}
	if err := s.reserve(id); err != nil {
		return 0, err
	}
	defer s.unreserve(id)

	c := s.newContainer(id, req.StdinOnce, req.Tty)
	if req.LogPath != "" {
		root, rel, err := shim.SplitLogPath(req.LogRoot, req.LogPath)
		if err != nil {
			return 0, fmt.Errorf("container %s: %w", id, err)
		}
		w, err := OpenLogWriter(root, rel, c.log)
		if err != nil {
			return 0, fmt.Errorf("container %s: %w", id, err)
		}
		c.logw = w
	}
	stdio, console, childEnds, err := c.openIO(req.Stdin, req.Tty)
	if err != nil {
		c.closeIO()
		return 0, fmt.Errorf("container %s: %w", id, err)
	}
	pid, exited, err := s.reaper.spawn(func() (int, error) {
		rc, err := s.opts.Runtime.Create(ctx, id, spec, stdio)
		if err != nil {
			return 0, err
		}
		c.rt = rc
		return rc.Pid(), nil
	})
	for _, f := range childEnds {
		f.Close()
	}
	if err != nil {
		if console != nil {
			console.close()
		}
		c.closeIO()
		return 0, fmt.Errorf("create container %s: %w", id, err)
	}
	if console != nil {
		c.console, err = console.receive(5 * time.Second)
		console.close()
		if err != nil {
			s.abort(ctx, c, exited)
			return 0, fmt.Errorf("container %s: %w", id, err)
		}
		c.readers = append(c.readers, c.console)
		if req.Stdin {
			c.input = &inputEnd{f: c.console, tty: true}
		}
	}
	c.startCopiers(req.Tty)

	c.st = shim.ContainerState{ID: id, Status: shim.StatusCreated, Pid: pid, CreatedAt: time.Now(), LogPath: req.LogPath}
	if err := shim.WriteRecord(s.opts.StateDir, c.st); err != nil {
		s.abort(ctx, c, exited)
		return 0, fmt.Errorf("container %s: %w", id, err)
	}
	s.mu.Lock()
	s.containers[id] = c
	s.mu.Unlock()
	go s.monitor(c, exited)
	c.log.Info("container created", corelog.Int(corelog.KeyPID, pid))
	return pid, nil
}

// newContainer is container id of this shim, before its process and output are set up.
func (s *Server) newContainer(id string, stdinOnce, tty bool) *container {
	return &container{
		id:        id,
		stateDir:  s.opts.StateDir,
		log:       s.log.With(corelog.ContainerID(id)),
		stdinOnce: stdinOnce,
		tty:       tty,
		exited:    make(chan struct{}),
		ioDone:    make(chan struct{}),
		hub:       newOutputHub(maxAttachBacklog),
	}
}

func (s *Server) reserve(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return fmt.Errorf("shim of pod %s is shutting down: %w", s.opts.PodID, errdefs.ErrFailedPrecondition)
	}
	if _, ok := s.containers[id]; ok || s.reserved[id] {
		return fmt.Errorf("container %s in pod %s: %w", id, s.opts.PodID, errdefs.ErrAlreadyExists)
	}
	s.reserved[id] = true
	return nil
}

func (s *Server) unreserve(id string) {
	s.mu.Lock()
	delete(s.reserved, id)
	s.mu.Unlock()
}

// abort undoes a create that failed after the init was started.
func (s *Server) abort(ctx context.Context, c *container, exited <-chan unix.WaitStatus) {
	_ = c.rt.Signal(ctx, unix.SIGKILL, true)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		c.log.Error("container init did not exit after SIGKILL")
	}
	s.reaper.hold(func() {
		if err := c.rt.Destroy(ctx); err != nil {
			c.log.Error("destroy failed container", corelog.Error(err))
		}
	})
	c.closeIO()
	_ = shim.RemoveRecord(s.opts.StateDir, c.id)
}

// openIO makes the new init's stdio: pipes (their read ends go to the log), or a console
// socket for a terminal. childEnds are closed once the init has them.
func (c *container) openIO(stdin, tty bool) (Stdio, *consoleSocket, []*os.File, error) {
	if tty {
		cs, err := newConsoleSocket()
		if err != nil {
			return Stdio{}, nil, nil, err
		}
		return Stdio{ConsoleSocket: cs.child}, cs, nil, nil
	}
	var stdio Stdio
	var childEnds []*os.File
	if stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return Stdio{}, nil, nil, fmt.Errorf("stdin pipe: %w", err)
		}
		c.input = &inputEnd{f: w}
		stdio.Stdin = r
		childEnds = append(childEnds, r)
	}
	for _, out := range []**os.File{&stdio.Stdout, &stdio.Stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range childEnds {
				f.Close()
			}
			return Stdio{}, nil, nil, fmt.Errorf("output pipe: %w", err)
		}
		*out = w
		childEnds = append(childEnds, w)
		c.readers = append(c.readers, r)
	}
	return stdio, nil, childEnds, nil
}

// startCopiers copies the container's output to its log, and to the attached sessions,
// until every writer is gone.
func (c *container) startCopiers(tty bool) {
	streams := []string{StreamStdout, StreamStderr}
	frames := []wire.FrameType{wire.FrameStdout, wire.FrameStderr}
	if tty {
		streams = streams[:1] // a terminal has one output, logged as stdout
	}
	// The last copier to stop ends the output: no goroutine waits for them (one shim runs
	// per pod, for its whole life, and each goroutine keeps a stack).
	left := atomic.Int64{}
	left.Store(int64(len(c.readers)))
	ended := func() {
		if left.Add(-1) <= 0 {
			c.hub.end()
			close(c.ioDone)
		}
	}
	if len(c.readers) == 0 {
		left.Store(1)
		ended()
		return
	}
	for i, f := range c.readers {
		r := &teeToHub{r: f, hub: c.hub, stream: frames[i], log: c.log}
		go func() {
			defer ended()
			if c.logw == nil {
				_, _ = io.Copy(io.Discard, r)
				return
			}
			c.logw.Copy(r, streams[i])
		}()
	}
}

func (c *container) closeIO() {
	for _, f := range c.readers {
		f.Close()
	}
	if c.input != nil {
		c.input.release()
	}
	if c.logw != nil {
		c.logw.Close()
	}
}

// monitor records the container's exit once the reaper has collected its init.
func (s *Server) monitor(c *container, exited <-chan unix.WaitStatus) {
	ws := <-exited
	finished := time.Now()
	code, signaled := exitCode(ws)
	// Ask the cgroup about OOM kills before anything removes it, and kill what is left of a
	// container sharing a PID namespace, so that its output ends.
	oom, err := c.rt.Stopped(context.Background())
	if err != nil {
		c.log.Warn("inspect stopped container", corelog.Error(err))
	}
	select {
	case <-c.ioDone:
	case <-time.After(ioDrainTimeout):
		c.log.Warn("container output still open after exit; closing it")
	}
	if c.input != nil {
		c.input.release()
	}
	_ = c.update(func(st *shim.ContainerState) {
		st.Status = shim.StatusStopped
		st.FinishedAt = finished
		st.ExitCode = code
		st.Signaled = signaled
		st.OOMKilled = oom
		switch {
		case oom:
			st.Reason = shim.ReasonOOMKilled
		case code == 0:
			st.Reason = shim.ReasonCompleted
		default:
			st.Reason = shim.ReasonError
		}
	})
	close(c.exited)
	s.currentCalls().exited(c)
	c.log.Info("container exited", corelog.Int("exit_code", code), corelog.Bool("signaled", signaled), corelog.Bool("oom_killed", oom))
}

func (s *Server) start(ctx context.Context, id string) (int, error) {
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	c.ops.Lock()
	defer c.ops.Unlock()
	st := c.state()
	if st.Status != shim.StatusCreated || c.hasExited() {
		return 0, fmt.Errorf("start container %s: it is %s: %w", id, st.Status, errdefs.ErrFailedPrecondition)
	}
	if err := c.rt.Start(ctx); err != nil {
		if c.hasExited() {
			return 0, fmt.Errorf("start container %s: %v: %w", id, err, errdefs.ErrFailedPrecondition)
		}
		return 0, fmt.Errorf("start container %s: %w", id, err)
	}
	started := time.Now()
	err = c.update(func(st *shim.ContainerState) {
		if st.StartedAt.IsZero() {
			st.StartedAt = started
		}
		if st.Status == shim.StatusCreated {
			st.Status = shim.StatusRunning
		}
	})
	if err != nil {
		return 0, fmt.Errorf("start container %s: %w", id, err)
	}
	c.log.Info("container started")
	return st.Pid, nil
}

func (s *Server) signal(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.hasExited() {
		return fmt.Errorf("signal container %s: it is stopped: %w", id, errdefs.ErrFailedPrecondition)
	}
	if err := c.rt.Signal(ctx, sig, all); err != nil {
		return fmt.Errorf("signal container %s: %w", id, err)
	}
	return nil
}

func (s *Server) reopenLog(id string) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	c.ops.Lock()
	defer c.ops.Unlock()
	if c.hasExited() || c.state().Status != shim.StatusRunning {
		return fmt.Errorf("reopen log of container %s: it is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	if c.logw == nil {
		return fmt.Errorf("reopen log of container %s: it has no log: %w", id, errdefs.ErrFailedPrecondition)
	}
	return c.logw.Reopen()
}

// delete kills the container if it still runs, destroys it and forgets it. Deleting an
// unknown container cleans up what an earlier shim may have left of it and succeeds.
func (s *Server) delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	c, err := s.get(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		var rerr error
		s.reaper.hold(func() { rerr = s.opts.Runtime.Remove(ctx, id) })
		if rerr != nil {
			return fmt.Errorf("delete container %s: %w", id, rerr)
		}
		return shim.RemoveRecord(s.opts.StateDir, id)
	}
	c.ops.Lock()
	defer c.ops.Unlock()
	if c.deleted {
		return nil
	}
	if !c.hasExited() {
		if err := c.rt.Signal(ctx, unix.SIGKILL, true); err != nil && !errors.Is(err, errdefs.ErrFailedPrecondition) {
			c.log.Warn("kill container for delete", corelog.Error(err))
		}
		select {
		case <-c.exited:
		case <-ctx.Done():
			return fmt.Errorf("delete container %s: waiting for it to exit: %w", id, ctx.Err())
		}
	}
	var derr error
	s.reaper.hold(func() { derr = c.rt.Destroy(ctx) })
	if derr != nil {
		return fmt.Errorf("delete container %s: %w", id, derr)
	}
	c.closeIO()
	if err := shim.RemoveRecord(s.opts.StateDir, id); err != nil {
		return err
	}
	c.deleted = true
	s.mu.Lock()
	delete(s.containers, id)
	s.mu.Unlock()
	c.log.Info("container deleted")
	return nil
}
