package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// headerTimeout bounds how long a new connection may take to send its header.
const headerTimeout = 10 * time.Second

// streamSession is one connection to the stream socket.
type streamSession struct {
	conn    *net.UnixConn
	r       *wire.FrameReader
	w       *wire.FrameWriter
	replied bool
}

// ok accepts the session.
func (ss *streamSession) ok(r wire.StreamReply) error {
	ss.replied = true
	return ss.w.WriteJSON(wire.FrameOK, r)
}

// inputHandlers are what a session does with its client's frames; stdin returning false
// ends the reading.
type inputHandlers struct {
	stdin  func([]byte) bool
	eof    func()
	resize func(shim.TerminalSize)
}

// readInput hands the client's frames to h until the connection ends, h.stdin says stop, or
// a frame comes that a client never sends.
func (ss *streamSession) readInput(log *corelog.Logger, h inputHandlers) {
	for {
		t, b, err := ss.r.Next()
		if err != nil {
			return
		}
		switch t {
		case wire.FrameStdin:
			if !h.stdin(b) {
				return
			}
		case wire.FrameStdinClose:
			h.eof()
		case wire.FrameResize:
			h.resize(wire.DecodeResize(b))
		default:
			log.Warn("unexpected frame from a stream client", corelog.Stringer("frame", t))
			return
		}
	}
}

// serveStreams accepts sessions on l until l is closed, each in its own goroutine of
// sessions. Sessions end when ctx does.
func (s *Server) serveStreams(ctx context.Context, l net.Listener, sessions *sync.WaitGroup) {
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of fds, most likely: let sessions end before trying again.
			s.log.Warn("accept stream session", corelog.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		sessions.Go(func() { s.serveStream(ctx, conn.(*net.UnixConn)) })
	}
}

// serveStream runs one session: it reads the header, then runs an exec or an attach. An error
// before the session is accepted goes back to the client as an error frame.
func (s *Server) serveStream(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	// The shim stopping ends every session: closing the connection fails whatever waits on it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s.touch()
	defer s.touch()

	ss := &streamSession{conn: conn, r: wire.NewFrameReader(conn), w: wire.NewFrameWriter(conn)}
	if err := checkPeer(conn); err != nil {
		s.log.Warn("stream session refused", corelog.Error(err))
		return
	}
	if !s.enter(true) {
		_ = ss.w.WriteError(errReexecuting)
		return
	}
	defer s.leave()
	_ = conn.SetReadDeadline(time.Now().Add(headerTimeout))
	h, err := readHeader(ss.r)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		_ = ss.w.WriteError(err)
		return
	}
	switch h.Op {
	case wire.OpExec:
		err = s.execStream(ctx, ss, h)
	case wire.OpAttach:
		err = s.attachStream(ctx, ss, h)
	default:
		err = fmt.Errorf("stream session: unknown op %q: %w", h.Op, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		if !ss.replied {
			_ = ss.w.WriteError(err)
		}
		s.log.Info("stream session failed", corelog.String("op", h.Op), corelog.ContainerID(h.ID), corelog.Error(err))
	}
}

