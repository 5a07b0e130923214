package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// Exec runs o.Args in running container id, relays its stdio until it exits and all its output
// is delivered, and returns its exit code (128+signal when killed). ctx ending (the client went
// away) kills the command's whole process group and returns ctx's error. A command missing from
// the image is exit code 127 (126 if it cannot run), not an error; its message goes to Stderr
// (Stdout with Tty). Errors: errdefs.ErrNotFound (unknown container), ErrFailedPrecondition (not
// running), ErrInvalidArgument (no args), ErrUnavailable (shim gone).
func (c *Client) Exec(ctx context.Context, id string, o shim.ExecOptions) (int, error) {
	if len(o.Args) == 0 {
		return 0, fmt.Errorf("exec in container %s: no command: %w", id, errdefs.ErrInvalidArgument)
	}
	h := wire.StreamHeader{
		Op: wire.OpExec, ID: id, Args: o.Args, Env: o.Env, Cwd: o.Cwd, User: o.User, Tty: o.Tty,
		Stdin: o.Stdin != nil, Stdout: o.Stdout != nil, Stderr: o.Stderr != nil,
	}
	if o.Tty {
		h.Size = awaitInitialSize(ctx, o.Resize)
	}
	return c.stream(ctx, h, o.Stdin, o.Stdout, o.Stderr, o.Resize)
}

// Attach relays the container's own stdio (held by the shim since Create) until the container
// exits (nil once all its output is delivered) or ctx ends (ctx.Err(); the container is not
// touched). Several clients may attach at once; each gets all output from the moment it
// attached, and the log file still gets everything. A client that falls more than 1 MiB
// behind the container's output is detached (an error): the container never waits for it.
//
// Stdin goes to the container's stdin if the container was created with Stdin; otherwise it is
// ignored and never read. When the container has StdinOnce, the end of the first attached
// client's stdin (EOF or disconnect) closes the container's stdin for good (a tty gets its EOF
// character), so the container reads EOF; later clients' stdin is ignored. A tty container's
// output is all on Stdout. Errors: errdefs.ErrNotFound, ErrFailedPrecondition (not running),
// ErrUnavailable (shim gone).
func (c *Client) Attach(ctx context.Context, id string, o shim.AttachOptions) error {
	h := wire.StreamHeader{
		Op: wire.OpAttach, ID: id,
		Stdin: o.Stdin != nil, Stdout: o.Stdout != nil, Stderr: o.Stderr != nil, Size: initialSize(o.Resize),
	}
	_, err := c.stream(ctx, h, o.Stdin, o.Stdout, o.Stderr, o.Resize)
	return err
}

// initialSize takes a size already waiting in resize, so that the terminal starts with it.
func initialSize(resize <-chan shim.TerminalSize) *shim.TerminalSize {
	select {
	case s, ok := <-resize:
		if ok {
			return &s
		}
	default:
	}
	return nil
}

// initialSizeWait is how long a terminal exec waits for the client's first size.
const initialSizeWait = 250 * time.Millisecond

