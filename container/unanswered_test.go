package container

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
)

// TestNotAnsweringIsNotGone: a shim that does not answer is Unavailable to clients, but
// never the ErrUnavailable by which the manager knows a shim is gone and its containers
// lost, however it is wrapped.
func TestNotAnsweringIsNotGone(t *testing.T) {
	err := fmt.Errorf("stop container c: %w", notAnswering("p1"))
	if !errdefs.IsUnavailable(err) {
		t.Errorf("%v: not Unavailable to a client", err)
	}
	if errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("%v: taken for a shim that is gone", err)
	}
}
