package inflight

import (
	"context"
	"sync"
)

// flights is the table of runs under way, by key, that Group and Shared keep.
type flights[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
}

// call is one run of work and what its callers wait for.
type call[T any] struct {
	done chan struct{}
	hash string
	val  T
	err  error
	// waiters are the callers waiting (Shared's), or the retries that joined (Group's);
	// cancel stops Shared's work when the last one leaves.
	waiters int
	cancel  context.CancelFunc
}

// startLocked runs work for key in the background and returns its call; once work returns,
// the key is free for a new run and the call's waiters are released. Call with f.mu held.
func (f *flights[T]) startLocked(key, hash string, work func() (T, error)) *call[T] {
	if f.calls == nil {
		f.calls = map[string]*call[T]{}
	}
	c := &call[T]{done: make(chan struct{}), hash: hash}
	f.calls[key] = c
	go func() {
		c.val, c.err = work()
		f.forget(key, c)
		close(c.done)
	}()
	return c
}

// forget frees key if c still holds it.
func (f *flights[T]) forget(key string, c *call[T]) {
	f.mu.Lock()
	if f.calls[key] == c {
		delete(f.calls, key)
	}
	f.mu.Unlock()
}
