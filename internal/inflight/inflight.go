// Package inflight runs a piece of work once per key and hands its result to every caller
// that asks for that key meanwhile. Group is the creation of a named object, whose result a
// kubelet's retries must get: a RunPodSandbox or CreateContainer that timed out on the
// kubelet's side is sent again with the same config, and must get the object the first call
// made, never a "name is reserved" error loop. Shared is a fetch many callers want (an image
// layer, a blob), cancelled once none of them waits any more.
package inflight

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
)

// Group tracks the creations in progress by name.
type Group[T any] struct {
	f flights[T]
}

// Holder describes a finished object that holds a name.
type Holder[T any] struct {
	ID   string
	Hash string
	Val  T
}

// Existing is Do's existing for objects kept in a table: holder says which id holds the
// name (an error: none does), lookup finds that object (absent: its creation is still
// being made visible), and hash is the request hash the object was made from.
func Existing[T any](holder func() (string, error), lookup func(id string) (T, bool), hash func(T) string) func() (Holder[T], bool) {
	return func() (Holder[T], bool) {
		id, err := holder()
		if err != nil {
			return Holder[T]{}, false
		}
		h := Holder[T]{ID: id}
		if v, ok := lookup(id); ok {
			h.Hash, h.Val = hash(v), v
		}
		return h, true
	}
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
	g.f.mu.Lock()
	if c, ok := g.f.calls[name]; ok {
		if c.hash != hash {
			g.f.mu.Unlock()
			return zero, fmt.Errorf("%s name %s is being created with a different config: %w", kind, name, errdefs.ErrAlreadyExists)
		}
		c.waiters++
		g.f.mu.Unlock()
		return wait(ctx, kind, c)
	}
	if h, ok := existing(); ok {
		g.f.mu.Unlock()
		if h.Hash == hash {
			return h.Val, nil
		}
		return zero, fmt.Errorf("%s name %s is reserved for %s %s: %w", kind, name, kind, h.ID, errdefs.ErrAlreadyExists)
	}
	wctx := context.WithoutCancel(ctx)
	c := g.f.startLocked(name, hash, func() (T, error) { return work(wctx) })
	g.f.mu.Unlock()
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
