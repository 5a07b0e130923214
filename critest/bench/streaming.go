package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamBench measures an exec over the streaming URL: from the Exec RPC to the first byte of
// the command's output at the client, which is what a person typing kubectl exec waits for.
// The rest of the session finishes untimed before the next run.
type streamBench struct {
	ctr      *ctrBench
	protocol string
	id       string
	pending  chan error
}

// streamScenarios measure exec sessions over SPDY and over WebSocket (remotecommand v5).
func streamScenarios() []scenario {
	var out []scenario
	for _, proto := range []string{"spdy", "websocket"} {
		b := &streamBench{ctr: &ctrBench{name: "ExecStream-" + proto}, protocol: proto}
		out = append(out, scenario{
			name: "ExecStreamFirstByte/" + proto,
			setup: func(ctx context.Context, e *env) error {
				if err := b.ctr.setup(ctx, e); err != nil {
					return err
				}
				var err error
				if b.id, err = b.ctr.create(ctx, e, 0); err != nil {
					return err
				}
				return e.runtime.StartContainer(ctx, b.id)
			},
			prepare: func(context.Context, *env, int) error { return b.finish() },
			run:     b.run,
			teardown: func(ctx context.Context, e *env) error {
				return errors.Join(b.finish(), b.ctr.teardown(ctx, e))
			},
		})
	}
	return out
}

func (b *streamBench) run(ctx context.Context, e *env, _ int) error {
	resp, err := e.runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: b.id, Cmd: []string{"echo", "hello"}, Stdout: true, Stderr: true})
	if err != nil {
		return err
	}
	var ex remotecommand.Executor
	switch b.protocol {
	case "spdy":
		u, err := url.Parse(resp.Url)
		if err != nil {
			return err
		}
		ex, err = remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, u)
		if err != nil {
			return err
		}
	default:
		if ex, err = remotecommand.NewWebSocketExecutor(&rest.Config{}, http.MethodGet, resp.Url); err != nil {
			return err
		}
	}
	first := &firstByte{seen: make(chan struct{})}
	b.pending = make(chan error, 1)
	go func() {
		b.pending <- ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: first, Stderr: io.Discard})
	}()
	select {
	case <-first.seen:
		return nil
	case err := <-b.pending:
		b.pending = nil
		if err == nil {
			err = fmt.Errorf("exec ended without output")
		}
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("no output 10s after the exec started")
	}
}

// finish waits for the previous run's session to end.
func (b *streamBench) finish() error {
	if b.pending == nil {
		return nil
	}
	err := <-b.pending
	b.pending = nil
	return err
}

// firstByte closes seen at the first write.
type firstByte struct {
	once sync.Once
	seen chan struct{}
}

func (f *firstByte) Write(p []byte) (int, error) {
	if len(p) > 0 {
		f.once.Do(func() { close(f.seen) })
	}
	return len(p), nil
}
