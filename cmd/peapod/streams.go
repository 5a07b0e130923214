package main

import (
	"context"
	"io"

	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/metrics"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/stream"
)

// streamRuntime runs the streaming server's sessions on the container and pod managers.
type streamRuntime struct {
	containers *container.Manager
	sandboxes  *sandbox.Manager
	// metrics counts the open sessions (nil: metrics off).
	metrics *metrics.Metrics
}

func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, s stream.Streams) (int, error) {
	defer r.metrics.StreamSession("exec")()
	cs, done := containerStreams(s)
	defer done()
	return r.containers.Exec(ctx, id, cmd, cs)
}

func (r streamRuntime) Attach(ctx context.Context, id string, s stream.Streams) error {
	defer r.metrics.StreamSession("attach")()
	cs, done := containerStreams(s)
	defer done()
	return r.containers.Attach(ctx, id, cs)
}

func (r streamRuntime) PortForward(ctx context.Context, podID string, port int32, rw io.ReadWriteCloser) error {
	defer r.metrics.StreamSession("portforward")()
	return r.sandboxes.PortForward(ctx, podID, port, rw)
}

// containerStreams converts; the resize channel is relayed (the element types differ) until
// done is called.
func containerStreams(s stream.Streams) (container.Streams, func()) {
	cs := container.Streams{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, Tty: s.Tty}
	if s.Resize == nil {
		return cs, func() {}
	}
	sizes, stop := stream.Relay(s.Resize, func(sz stream.TerminalSize) container.TerminalSize {
		return container.TerminalSize{Width: sz.Width, Height: sz.Height}
	})
	cs.Resize = sizes
	return cs, stop
}
