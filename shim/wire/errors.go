package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// classes are the errdefs classes that cross the process boundary between the daemon and a
// shim, each with the two forms it crosses in: the gRPC status code ttrpc carries (that is
// how ttrpc itself is built), and a name where an error travels as text (the stream
// protocol's error frames, the shim's ready message). Nothing above the Client ever holds a
// status error: the Server turns classes into codes (ToStatus), the Client turns codes back
// into classes (CodeClass).
var classes = []struct {
	class error
	code  codes.Code
	name  string
}{
	{errdefs.ErrNotFound, codes.NotFound, "not_found"},
	{errdefs.ErrAlreadyExists, codes.AlreadyExists, "already_exists"},
	{errdefs.ErrInvalidArgument, codes.InvalidArgument, "invalid_argument"},
	{errdefs.ErrFailedPrecondition, codes.FailedPrecondition, "failed_precondition"},
	{errdefs.ErrUnavailable, codes.Unavailable, "unavailable"},
	{errdefs.ErrNotImplemented, codes.Unimplemented, "not_implemented"},
	{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline_exceeded"},
	{context.Canceled, codes.Canceled, "canceled"},
}

// ToStatus converts a Server error to the status error ttrpc sends.
func ToStatus(err error) error {
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

// CodeClass is the errdefs class a status code stands for, or nil when it stands for none.
func CodeClass(code codes.Code) error {
	for _, c := range classes {
		if code == c.code {
			return c.class
		}
	}
	return nil
}

// ErrorClass is the name of err's class, or "" when it has none.
func ErrorClass(err error) string {
	for _, c := range classes {
		if errors.Is(err, c.class) {
			return c.name
		}
	}
	return ""
}

// ClassError rebuilds an error of the named class with the peer's message (which, made from
// a wrapped error, usually ends with the class's own text: it is not repeated).
func ClassError(class, msg string) error {
	for _, c := range classes {
		if c.name == class {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(msg, ": "+c.class.Error()), c.class)
		}
	}
	return errors.New(msg)
}

// ReexecutingMessage begins the Unavailable answer of a shim that is re-executing itself:
// it did nothing of the call or session, and serves again in a moment (shim/client sends it
// again).
const ReexecutingMessage = "peapod-shim is re-executing"
