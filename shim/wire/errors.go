package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// classes are the errdefs classes that cross the process boundary between the daemon and a
// shim, each with the name it crosses under (in call failures, stream error frames and the
// shim's ready message). The shim names an error's class (ErrorClass), the daemon's side
// turns the name back into the class (ClassError, CallError).
var classes = []struct {
	class error
	name  string
}{
	{errdefs.ErrNotFound, "not_found"},
	{errdefs.ErrAlreadyExists, "already_exists"},
	{errdefs.ErrInvalidArgument, "invalid_argument"},
	{errdefs.ErrFailedPrecondition, "failed_precondition"},
	{errdefs.ErrUnavailable, classUnavailable},
	{errdefs.ErrNotImplemented, "not_implemented"},
	{context.DeadlineExceeded, "deadline_exceeded"},
	{context.Canceled, "canceled"},
}

const classUnavailable = "unavailable"

// ErrorClass is the name of err's class, or "" when it has none.
func ErrorClass(err error) string {
	for _, c := range classes {
		if errors.Is(err, c.class) {
			return c.name
		}
	}
	return ""
}

// classOf is the class of a name, or nil.
func classOf(name string) error {
	for _, c := range classes {
		if c.name == name {
			return c.class
		}
	}
	return nil
}

// ClassError rebuilds an error of the named class with the peer's message (which, made from
// a wrapped error, usually ends with the class's own text: it is not repeated).
func ClassError(class, msg string) error {
	if c := classOf(class); c != nil {
		return fmt.Errorf("%s: %w", strings.TrimSuffix(msg, ": "+c.Error()), c)
	}
	return errors.New(msg)
}

// ReexecutingMessage begins the Unavailable answer of a shim that is re-executing itself:
// it did nothing of the call or session, and serves again in a moment (shim/client sends it
// again).
const ReexecutingMessage = "peapod-shim is re-executing"