// awaitInitialSize waits a little for the client's first terminal size: a kubectl exec -t
// sends it right after the streams open, and a command started before it would find a 0x0
// terminal (a shell's first stty size fails). A client that sends none starts without.
func awaitInitialSize(ctx context.Context, resize <-chan shim.TerminalSize) *shim.TerminalSize {
	if resize == nil {
		return nil
	}
	t := time.NewTimer(initialSizeWait)
	defer t.Stop()
	select {
	case s, ok := <-resize:
		if ok {
			return &s
		}
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// stream runs one session on the shim's stream socket and returns the exit code it ends with.
func (c *Client) stream(ctx context.Context, h wire.StreamHeader, stdin io.Reader, stdout, stderr io.Writer, resize <-chan shim.TerminalSize) (int, error) {
	path := shim.StreamSocketPath(filepath.Dir(c.socket))
	what := fmt.Sprintf("%s container %s", map[string]string{wire.OpExec: "exec in", wire.OpAttach: "attach to"}[h.Op], h.ID)
	// A shim that re-executes refuses new sessions for a moment, unprocessed (or closes one
	// it had not begun yet): try again.
	var ss *session
	deadline := time.Now().Add(reconnectTimeout)
	for delay := time.Millisecond; ; delay = nextDelay(delay) {
		var again bool
		var err error
		if ss, again, err = c.open(ctx, path, what, h); err == nil {
			break
		}
		if !again || time.Now().After(deadline) {
			return 0, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return 0, fmt.Errorf("shim %s: %w", what, ctx.Err())
		}
	}
	conn, w, r, reply := ss.conn, ss.w, ss.r, ss.reply
	defer conn.Close()
	// Closing the connection is how a session ends early: the shim kills an exec's processes.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// lost explains a connection that ended without an exit.
	lost := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("shim %s: %w", what, ctx.Err())
		}
		return sessionLost(what, path, err)
	}

	if stdin != nil && reply.Stdin {
		// Not waited for: it may block in the caller's Read. It ends when that Read returns,
		// since writes to the closed connection fail.
		go sendStdin(stdin, w)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(done)
		wg.Wait()
	}()
	if resize != nil {
		wg.Go(func() {
			for {
				select {
				case s, ok := <-resize:
					if !ok || w.WriteResize(s) != nil {
						return
					}
				case <-done:
					return
				}
			}
		})
	}
	for {
		t, p, err := r.Next()
		if err != nil {
			return 0, lost(err)
		}
		var out io.Writer
		switch t {
		case wire.FrameStdout:
			out = stdout
		case wire.FrameStderr:
			out = stderr
		case wire.FrameExit:
			return wire.DecodeExit(p), nil
		case wire.FrameError:
			return 0, remoteError(what, p)
		default:
			return 0, fmt.Errorf("shim %s: unexpected frame %q: %w", what, t, wire.ErrProtocol)
		}
		if out == nil {
			continue
		}
		if _, err := out.Write(p); err != nil {
			// Our caller's client is gone: ending the session says so to the shim.
			return 0, fmt.Errorf("%s: write %s: %w", what, map[wire.FrameType]string{wire.FrameStdout: "stdout", wire.FrameStderr: "stderr"}[t], err)
		}
	}
}

// session is a session the shim took: its connection and the shim's reply.
type session struct {
	conn  net.Conn
	w     *wire.FrameWriter
	r     *wire.FrameReader
	reply wire.StreamReply
}

// sessionLost explains a session whose connection ended without an exit.
func sessionLost(what, path string, err error) error {
	return fmt.Errorf("shim %s at %s: session ended before the exit: %w: %w", what, path, errdefs.ErrUnavailable, err)
}

// open starts a session: it connects, sends the header and reads the shim's reply. again
// says the shim did not take the session (it re-executes) and it may be tried again.
func (c *Client) open(ctx context.Context, path, what string, h wire.StreamHeader) (ss *session, again bool, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, false, fromWire(what, path, err)
	}
	fail := func(again bool, err error) (*session, bool, error) {
		conn.Close()
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("shim %s: %w", what, ctx.Err())
		}
		return nil, again, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	ss = &session{conn: conn, w: wire.NewFrameWriter(conn), r: wire.NewFrameReader(conn)}
	if err := ss.w.WriteJSON(wire.FrameHeader, h); err != nil {
		return fail(true, sessionLost(what, path, err))
	}
	t, p, err := ss.r.Next()
	if err != nil {
		// No reply: the shim never began the session.
		return fail(true, sessionLost(what, path, err))
	}
	switch t {
	case wire.FrameError:
		err := remoteError(what, p)
		return fail(reexecuting(err), err)
	case wire.FrameOK:
		if err := json.Unmarshal(p, &ss.reply); err != nil {
			return fail(false, fmt.Errorf("shim %s: reply: %v: %w", what, err, wire.ErrProtocol))
		}
	default:
		return fail(false, fmt.Errorf("shim %s: frame %q instead of a reply: %w", what, t, wire.ErrProtocol))
	}
	return ss, false, nil
}

// sendStdin sends r as stdin frames until it ends, then says the stdin is closed.
func sendStdin(r io.Reader, w *wire.FrameWriter) {
	buf := make([]byte, wire.MaxFramePayload)
	for {
		n, err := r.Read(buf)
		if n > 0 && w.WriteFrame(wire.FrameStdin, buf[:n]) != nil {
			return
		}
		if err != nil {
			_ = w.WriteFrame(wire.FrameStdinClose, nil)
			return
		}
	}
}

func remoteError(what string, p []byte) error {
	return fmt.Errorf("shim %s: %w", what, wire.DecodeFail(p))
}