func readHeader(r *wire.FrameReader) (wire.StreamHeader, error) {
	var h wire.StreamHeader
	t, p, err := r.Next()
	if err != nil {
		return h, fmt.Errorf("stream session header: %w", err)
	}
	if t != wire.FrameHeader {
		return h, fmt.Errorf("stream session: first frame is %q, not a header: %w", t, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(p, &h); err != nil {
		return h, fmt.Errorf("stream session header: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return h, nil
}

// checkPeer accepts only our own user, on both sockets (the socket's mode says the
// same; this holds even if the mode is changed).
func checkPeer(conn *net.UnixConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if cred.Uid != uint32(os.Geteuid()) {
		return fmt.Errorf("peer uid %d is not ours", cred.Uid)
	}
	return nil
}

// execStream runs an interactive exec: the command's stdio are pipes (or a terminal) relayed
// over the session until the command exits and its output is delivered. The client hanging
// up, or the shim stopping, kills the command's process group.
func (s *Server) execStream(ctx context.Context, ss *streamSession, h wire.StreamHeader) error {
	if len(h.Args) == 0 {
		return fmt.Errorf("exec in container %s: no command: %w", h.ID, errdefs.ErrInvalidArgument)
	}
	c, err := s.runningContainer("exec in", h.ID)
	if err != nil {
		return err
	}
	p := wire.ExecOverrides{Args: h.Args, Env: h.Env, Cwd: h.Cwd, User: h.User}
	if h.Tty {
		p.Terminal = true
		if h.Size != nil {
			p.ConsoleSize = &specs.Box{Width: uint(h.Size.Width), Height: uint(h.Size.Height)}
		}
	}
	eio, err := newExecIO(h)
	if err != nil {
		return err
	}
	pid, exited, err := s.spawnExec(ctx, c, p, eio.stdio)
	eio.closeChildEnds()
	if err != nil {
		eio.closeAll()
		var nr *execNotRunnable
		if !errors.As(err, &nr) {
			return err
		}
		return ss.notRunnable(h, nr)
	}
	if h.Tty {
		if err := eio.receiveTerminal(); err != nil {
			s.reaper.killGroup(pid)
			<-exited
			return fmt.Errorf("exec in container %s: %w", h.ID, err)
		}
	}
	log := c.log.With(corelog.Int(corelog.KeyPID, pid))
	log.Debug("interactive exec started", corelog.Strings("args", h.Args), corelog.Bool("tty", h.Tty))
	if err := ss.ok(wire.StreamReply{Stdin: h.Stdin}); err != nil {
		s.reaper.killGroup(pid)
	}
	s.relayExec(ss, h, eio, log, pid, exited)
	return nil
}

// execIO are the shim's ends of an interactive exec's stdio: pipes, or the terminal whose
// master the command sends back over the console socket.
type execIO struct {
	stdio     Stdio            // the command's ends, as it is spawned
	childEnds []*os.File       // the command's ends, closed here once it is spawned
	outs      []*os.File       // what the command writes, read here
	kinds     []wire.FrameType // the frame type of each of outs
	input     *inputEnd        // the command's stdin (the terminal with a tty), or nil
	console   *consoleSocket
}

// newExecIO makes the stdio of an exec session h asks for: a console socket for a terminal,
// otherwise one pipe per stream the client has.
func newExecIO(h wire.StreamHeader) (*execIO, error) {
	e := &execIO{}
	if h.Tty {
		console, err := newConsoleSocket()
		if err != nil {
			return nil, err
		}
		e.console, e.stdio.ConsoleSocket = console, console.child
		return e, nil
	}
	if h.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("exec pipe: %w", err)
		}
		e.stdio.Stdin, e.input = r, &inputEnd{f: w}
		e.childEnds = append(e.childEnds, r)
	}
	for _, o := range []struct {
		want bool
		end  **os.File
		kind wire.FrameType
	}{{h.Stdout, &e.stdio.Stdout, wire.FrameStdout}, {h.Stderr, &e.stdio.Stderr, wire.FrameStderr}} {
		if !o.want {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			e.closeAll()
			return nil, fmt.Errorf("exec pipe: %w", err)
		}
		*o.end = w
		e.childEnds = append(e.childEnds, w)
		e.outs, e.kinds = append(e.outs, r), append(e.kinds, o.kind)
	}
	return e, nil
}

// closeChildEnds closes the command's ends once it holds them.
func (e *execIO) closeChildEnds() {
	for _, f := range e.childEnds {
		f.Close()
	}
	e.childEnds = nil
}

// closeAll closes every end of a session that does not run.
func (e *execIO) closeAll() {
	for _, f := range append(e.childEnds, e.outs...) {
		f.Close()
	}
	if e.input != nil {
		e.input.f.Close()
	}
	if e.console != nil {
		e.console.close()
	}
}

// receiveTerminal takes the master of the command's new terminal: its one output and input.
func (e *execIO) receiveTerminal() error {
	master, err := e.console.receive(5 * time.Second)
	e.console.close()
	e.console = nil
	if err != nil {
		return err
	}
	e.outs, e.kinds = []*os.File{master}, []wire.FrameType{wire.FrameStdout}
	e.input = &inputEnd{f: master, tty: true}
	return nil
}

// notRunnable gives the client a command that could not start as a shell would: its message
// on stderr (stdout with a tty) and exit code 127 or 126.
func (ss *streamSession) notRunnable(h wire.StreamHeader, nr *execNotRunnable) error {
	if err := ss.ok(wire.StreamReply{}); err != nil {
		return err
	}
	msg := []byte(nr.Error() + "\n")
	if h.Stderr && !h.Tty {
		_ = ss.w.WriteData(wire.FrameStderr, msg)
	} else if h.Stdout {
		_ = ss.w.WriteData(wire.FrameStdout, msg)
	}
	return ss.w.WriteExit(nr.code)
}

// execRelay is the state an exec session's output pumps and input reader share.
type execRelay struct {
	ss     *streamSession
	gone   chan struct{} // the client hung up or broke the protocol
	once   sync.Once
	ending atomic.Bool // the command exited: its stdin has nowhere to go
}

func (r *execRelay) clientGone() { r.once.Do(func() { close(r.gone) }) }

// abandon is asked by a stdin write blocked on a command that does not read: the client may
// have hung up with more stdin still queued on the socket, which must not be waited on.
func (r *execRelay) abandon() bool {
	if r.ending.Load() {
		return true
	}
	if peerClosed(r.ss.conn) {
		r.clientGone()
		return true
	}
	return false
}

// relayExec relays an accepted exec session until the command has exited and its output
// is delivered (or the client is gone, which kills the command's process group), then
// sends the exit code and closes the connection.
func (s *Server) relayExec(ss *streamSession, h wire.StreamHeader, eio *execIO, log *corelog.Logger, pid int, exited <-chan unix.WaitStatus) {
	r := &execRelay{ss: ss, gone: make(chan struct{})}
	out := &execOutput{files: eio.outs, drain: s.opts.ExecDrain}
	out.start(func(i int, b []byte) error {
		if eio.kinds[i] == wire.FrameStdout && !h.Stdout {
			return nil // a terminal's output nobody wants
		}
		if err := ss.w.WriteFrame(eio.kinds[i], b); err != nil {
			r.clientGone()
			return err
		}
		return nil
	})
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		defer r.clientGone()
		ss.readInput(log, r.inputHandlers(h, eio, log))
	}()

	var ws unix.WaitStatus
	select {
	case ws = <-exited:
	case <-r.gone:
		s.reaper.killGroup(pid)
		ws = <-exited
	}
	out.commandExited()
	out.wait()
	out.close()
	r.ending.Store(true)
	if eio.input != nil {
		eio.input.release()
	}
	code, _ := exitCode(ws)
	select {
	case <-r.gone:
		log.Debug("interactive exec ended by its client", corelog.Int("exit_code", code))
	default:
		_ = ss.w.WriteExit(code)
		log.Debug("interactive exec exited", corelog.Int("exit_code", code))
	}
	ss.conn.Close()
	<-inputDone
}

// inputHandlers pass the client's stdin, its end and terminal resizes to the command.
func (r *execRelay) inputHandlers(h wire.StreamHeader, eio *execIO, log *corelog.Logger) inputHandlers {
	return inputHandlers{
		stdin: func(b []byte) bool {
			if !h.Stdin {
				return true
			}
			// A command that closed its stdin or exited loses what comes after.
			if err := eio.input.write(b, r.abandon); err != nil && r.ending.Load() {
				return false
			}
			select {
			case <-r.gone:
				return false // what is still queued on the socket has nowhere to go
			default:
				return true
			}
		},
		eof: func() {
			if h.Stdin {
				eio.input.eof(r.abandon)
			}
		},
		resize: func(sz shim.TerminalSize) {
			if h.Tty {
				if err := setWinsize(eio.outs[0], sz); err != nil {
					log.Debug("resize exec terminal", corelog.Error(err))
				}
			}
		},
	}
}

// attachStream relays a container's own stdio until the container exits, the client hangs
// up or falls too far behind the output, or the shim stops. The container is never touched,
// except that the end of the stdin of the first client attached to a StdinOnce container
// closes the container's stdin.
func (s *Server) attachStream(ctx context.Context, ss *streamSession, h wire.StreamHeader) error {
	c, err := s.runningContainer("attach to", h.ID)
	if err != nil {
		return err
	}
	q := c.hub.subscribe(h.Stdout, h.Stderr)
	defer c.hub.unsubscribe(q)
	in := c.input
	stdin := h.Stdin && in != nil && !in.closed.Load()
	owner := stdin && c.stdinOnce && c.stdinClaimed.CompareAndSwap(false, true)
	if h.Size != nil && c.console != nil {
		_ = setWinsize(c.console, *h.Size)
	}
	if err := ss.ok(wire.StreamReply{Stdin: stdin}); err != nil {
		return nil
	}
	log := c.log.With(corelog.String("session", "attach"))
	log.Debug("attached", corelog.Bool("stdin", stdin), corelog.Bool("stdin_owner", owner))

	gone := make(chan struct{})
	var ending, hungUp atomic.Bool
	abandon := func() bool {
		if ending.Load() || hungUp.Load() {
			return true
		}
		if peerClosed(ss.conn) {
			hungUp.Store(true)
			return true
		}
		return false
	}
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		defer close(gone)
		open := stdin
		endStdin := func() {
			if open {
				open = false
				if owner {
					log.Info("first attached client closed its stdin; closing the container's (stdin once)")
					in.eof(abandon)
				}
			}
		}
		// A disconnect ends the client's stdin as its EOF does.
		defer endStdin()
		ss.readInput(log, inputHandlers{
			stdin: func(b []byte) bool {
				if open {
					_ = in.write(b, abandon)
				}
				return !hungUp.Load() && !ending.Load()
			},
			eof: endStdin,
			resize: func(sz shim.TerminalSize) {
				if c.console != nil {
					_ = setWinsize(c.console, sz)
				}
			},
		})
	}()
	defer func() {
		ending.Store(true)
		ss.conn.Close()
		<-inputDone
	}()

	send := func(chunks []outputChunk) bool {
		for _, ch := range chunks {
			if ss.w.WriteData(ch.stream, ch.data) != nil {
				return false
			}
		}
		return true
	}
	exited := c.exited
	for {
		select {
		case <-q.ready:
			chunks, ended, dropped := q.take()
			if dropped {
				// Nothing more goes to this client; it may not even read the error.
				_ = ss.conn.SetWriteDeadline(time.Now().Add(time.Second))
				_ = ss.w.WriteError(fmt.Errorf("attach to container %s: the client fell more than %d bytes behind the container's output and was detached", h.ID, maxAttachBacklog))
				return nil
			}
			if !send(chunks) {
				return nil
			}
			if ended {
				q = &outputQueue{} // nothing more comes: wait for the exit alone
			}
		case <-exited:
			// The output has ended by now, or was given up on (ioDrainTimeout).
			chunks, _, _ := q.take()
			if send(chunks) {
				_ = ss.w.WriteExit(c.state().ExitCode)
			}
			return nil
		case <-gone:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
