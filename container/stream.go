package container

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/shim"
	shimclient "github.com/peapod-runtime/peapod/shim/client"
)

// TerminalSize is a terminal's size in characters.
type TerminalSize = shim.TerminalSize

// Streams are the client's ends of an interactive exec or attach. A nil Stdin means the
// client sends nothing; a nil Stdout or Stderr means it does not want that stream. With a
// terminal, all output goes to Stdout.
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Tty            bool
	// Resize carries the client's terminal size changes; nil when it sends none.
	Resize <-chan TerminalSize
}

// Exec runs cmd in running container id with the client's streams and returns the command's
// exit code once it has exited and its output is delivered. When ctx ends (the client went
// away) the command's whole process tree is killed. A command missing from the image is exit
// code 127, not an error.
func (m *Manager) Exec(ctx context.Context, id string, cmd []string, s Streams) (int, error) {
	if len(cmd) == 0 {
		return 0, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	c, client, err := m.runningShim(ctx, id)
	if err != nil {
		return 0, err
	}
	return client.Exec(ctx, c.ID, shim.ExecOptions{
		Args:   cmd,
		Tty:    s.Tty,
		Stdin:  s.Stdin,
		Stdout: s.Stdout,
		Stderr: s.Stderr,
		Resize: s.Resize,
	})
}

// Attach connects the client's streams to running container id's own stdio (held by its
// shim) until the container exits or ctx ends. Whether output is one terminal stream is the
// container's own tty setting. The client's stdin reaches the container only if it was
// created with stdin; with stdin_once, the end of the first attached client's stdin closes
// the container's.
func (m *Manager) Attach(ctx context.Context, id string, s Streams) error {
	c, client, err := m.runningShim(ctx, id)
	if err != nil {
		return err
	}
	return client.Attach(ctx, c.ID, shim.AttachOptions{
		Stdin:  s.Stdin,
		Stdout: s.Stdout,
		Stderr: s.Stderr,
		Resize: s.Resize,
	})
}

// runningShim resolves id to a running container and its pod's shim.
func (m *Manager) runningShim(ctx context.Context, id string) (Container, *shimclient.Client, error) {
	c, err := m.CheckRunning(id)
	if err != nil {
		return Container{}, nil, err
	}
	client, err := m.shims.client(ctx, c.PodID)
	if err != nil {
		return Container{}, nil, err
	}
	return c, client, nil
}

// CheckRunning says whether id names a running container: the streaming RPCs ask before they
// hand out a URL, so that a client learns at once what the stream would only fail with.
func (m *Manager) CheckRunning(id string) (Container, error) {
	c, err := m.Get(id)
	if err != nil {
		return Container{}, err
	}
	if c.State == StateUnknown {
		return Container{}, notAnswering(c.PodID)
	}
	if c.State != StateRunning {
		return Container{}, fmt.Errorf("container %s is %s, not running: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	return c, nil
}
