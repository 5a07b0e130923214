package shim

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
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	plog "github.com/peapod-runtime/peapod/internal/log"
)

// headerTimeout bounds how long a new connection may take to send its header.
const headerTimeout = 10 * time.Second

// streamSession is one connection to the stream socket.
type streamSession struct {
	conn    *net.UnixConn
	r       *frameReader
	w       *frameWriter
	replied bool
}

// ok accepts the session.
func (ss *streamSession) ok(r streamReply) error {
	ss.replied = true
	return ss.w.writeJSON(frameOK, r)
}

// serveStreams accepts sessions on l until l is closed, each in its own goroutine of
// sessions. Sessions end when ctx does.
// inputHandlers are what a session does with its client's frames; stdin returning false
// ends the reading.
type inputHandlers struct {
	stdin  func([]byte) bool
	eof    func()
	resize func(TerminalSize)
}

// readInput hands the client's frames to h until the connection ends, h.stdin says stop, or
// a frame comes that a client never sends.
func (ss *streamSession) readInput(log *zap.Logger, h inputHandlers) {
	for {
		t, b, err := ss.r.next()
		if err != nil {
			return
		}
		switch t {
		case frameStdin:
			if !h.stdin(b) {
				return
			}
		case frameStdinClose:
			h.eof()
		case frameResize:
			h.resize(decodeResize(b))
		default:
			log.Warn("unexpected frame from a stream client", zap.Stringer("frame", t))
			return
		}
	}
}

func (s *Server) serveStreams(ctx context.Context, l net.Listener, sessions *sync.WaitGroup) {
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of fds, most likely: let sessions end before trying again.
			s.log.Warn("accept stream session", zap.Error(err))
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

	ss := &streamSession{conn: conn, r: newFrameReader(conn), w: newFrameWriter(conn)}
	if err := checkPeer(conn); err != nil {
		s.log.Warn("stream session refused", zap.Error(err))
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(headerTimeout))
	h, err := readHeader(ss.r)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		_ = ss.w.writeError(err)
		return
	}
	switch h.Op {
	case opExec:
		err = s.execStream(ctx, ss, h)
	case opAttach:
		err = s.attachStream(ctx, ss, h)
	default:
		err = fmt.Errorf("stream session: unknown op %q: %w", h.Op, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		if !ss.replied {
			_ = ss.w.writeError(err)
		}
		s.log.Info("stream session failed", zap.String("op", h.Op), plog.ContainerID(h.ID), zap.Error(err))
	}
}

