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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/shim"
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

// TestShimWithoutHello: a socket whose server says another hello, or something else, is
// FailedPrecondition; one that says nothing (a shim stopped, or slow to accept) is waited
// for as long as the caller's context lasts, not taken for a dead shim.
func TestShimWithoutHello(t *testing.T) {
	for name, hello := range map[string][]byte{
		"silent":        nil,
		"another hello": append([]byte{byte(wire.FrameHello), 0, 0, 0, 13}, "other-proto/9"...),
		"garbage":       []byte("\x00\x00\x00\x10\x00\x00\x00\x01\x01\x00"),
	} {
		t.Run(name, func(t *testing.T) {
			sock := fakeShim(t, func(_ int, c net.Conn) bool {
				_, _ = c.Write(hello)
				return true
			})
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			c, err := Connect(ctx, sock)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			var want error = errdefs.ErrFailedPrecondition
			if hello == nil {
				want = context.DeadlineExceeded
				if d := time.Since(start); d < 400*time.Millisecond {
					t.Errorf("gave up after %v, before the context's end", d)
				}
			}
			if !errors.Is(err, want) || errors.Is(err, errdefs.ErrUnavailable) {
				t.Errorf("%v; want %v", err, want)
			}
		})
	}
}

// TestLegacyShimSocket: a pod dir with only the ttrpc socket of a shim from before the call
// protocol is FailedPrecondition (this daemon cannot reach its containers), not a dead shim.
func TestLegacyShimSocket(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", shim.LegacySocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Connect(t.Context(), shim.SocketPath(dir))
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("only a legacy socket: %v; want FailedPrecondition", err)
	}
	l.Close()
	if err := os.Symlink(shim.LegacySocketPath(dir), shim.LegacySocketPath(dir)); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	if _, err = Connect(t.Context(), shim.SocketPath(dir)); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("no socket: %v; want Unavailable", err)
	}
}

// TestConnectAgainAfterCloseBeforeHello: a shim that accepts a connection and closes it
// before its hello (caught re-executing) is dialled again, not taken for a dead shim.
func TestConnectAgainAfterCloseBeforeHello(t *testing.T) {
	sock := fakeShim(t, func(i int, c net.Conn) bool {
		if i < 2 {
			return false
		}
		_ = wire.NewCallWriter(c).WriteHello()
		return true
	})
	c, err := Connect(t.Context(), sock)
	if err != nil {
		t.Fatalf("connect after two connections closed before the hello: %v", err)
	}
	c.Close()
}

// fakeShim listens on a call.sock of its own and passes the i-th connection to serve, then
// reads the connection to its end if serve says to keep it, else closes it. The listener,
// every connection and their goroutines are gone when the test ends.
func fakeShim(t *testing.T, serve func(i int, c net.Conn) (keep bool)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "call.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	wg.Go(func() {
		for i := 0; ; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			if closed {
				c.Close()
			}
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				if serve(i, c) {
					_, _ = io.Copy(io.Discard, c)
				}
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return sock
}
