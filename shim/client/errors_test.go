package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/shim/wire"
)

// overTheWire is err as the client gets it from a failure frame of the shim.
func overTheWire(t *testing.T, err error) error {
	t.Helper()
	var buf bytes.Buffer
	if werr := wire.NewCallWriter(&buf).WriteFail(7, err); werr != nil {
		t.Fatal(werr)
	}
	ft, p, rerr := wire.NewCallReader(&buf).Next()
	if rerr != nil || ft != wire.FrameFail {
		t.Fatalf("frame %q: %v", ft, rerr)
	}
	id, rest, rerr := wire.CallID(p)
	if rerr != nil || id != 7 {
		t.Fatalf("call id %d: %v", id, rerr)
	}
	return wire.DecodeFail(rest)
}

func TestErrorClassesSurviveTheWire(t *testing.T) {
	for _, class := range []error{
		errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
		errdefs.ErrFailedPrecondition, errdefs.ErrUnavailable, errdefs.ErrNotImplemented,
		context.DeadlineExceeded, context.Canceled,
	} {
		got := fromWire("op", "/s", overTheWire(t, fmt.Errorf("container x: %w", class)))
		if !errors.Is(got, class) {
			t.Errorf("%v: came back as %v", class, got)
		}
		if want := "shim op: container x: " + class.Error(); got.Error() != want {
			t.Errorf("%v: message %q, want %q", class, got, want)
		}
		if retryable(got) {
			t.Errorf("%v: retryable", class)
		}
	}
	if got := fromWire("op", "/s", overTheWire(t, errors.New("plain"))); errors.Is(got, errdefs.ErrUnavailable) || got == nil {
		t.Errorf("plain error came back as %v", got)
	}
	reexec := overTheWire(t, fmt.Errorf("%s: %w", wire.ReexecutingMessage, errdefs.ErrUnavailable))
	if !retryable(reexec) || !errors.Is(fromWire("op", "/s", reexec), errdefs.ErrUnavailable) {
		t.Errorf("a re-executing shim's refusal: retryable %v, %v", retryable(reexec), fromWire("op", "/s", reexec))
	}
}

func TestConnectionLossIsUnavailable(t *testing.T) {
	for _, err := range []error{errConnClosed, io.EOF, syscall.ECONNREFUSED, syscall.ENOENT, fmt.Errorf("dial: %w", syscall.ECONNRESET)} {
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

// TestShimWithoutHelloRefused: a socket whose server never says the call protocol's hello (a
// shim from before it, which spoke ttrpc and waited for the client) or says another one is
// FailedPrecondition, not a hang and not a dead shim.
func TestShimWithoutHelloRefused(t *testing.T) {
	for name, hello := range map[string][]byte{
		"silent":        nil,
		"another hello": append([]byte{byte(wire.FrameHello), 0, 0, 0, 13}, "other-proto/9"...),
		"garbage":       []byte("\x00\x00\x00\x10\x00\x00\x00\x01\x01\x00"),
	} {
		t.Run(name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "shim.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				_, _ = c.Write(hello)
				_, _ = io.Copy(io.Discard, c)
			}()
			start := time.Now()
			c, err := Connect(t.Context(), sock)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("%v; want FailedPrecondition", err)
			}
			if d := time.Since(start); d > helloTimeout+time.Second {
				t.Errorf("refused after %v", d)
			}
		})
	}
}
