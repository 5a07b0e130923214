package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The shim's transport is ttrpc, which carries errors as gRPC status codes (that is how ttrpc
// itself is built). This file is the only place that sees them: the Server turns errdefs
// classes into codes, and the Client turns codes back into errdefs classes, so nothing above
// the Client ever holds a status error.

var classes = []struct {
	class error
	code  codes.Code
}{
	{errdefs.ErrNotFound, codes.NotFound},
	{errdefs.ErrAlreadyExists, codes.AlreadyExists},
	{errdefs.ErrInvalidArgument, codes.InvalidArgument},
	{errdefs.ErrFailedPrecondition, codes.FailedPrecondition},
	{errdefs.ErrUnavailable, codes.Unavailable},
	{errdefs.ErrNotImplemented, codes.Unimplemented},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// toStatus converts a Server error to the status error ttrpc sends.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, c := range classes {
		if errors.Is(err, c.class) {
			return status.Error(c.code, err.Error())
		}
	}
	return status.Error(codes.Unknown, err.Error())
}

// fromWire converts an error the ttrpc client returned into an errdefs class.
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
	for _, c := range classes {
		if st.Code() == c.code {
			return fmt.Errorf("shim %s: %s: %w", op, st.Message(), c.class)
		}
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
