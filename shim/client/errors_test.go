package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	"github.com/peapod-runtime/peapod/shim/wire"
)

func TestErrorClassesSurviveTheWire(t *testing.T) {
	for _, class := range []error{
		errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
		errdefs.ErrFailedPrecondition, errdefs.ErrUnavailable, errdefs.ErrNotImplemented,
		context.DeadlineExceeded, context.Canceled,
	} {
		sent := wire.ToStatus(fmt.Errorf("container x: %w", class))
		got := fromWire("op", "/s", sent)
		if !errors.Is(got, class) {
			t.Errorf("%v: came back as %v", class, got)
		}
	}
	if got := fromWire("op", "/s", wire.ToStatus(errors.New("plain"))); errors.Is(got, errdefs.ErrUnavailable) || got == nil {
		t.Errorf("plain error came back as %v", got)
	}
}

func TestConnectionLossIsUnavailable(t *testing.T) {
	for _, err := range []error{ttrpc.ErrClosed, io.EOF, syscall.ECONNREFUSED, syscall.ENOENT, fmt.Errorf("dial: %w", syscall.ECONNRESET)} {
		if got := fromWire("op", "/s", err); !errors.Is(got, errdefs.ErrUnavailable) {
			t.Errorf("%v: got %v, want Unavailable", err, got)
		}
	}
}

// TestUnreachableShimIsUnavailable: any failure to dial the shim's socket means the shim
// cannot be reached, and its callers clean up as after a dead shim. A socket path longer
// than sun_path fails with EINVAL, not a "connection gone" errno.
func TestUnreachableShimIsUnavailable(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop.sock")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]string{
		"missing":         filepath.Join(dir, "none.sock"),
		"too long":        "/" + strings.Repeat("x", 120) + "/shim.sock",
		"symlink loop":    loop,
		"not a directory": filepath.Join("/dev/null", "shim.sock"),
	} {
		c, err := Connect(t.Context(), p)
		if err == nil {
			c.Close()
			t.Errorf("%s: connected", name)
			continue
		}
		if !errors.Is(err, errdefs.ErrUnavailable) {
			t.Errorf("%s: %v; want ErrUnavailable", name, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Connect(ctx, filepath.Join(dir, "none.sock")); errors.Is(err, errdefs.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v; want Canceled", err)
	}
}
