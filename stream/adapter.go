package stream

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// adapter gives the library's SPDY and WebSocket v1-v4 handlers the Runtime. ctx, when set,
// replaces the context the library passes a port forward (which is never cancelled).
type adapter struct {
	s   *Server
	ctx context.Context
}

func (a adapter) ExecInContainer(ctx context.Context, _, _ string, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	code, err := a.s.opts.Runtime.Exec(ctx, containerID, cmd, libStreams(in, out, errw, tty, resize))
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with non-zero exit code: %d", code), Code: code}
	}
	return nil
}

func (a adapter) AttachContainer(ctx context.Context, _, _ string, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return a.s.opts.Runtime.Attach(ctx, containerID, libStreams(in, out, errw, tty, resize))
}

func (a adapter) PortForward(ctx context.Context, podID, _ string, port int32, stream io.ReadWriteCloser) error {
	if a.ctx != nil {
		ctx = a.ctx
	}
	return a.s.opts.Runtime.PortForward(ctx, podID, port, stream)
}

// libStreams converts the library's streams.
func libStreams(in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) Streams {
	st := Streams{Tty: tty, Resize: resize}
	// Absent streams stay nil interfaces.
	if in != nil {
		st.Stdin = in
	}
	if out != nil {
		st.Stdout = out
	}
	if errw != nil {
		st.Stderr = errw
	}
	return st
}

// Relay passes what arrives on in, converted, to the returned channel, until in is closed or
// stop is called (which the consumer must do once it stops reading); the returned channel is
// closed then.
func Relay[T, U any](in <-chan T, convert func(T) U) (out <-chan U, stop func()) {
	ch := make(chan U)
	done := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			select {
			case v, ok := <-in:
				if !ok {
					return
				}
				select {
				case ch <- convert(v):
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return ch, func() { once.Do(func() { close(done) }) }
}
