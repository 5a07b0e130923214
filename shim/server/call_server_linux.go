package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// callServer serves the call protocol (shim/wire's call.go) on the shim's socket. Each
// connection has one goroutine, its reader. State, List and Wait are answered by the reader
// itself, and a Wait whose container still runs is only noted on its connection, and answered
// when the container's monitor records the exit: an idle pod's shim holds no goroutine for
// the daemon's waits. Every other call runs in a goroutine of its own.
type callServer struct {
	s *Server
	l *pausableListener

	mu      sync.Mutex
	conns   map[*callConn]struct{}
	running int  // calls with a goroutine under way
	closing bool // Shutdown began: no new connection
}

// callConn is one client connection.
type callConn struct {
	srv  *callServer
	conn *net.UnixConn
	w    *wire.FrameWriter
	ctx  context.Context
	stop context.CancelFunc

	mu      sync.Mutex
	cancels map[uint32]context.CancelFunc // calls under way
	waits   map[uint32]*container         // Waits noted with their container
}

func newCallServer(s *Server, l *pausableListener) *callServer {
	return &callServer{s: s, l: l, conns: make(map[*callConn]struct{})}
}

// Serve accepts connections until the listener is closed (paused).
func (cs *callServer) Serve(ctx context.Context) error {
	for {
		conn, err := cs.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return net.ErrClosed
			}
			// Out of fds, most likely: let calls end before trying again.
			cs.s.log.Warn("accept", corelog.Error(err))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		uc := conn.(*net.UnixConn)
		if err := checkPeer(uc); err != nil {
			cs.s.log.Warn("connection refused", corelog.Error(err))
			uc.Close()
			continue
		}
		cctx, stop := context.WithCancel(ctx)
		c := &callConn{srv: cs, conn: uc, w: wire.NewCallWriter(uc), ctx: cctx, stop: stop,
			cancels: make(map[uint32]context.CancelFunc), waits: make(map[uint32]*container)}
		cs.mu.Lock()
		if cs.closing {
			cs.mu.Unlock()
			stop()
			uc.Close()
			continue
		}
		cs.conns[c] = struct{}{}
		cs.mu.Unlock()
		if err := c.w.WriteHello(); err != nil {
			c.close()
			continue
		}
		go c.serve()
	}
}

// Shutdown stops accepting, waits until every call under way is answered (or ctx ends),
// and closes every connection. Waits still noted are not answered: the caller ends them first
// (endWaits), or their client sees the connection close.
func (cs *callServer) Shutdown(ctx context.Context) error {
	cs.mu.Lock()
	cs.closing = true
	cs.mu.Unlock()
	_ = cs.l.Close()
	var err error
	for {
		cs.mu.Lock()
		n := cs.running
		cs.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("%d calls still under way: %w", n, ctx.Err())
		case <-time.After(time.Millisecond):
			continue
		}
		break
	}
	for _, c := range cs.connections() {
		c.close()
	}
	return err
}

// connections is a snapshot of the open connections.
func (cs *callServer) connections() []*callConn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	conns := make([]*callConn, 0, len(cs.conns))
	for c := range cs.conns {
		conns = append(conns, c)
	}
	return conns
}

// endWaits answers every noted Wait with err.
func (cs *callServer) endWaits(err error) {
	for _, c := range cs.connections() {
		for _, id := range c.takeWaits(nil) {
			_ = c.w.WriteFail(id, err)
		}
	}
}

// exited answers the Waits noted for ctr, which has just exited. A nil server (a resumed
// shim not serving yet) has none.
func (cs *callServer) exited(ctr *container) {
	if cs == nil {
		return
	}
	st := ctr.state()
	for _, c := range cs.connections() {
		for _, id := range c.takeWaits(ctr) {
			_ = c.w.WriteAnswer(id, st)
		}
	}
}

// takeWaits forgets the connection's noted Waits for ctr (nil: all of them) and returns their
// call ids.
func (c *callConn) takeWaits(ctr *container) []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint32
	for id, w := range c.waits {
		if ctr == nil || w == ctr {
			ids = append(ids, id)
			delete(c.waits, id)
		}
	}
	return ids
}

// close ends the connection: its calls' contexts end and its noted Waits are dropped.
func (c *callConn) close() {
	c.stop()
	c.conn.Close()
	c.takeWaits(nil)
	c.srv.mu.Lock()
	delete(c.srv.conns, c)
	c.srv.mu.Unlock()
}

