package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/status"

	"github.com/peapod-runtime/peapod/shim/wire"
)

// fromWire converts an error the ttrpc client returned into an errdefs class (wire's table).
// A connection that is gone becomes ErrUnavailable: the shim is not there to answer.
func fromWire(op, socket string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("shim %s: %w", op, err)
	}
	if isConnectionGone(err) {
		return fmt.Errorf("shim %s at %s: %w: %w", op, socket, errdefs.ErrUnavailable, err)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("shim %s: %w", op, err)
	}
	if class := wire.CodeClass(st.Code()); class != nil {
		return fmt.Errorf("shim %s: %s: %w", op, st.Message(), class)
	}
	return fmt.Errorf("shim %s: %s", op, st.Message())
}

func isConnectionGone(err error) bool {
	if errors.Is(err, ttrpc.ErrClosed) || errors.Is(err, ttrpc.ErrServerClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	for _, e := range []error{syscall.ENOENT, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
