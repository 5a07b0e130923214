package inflight

import "context"

// Shared runs one fn per key at a time and hands its result to every caller that asked for
// that key meanwhile. Unlike x/sync/singleflight, the work runs under its own context that
// stays alive while any caller still waits: one caller giving up does not fail the others,
// and the work stops once every caller has gone.
type Shared[T any] struct {
	f flights[T]
}

// Do returns fn's result for key, running fn unless a run for key is under way. ctx bounds
// this caller's wait only; fn gets a context (carrying ctx's values) that is cancelled when
// the last waiter leaves, and that waiter returns once fn has.
func (g *Shared[T]) Do(ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	g.f.mu.Lock()
	c, ok := g.f.calls[key]
	if !ok {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = g.f.startLocked(key, "", func() (T, error) {
			defer cancel()
			return fn(fctx)
		})
		c.cancel = cancel
	}
	c.waiters++
	g.f.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		g.f.mu.Lock()
		c.waiters--
		last := c.waiters == 0
		if last {
			// Nobody wants the result: stop the work, and let the next caller start afresh
			// rather than join a run that is being torn down.
			c.cancel()
			if g.f.calls[key] == c {
				delete(g.f.calls, key)
			}
		}
		g.f.mu.Unlock()
		if last {
			// The last caller waits for the work to wind down, so that what the work
			// cleans up on cancellation is gone when the caller returns.
			<-c.done
		}
		var zero T
		return zero, ctx.Err()
	}
}
