package stream

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
)

// A hijacked connection's request context is never cancelled when the client goes away, and
// the library hands that context to sessions. watchedConn notices the end of the connection
// (the protocol code keeps reading it) and cancels the context of the requests made on it, so
// that a disconnected client's exec is killed and nothing waits for it.
type watchedListener struct{ net.Listener }

func (l *watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &watchedConn{Conn: c}, nil
}

type watchedConn struct {
	net.Conn
	mu     sync.Mutex
	gone   bool
	cancel context.CancelFunc
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	// A deadline is how net/http stops its own background read at a hijack: not an end.
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.markGone()
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.markGone()
	return c.Conn.Close()
}

func (c *watchedConn) markGone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone = true
	if c.cancel != nil {
		c.cancel()
	}
}

// connContext is the base context of the requests on c: cancelled when c is gone.
func connContext(ctx context.Context, c net.Conn) context.Context {
	wc, ok := c.(*watchedConn)
	if !ok {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	wc.mu.Lock()
	defer wc.mu.Unlock()
	wc.cancel = cancel
	if wc.gone {
		cancel()
	}
	return ctx
}
