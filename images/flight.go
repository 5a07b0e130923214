package images

import (
	"context"
	"sync"
)

// flightGroup runs one fn per key at a time and hands its result to every caller that asked
// for that key meanwhile. Unlike x/sync/singleflight, the work runs under its own context
// that stays alive while any caller still waits: one caller giving up does not fail the
// others, and the work stops once every caller has gone.
type flightGroup[T any] struct {
	mu      sync.Mutex
	flights map[string]*flight[T]
}

type flight[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelFunc
}

// Do returns fn's result for key, running fn unless a run for key is under way. ctx bounds
// this caller's wait only; fn gets a context (carrying ctx's values) that is cancelled when
// the last waiter leaves, and that waiter returns once fn has.
func (g *flightGroup[T]) Do(ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	g.mu.Lock()
	if g.flights == nil {
		g.flights = map[string]*flight[T]{}
	}
	f, ok := g.flights[key]
	if !ok {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight[T]{done: make(chan struct{}), cancel: cancel}
		g.flights[key] = f
		go func() {
			defer close(f.done)
			f.val, f.err = fn(fctx)
			cancel()
			g.mu.Lock()
			if g.flights[key] == f {
				delete(g.flights, key)
			}
			g.mu.Unlock()
		}()
	}
	f.waiters++
	g.mu.Unlock()

	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		last := f.waiters == 0
		if last {
			// Nobody wants the result: stop the work, and let the next caller start afresh
			// rather than join a run that is being torn down.
			f.cancel()
			if g.flights[key] == f {
				delete(g.flights, key)
			}
		}
		g.mu.Unlock()
		if last {
			// The last caller waits for the work to wind down, so that what the work
			// cleans up on cancellation is gone when the caller returns.
			<-f.done
		}
		var zero T
		return zero, ctx.Err()
	}
}