func readHeader(r *frameReader) (streamHeader, error) {
	var h streamHeader
	t, p, err := r.next()
	if err != nil {
		return h, fmt.Errorf("stream session header: %w", err)
	}
	if t != frameHeader {
		return h, fmt.Errorf("stream session: first frame is %q, not a header: %w", t, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(p, &h); err != nil {
		return h, fmt.Errorf("stream session header: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return h, nil
}

// checkPeer accepts only our own user, as the ttrpc socket does (the socket's mode says the
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
func (s *Server) execStream(ctx context.Context, ss *streamSession, h streamHeader) error {
	if len(h.Args) == 0 {
		return fmt.Errorf("exec in container %s: no command: %w", h.ID, errdefs.ErrInvalidArgument)
	}
	c, err := s.runningContainer("exec in", h.ID)
	if err != nil {
		return err
	}
	p := execProcess(c.spec.Process, execCmd{Args: h.Args, Env: h.Env, Cwd: h.Cwd, User: h.User})

	var (
		stdio     Stdio
		childEnds []*os.File
		outs      []*os.File
		kinds     []frameType
		input     *inputEnd
		console   *consoleSocket
	)
	closeAll := func() {
		for _, f := range append(childEnds, outs...) {
			f.Close()
		}
		if input != nil {
			input.f.Close()
		}
		if console != nil {
			console.close()
		}
	}
	if h.Tty {
		p.Terminal = true
		if h.Size != nil {
			p.ConsoleSize = &specs.Box{Width: uint(h.Size.Width), Height: uint(h.Size.Height)}
		}
		if console, err = newConsoleSocket(); err != nil {
			return err
		}
		stdio.ConsoleSocket = console.child
	} else {
		pipe := func() (*os.File, *os.File, error) {
			r, w, err := os.Pipe()
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("exec pipe: %w", err)
			}
			return r, w, nil
		}
		if h.Stdin {
			r, w, err := pipe()
			if err != nil {
				return err
			}
			stdio.Stdin, input = r, &inputEnd{f: w}
			childEnds = append(childEnds, r)
		}
		for _, o := range []struct {
			want bool
			end  **os.File
			kind frameType
		}{{h.Stdout, &stdio.Stdout, frameStdout}, {h.Stderr, &stdio.Stderr, frameStderr}} {
			if !o.want {
				continue
			}
			r, w, err := pipe()
			if err != nil {
				return err
			}
			*o.end = w
			childEnds = append(childEnds, w)
			outs, kinds = append(outs, r), append(kinds, o.kind)
		}
	}
	pid, exited, err := s.spawnExec(ctx, c, p, stdio)
	for _, f := range childEnds {
		f.Close()
	}
	childEnds = nil
	if err != nil {
		closeAll()
		var nr *execNotRunnable
		if !errors.As(err, &nr) {
			return err
		}
		// The command's result, as a shell would give it.
		if err := ss.ok(streamReply{}); err != nil {
			return err
		}
		msg := []byte(nr.Error() + "\n")
		if h.Stderr && !h.Tty {
			_ = ss.w.writeData(frameStderr, msg)
		} else if h.Stdout {
			_ = ss.w.writeData(frameStdout, msg)
		}
		return ss.w.writeExit(nr.code)
	}
	if h.Tty {
		master, err := console.receive(5 * time.Second)
		console.close()
		console = nil
		if err != nil {
			s.reaper.killGroup(pid)
			<-exited
			return fmt.Errorf("exec in container %s: %w", h.ID, err)
		}
		outs, kinds = []*os.File{master}, []frameType{frameStdout}
		input = &inputEnd{f: master, tty: true}
	}
	log := c.log.With(zap.Int(plog.KeyPID, pid))
	log.Debug("interactive exec started", zap.Strings("args", h.Args), zap.Bool("tty", h.Tty))
	if err := ss.ok(streamReply{Stdin: h.Stdin}); err != nil {
		s.reaper.killGroup(pid)
	}

	gone := make(chan struct{}) // the client hung up or broke the protocol
	var goneOnce sync.Once
	clientGone := func() { goneOnce.Do(func() { close(gone) }) }
	var ending atomic.Bool
	// A stdin write blocked on a command that does not read asks this: the client may have
	// hung up with more stdin still queued on the socket, which must not be waited on.
	abandon := func() bool {
		if ending.Load() {
			return true
		}
		if peerClosed(ss.conn) {
			clientGone()
			return true
		}
		return false
	}

	out := &execOutput{files: outs, drain: s.opts.ExecDrain}
	out.start(func(i int, b []byte) error {
		if kinds[i] == frameStdout && !h.Stdout {
			return nil // a terminal's output nobody wants
		}
		if err := ss.w.write(kinds[i], b); err != nil {
			clientGone()
			return err
		}
		return nil
	})
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		defer clientGone()
		ss.readInput(log, inputHandlers{
			stdin: func(b []byte) bool {
				if !h.Stdin {
					return true
				}
				// A command that closed its stdin or exited loses what comes after.
				if err := input.write(b, abandon); err != nil && ending.Load() {
					return false
				}
				select {
				case <-gone:
					return false // what is still queued on the socket has nowhere to go
				default:
					return true
				}
			},
			eof: func() {
				if h.Stdin {
					input.eof(abandon)
				}
			},
			resize: func(sz TerminalSize) {
				if h.Tty {
					if err := setWinsize(outs[0], sz); err != nil {
						log.Debug("resize exec terminal", zap.Error(err))
					}
				}
			},
		})
	}()

	var ws unix.WaitStatus
	select {
	case ws = <-exited:
	case <-gone:
		s.reaper.killGroup(pid)
		ws = <-exited
	}
	out.commandExited()
	out.wait()
	out.close()
	ending.Store(true)
	if input != nil {
		input.release()
	}
	code, _ := exitCode(ws)
	select {
	case <-gone:
		log.Debug("interactive exec ended by its client", zap.Int("exit_code", code))
	default:
		_ = ss.w.writeExit(code)
		log.Debug("interactive exec exited", zap.Int("exit_code", code))
	}
	ss.conn.Close()
	<-inputDone
	return nil
}

// attachStream relays a container's own stdio until the container exits, the client hangs
// up or falls too far behind the output, or the shim stops. The container is never touched,
// except that the end of the stdin of the first client attached to a StdinOnce container
// closes the container's stdin.
func (s *Server) attachStream(ctx context.Context, ss *streamSession, h streamHeader) error {
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
	if err := ss.ok(streamReply{Stdin: stdin}); err != nil {
		return nil
	}
	log := c.log.With(zap.String("session", "attach"))
	log.Debug("attached", zap.Bool("stdin", stdin), zap.Bool("stdin_owner", owner))

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
			resize: func(sz TerminalSize) {
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
			if ss.w.writeData(ch.stream, ch.data) != nil {
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
				_ = ss.w.writeError(fmt.Errorf("attach to container %s: the client fell more than %d bytes behind the container's output and was detached", h.ID, maxAttachBacklog))
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
				_ = ss.w.writeExit(c.state().ExitCode)
			}
			return nil
		case <-gone:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
