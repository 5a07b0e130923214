// Package inflight runs the creation of a named object once and hands its result to a
// kubelet's retries: a RunPodSandbox or CreateContainer that timed out on the kubelet's side
// is sent again with the same config, and must get the object the first call made, never a
// "name is reserved" error loop.
package inflight

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
)

// Group tracks the creations in progress by name.
type Group[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
}

type call[T any] struct {
	done chan struct{}
	hash string
	val  T
	err  error
}

// Holder describes a finished object that holds a name.
type Holder[T any] struct {
	ID   string
	Hash string
	Val  T
}

// Do returns the object named name, made by work, for a request identified by hash:
//   - while a creation of name runs, an identical request waits for it and shares its
//     result, a different one is ErrAlreadyExists;
//   - when existing finds a finished holder, an identical request gets it, a different one
//     is ErrAlreadyExists naming the holder;
//   - otherwise work runs, detached from ctx so that a caller who gives up leaves no
//     half-made object; that caller gets ctx's error, and its retry gets the result.
//
// kind names the object in errors ("pod", "container"). existing is called under the
// group's lock; work must make its object visible to existing before it returns.
func (g *Group[T]) Do(ctx context.Context, kind, name, hash string, existing func() (Holder[T], bool), work func(context.Context) (T, error)) (T, error) {
	var zero T
	g.mu.Lock()
	if c, ok := g.calls[name]; ok {
		g.mu.Unlock()
		if c.hash != hash {
			return zero, fmt.Errorf("%s name %s is being created with a different config: %w", kind, name, errdefs.ErrAlreadyExists)
		}
		return wait(ctx, kind, c)
	}
	if h, ok := existing(); ok {
		g.mu.Unlock()
		if h.Hash == hash {
			return h.Val, nil
		}
		return zero, fmt.Errorf("%s name %s is reserved for %s %s: %w", kind, name, kind, h.ID, errdefs.ErrAlreadyExists)
	}
	if g.calls == nil {
		g.calls = map[string]*call[T]{}
	}
	c := &call[T]{done: make(chan struct{}), hash: hash}
	g.calls[name] = c
	g.mu.Unlock()
	go func() {
		c.val, c.err = work(context.WithoutCancel(ctx))
		g.mu.Lock()
		delete(g.calls, name)
		g.mu.Unlock()
		close(c.done)
	}()
	return wait(ctx, kind, c)
}

func wait[T any](ctx context.Context, kind string, c *call[T]) (T, error) {
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%s creation still running (a retry will get its result): %w", kind, ctx.Err())
	}
}