func (c *callConn) serve() {
	defer c.close()
	r := wire.NewCallReader(c.conn)
	for {
		t, p, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				c.srv.s.log.Warn("read call", corelog.Error(err))
			}
			return
		}
		switch t {
		case wire.FrameCall:
			call, err := wire.ParseCall(p)
			if err != nil {
				c.srv.s.log.Warn("read call", corelog.Error(err))
				return
			}
			c.dispatch(call)
		case wire.FrameCancel:
			id, _, _ := wire.CallID(p)
			c.cancel(id)
		default:
			c.srv.s.log.Warn("read call", corelog.Error(fmt.Errorf("frame %q from a client: %w", t, wire.ErrProtocol)))
			return
		}
	}
}

// cancel ends call id's context, or answers its noted Wait.
func (c *callConn) cancel(id uint32) {
	c.mu.Lock()
	stop := c.cancels[id]
	ctr, waiting := c.waits[id]
	delete(c.waits, id)
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	if waiting {
		_ = c.w.WriteFail(id, fmt.Errorf("wait for container %s: %w", ctr.id, context.Canceled))
	}
}

// dispatch runs one call. Its request is decoded here: the frame's payload is the reader's.
func (c *callConn) dispatch(call wire.Call) {
	s := c.srv.s
	if !call.Method.Valid() {
		_ = c.w.WriteFail(call.ID, fmt.Errorf("shim call %s: %w", call.Method, errdefs.ErrNotImplemented))
		return
	}
	if call.Method == wire.MethodWait {
		c.wait(call)
		return
	}
	run, err := c.decode(call)
	if err != nil {
		_ = c.w.WriteFail(call.ID, err)
		return
	}
	// Reads of state do not make a re-exec worth it; the two that cannot block are answered
	// by the reader.
	inline := call.Method == wire.MethodState || call.Method == wire.MethodList
	if !s.enter(!inline && call.Method != wire.MethodInfo) {
		_ = c.w.WriteFail(call.ID, errReexecuting)
		return
	}
	if inline {
		start := time.Now()
		resp, err := run(c.ctx)
		c.finish(call, start, resp, err)
		s.leave()
		s.touch()
		return
	}
	ctx, stop := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.cancels[call.ID] = stop
	c.mu.Unlock()
	c.srv.mu.Lock()
	c.srv.running++
	c.srv.mu.Unlock()
	go func() {
		start := time.Now()
		resp, err := run(ctx)
		c.mu.Lock()
		delete(c.cancels, call.ID)
		c.mu.Unlock()
		stop()
		c.finish(call, start, resp, err)
		s.leave()
		s.touch()
		c.srv.mu.Lock()
		c.srv.running--
		c.srv.mu.Unlock()
	}()
}

// finish answers a call with resp, or with its error (logged).
func (c *callConn) finish(call wire.Call, start time.Time, resp any, err error) {
	if err == nil {
		// A client gone meanwhile has nothing to be told.
		_ = c.w.WriteAnswer(call.ID, resp)
		return
	}
	if !errors.Is(err, errReexecuting) {
		c.srv.s.log.Info("call failed", corelog.String("call", call.Method.String()), corelog.Duration("duration", time.Since(start)), corelog.Error(err))
	}
	_ = c.w.WriteFail(call.ID, err)
}

// handler is a call's work once its request is decoded: it returns the answer (nil: an
// empty one).
type handler func(context.Context) (any, error)

// done answers a call whose work has no result but its error.
func done(err error) (any, error) { return nil, err }

