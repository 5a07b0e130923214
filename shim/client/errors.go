package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/shim/wire"
)

// fromWire converts an error of a call into an errdefs class (wire's table).
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
	return fmt.Errorf("shim %s: %w", op, err)
}

func isConnectionGone(err error) bool {
	var ce *wire.CallError
	if errors.As(err, &ce) {
		return false // an answer
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	for _, e := range []error{syscall.ENOENT, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
