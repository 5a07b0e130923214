package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/netns"
)

// PortForward connects stream to TCP port inside pod id's network namespace, on its loopback
// (127.0.0.1, else ::1), which also reaches a server bound only to the pod's own localhost; a
// hostNetwork pod's port is the node's. It returns once the pod's side of the connection has
// ended or ctx is done; the client's end of stream may then still be draining, and the caller
// closes it. A pod that is not ready is FailedPrecondition.
func (m *Manager) PortForward(ctx context.Context, id string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port %d is not a TCP port: %w", port, errdefs.ErrInvalidArgument)
	}
	sb, err := m.Get(id)
	if err != nil {
		return err
	}
	if sb.State != StateReady {
		return fmt.Errorf("pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	conn, err := dialPod(ctx, sb.NetNSPath, int(port))
	if err != nil {
		return fmt.Errorf("port forward to port %d of pod %s: %w", port, sb.ID, err)
	}
	defer conn.Close()
	l := log.From(ctx).With(log.PodSandboxID(sb.ID), zap.Int32("port", port))
	l.Debug("port forward connected")

	// Client to pod: at the client's end of input, half-close, so that the server sees EOF
	// and can still answer. This copy ends when the caller closes stream after we return.
	go func() {
		_, _ = io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		copied <- err
	}()
	select {
	case err = <-copied:
	case <-ctx.Done():
		conn.Close()
		err = <-copied
	}
	l.Debug("port forward ended", zap.Error(err))
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("port forward to port %d of pod %s: %w", port, sb.ID, err)
	}
	return nil
}

// dialPod connects to port on the loopback of the network namespace pinned at nsPath, or of
// the node when nsPath is empty. The socket is created inside the namespace and stays there.
func dialPod(ctx context.Context, nsPath string, port int) (net.Conn, error) {
	dial := func() (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return conn, nil
		}
		if conn6, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err6 == nil {
			return conn6, nil
		}
		return nil, err
	}
	if nsPath == "" {
		return dial()
	}
	var conn net.Conn
	err := netns.Do(nsPath, func() error {
		var err error
		conn, err = dial()
		return err
	})
	return conn, err
}