// decode decodes a call's request and returns the work that answers it.
func (c *callConn) decode(call wire.Call) (handler, error) {
	s := c.srv.s
	switch call.Method {
	case wire.MethodInfo:
		return func(ctx context.Context) (any, error) { return s.info(ctx), nil }, nil
	case wire.MethodList:
		return func(context.Context) (any, error) { return wire.ListResponse{Containers: s.list()}, nil }, nil
	case wire.MethodPrepare:
		// A helper for the Create the daemon says is coming, unless one waits already: its
		// start then overlaps the daemon's own preparation of the container.
		return func(context.Context) (any, error) {
			if s.helper != nil {
				s.helper.Warm()
			}
			return nil, nil
		}, nil
	case wire.MethodShutdown:
		return func(context.Context) (any, error) { return done(s.requestShutdown()) }, nil
	case wire.MethodCreate:
		var r wire.CreateRequest
		if err := decodeRequest(call, &r); err != nil {
			return nil, err
		}
		req := createRequest{
			CreateOptions: shim.CreateOptions{ID: r.ID, Rootfs: r.Rootfs, Stdin: r.Stdin, StdinOnce: r.StdinOnce,
				Tty: r.Tty, LogPath: r.LogPath, LogRoot: r.LogRoot},
			specJSON: r.Spec,
		}
		return func(ctx context.Context) (any, error) { return pidResponse(s.create(ctx, req)) }, nil
	case wire.MethodSignal:
		var r wire.SignalRequest
		if err := decodeRequest(call, &r); err != nil {
			return nil, err
		}
		return func(ctx context.Context) (any, error) {
			return done(s.signal(ctx, r.ID, syscall.Signal(r.Signal), r.All))
		}, nil
	case wire.MethodExecSync:
		return c.decodeExecSync(call)
	case wire.MethodCheckpoint:
		var r wire.CheckpointRequest
		if err := decodeRequest(call, &r); err != nil {
			return nil, err
		}
		return func(ctx context.Context) (any, error) {
			return done(s.checkpoint(ctx, r.ID, r.ImagesDir, r.WorkDir, r.LeaveRunning))
		}, nil
	}
	// The calls that name only a container.
	var r wire.IDRequest
	if err := decodeRequest(call, &r); err != nil {
		return nil, err
	}
	switch call.Method {
	case wire.MethodStart:
		return func(ctx context.Context) (any, error) { return pidResponse(s.start(ctx, r.ID)) }, nil
	case wire.MethodState:
		return func(context.Context) (any, error) {
			ctr, err := s.get(r.ID)
			if err != nil {
				return nil, err
			}
			return ctr.state(), nil
		}, nil
	case wire.MethodDelete:
		return func(ctx context.Context) (any, error) { return done(s.delete(ctx, r.ID)) }, nil
	case wire.MethodReopenLog:
		return func(context.Context) (any, error) { return done(s.reopenLog(r.ID)) }, nil
	}
	return nil, fmt.Errorf("shim call %s: %w", call.Method, errdefs.ErrNotImplemented)
}

func pidResponse(pid int, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return wire.PidResponse{Pid: pid}, nil
}

// decodeExecSync: the command's output goes out in data frames as it comes, its exit in the
// answer.
func (c *callConn) decodeExecSync(call wire.Call) (handler, error) {
	var r wire.ExecSyncRequest
	if err := decodeRequest(call, &r); err != nil {
		return nil, err
	}
	o := shim.ExecSyncOptions{Args: r.Args, Env: r.Env, Cwd: r.Cwd, User: r.User, Timeout: time.Duration(r.Timeout)}
	id := call.ID // not call: its body is the reader's buffer
	return func(ctx context.Context) (any, error) {
		var exit wire.ExecSyncExit
		err := c.srv.s.execSync(ctx, r.ID, o, func(ch execChunk) error {
			if err := c.w.WriteCallData(id, wire.StreamStdout, ch.stdout); err != nil {
				return err
			}
			if err := c.w.WriteCallData(id, wire.StreamStderr, ch.stderr); err != nil {
				return err
			}
			if ch.exited {
				exit = wire.ExecSyncExit{ExitCode: ch.exitCode, TimedOut: ch.timedOut}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return exit, nil
	}, nil
}

func decodeRequest(call wire.Call, v any) error {
	if err := wire.DecodeBody(call.Body, v); err != nil {
		return fmt.Errorf("shim call %s: %w: %w", call.Method, errdefs.ErrInvalidArgument, err)
	}
	return nil
}

// wait answers a Wait at once if its container has exited, and otherwise notes it on the
// connection: the container's exit answers it (callServer.exited).
func (c *callConn) wait(call wire.Call) {
	s := c.srv.s
	var r wire.IDRequest
	if err := decodeRequest(call, &r); err != nil {
		_ = c.w.WriteFail(call.ID, err)
		return
	}
	if s.reexecuting() {
		_ = c.w.WriteFail(call.ID, errReexecuting)
		return
	}
	ctr, err := s.get(r.ID)
	if err != nil {
		_ = c.w.WriteFail(call.ID, err)
		return
	}
	// Under the lock: an exit closes exited before it looks for the Waits to answer.
	c.mu.Lock()
	exited := ctr.hasExited()
	if !exited {
		c.waits[call.ID] = ctr
	}
	c.mu.Unlock()
	if exited {
		_ = c.w.WriteAnswer(call.ID, ctr.state())
	}
	s.touch()
}
