package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/peapod-runtime/peapod/shim/wire"
)

// errConnClosed fails the calls of a connection that closed before they were answered.
var errConnClosed = fmt.Errorf("shim connection closed: %w", net.ErrClosed)

// callConn is one connection to a shim speaking the call protocol (shim/wire's call.go). One
// goroutine reads it; calls may be made from any number of goroutines at once.
type callConn struct {
	conn net.Conn
	w    *wire.FrameWriter

	mu     sync.Mutex
	next   uint32
	calls  map[uint32]*pendingCall
	closed bool
	err    error // why the connection ended

	onClose func()
}

// pendingCall is a call waiting for its answer. data, if set, receives the call's data
// frames; it runs in the reader with the connection's lock held, so it must only copy.
type pendingCall struct {
	data func(stream byte, p []byte) error
	done chan callResult // buffered: the reader never blocks on it
}

type callResult struct {
	body []byte
	err  error
}

// newCallConn reads the shim's hello on conn, then serves calls on it. The hello is waited
// for as long as ctx lasts, as an answer would be: a shim stopped, or slow to accept on a busy
// node, is not taken for another one.
func newCallConn(ctx context.Context, conn net.Conn, onClose func()) (*callConn, error) {
	r := wire.NewCallReader(conn)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	err := wire.ReadHello(r)
	if !stop() {
		// ctx ended: the read may have been cut short by it.
		if err == nil {
			err = ctx.Err()
		} else {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	cc := &callConn{conn: conn, w: wire.NewCallWriter(conn), calls: make(map[uint32]*pendingCall), onClose: onClose}
	go cc.read(r)
	return cc, nil
}

// Close closes the connection; calls under way fail with errConnClosed.
func (cc *callConn) Close() error {
	cc.mu.Lock()
	ended := cc.closed && cc.calls == nil // by its reader
	cc.closed = true
	cc.mu.Unlock()
	if err := cc.conn.Close(); err != nil && !ended {
		return err
	}
	return nil
}

func (cc *callConn) read(r *wire.FrameReader) {
	var err error
	for err == nil {
		var t wire.FrameType
		var p []byte
		if t, p, err = r.Next(); err != nil {
			break
		}
		err = cc.deliver(t, p)
	}
	cc.conn.Close()
	cc.mu.Lock()
	cc.closed = true
	cc.err = err
	calls := cc.calls
	cc.calls = nil
	cc.mu.Unlock()
	for _, pc := range calls {
		pc.done <- callResult{err: fmt.Errorf("%w: %w", errConnClosed, err)}
	}
	if cc.onClose != nil {
		cc.onClose()
	}
}

// deliver hands a frame from the shim to its call. Frames of calls the client gave up on
// are dropped; only a frame that breaks the protocol ends the connection.
func (cc *callConn) deliver(t wire.FrameType, p []byte) error {
	id, rest, err := wire.CallID(p)
	if err != nil {
		return err
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	pc := cc.calls[id]
	switch t {
	case wire.FrameData:
		if len(rest) < 1 {
			return fmt.Errorf("data frame without a stream: %w", wire.ErrProtocol)
		}
		if pc == nil {
			return nil
		}
		if pc.data == nil {
			return fmt.Errorf("data frame for a call without data: %w", wire.ErrProtocol)
		}
		if err := pc.data(rest[0], rest[1:]); err != nil {
			// The call is given up: the shim is told to stop its work (not from here: the
			// writer may wait for the shim, which may wait for this reader).
			delete(cc.calls, id)
			pc.done <- callResult{err: err}
			go func() { _ = cc.w.WriteCancel(id) }()
		}
		return nil
	case wire.FrameAnswer, wire.FrameFail:
		if pc == nil {
			return nil
		}
		delete(cc.calls, id)
		if t == wire.FrameFail {
			pc.done <- callResult{err: wire.DecodeFail(rest)}
		} else {
			pc.done <- callResult{body: append([]byte(nil), rest...)}
		}
		return nil
	}
	return fmt.Errorf("frame %q from the shim: %w", t, wire.ErrProtocol)
}

// call makes call m with req, and decodes the answer into resp (if not nil). ctx ending
// before the answer tells the shim, which stops the call's work, and returns ctx's error.
func (cc *callConn) call(ctx context.Context, m wire.Method, req, resp any, data func(stream byte, p []byte) error) error {
	pc := &pendingCall{data: data, done: make(chan callResult, 1)}
	cc.mu.Lock()
	if cc.closed {
		err := cc.err
		cc.mu.Unlock()
		return fmt.Errorf("%w: %w", errConnClosed, err)
	}
	cc.next++
	id := cc.next
	cc.calls[id] = pc
	cc.mu.Unlock()
	if err := cc.w.WriteCall(id, m, req); err != nil {
		cc.drop(id)
		if errors.Is(err, wire.ErrProtocol) {
			return err
		}
		// The connection broke under the write: the shim took nothing.
		return fmt.Errorf("%w: %w", errConnClosed, err)
	}
	select {
	case r := <-pc.done:
		if r.err != nil {
			return r.err
		}
		if resp != nil {
			return wire.DecodeBody(r.body, resp)
		}
		return nil
	case <-ctx.Done():
		if cc.drop(id) {
			_ = cc.w.WriteCancel(id)
		}
		return ctx.Err()
	}
}

// drop forgets call id; it says whether the call was still waiting.
func (cc *callConn) drop(id uint32) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.calls[id]; !ok || cc.calls == nil {
		return false
	}
	delete(cc.calls, id)
	return true
}
