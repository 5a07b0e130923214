package inflight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitWaiters returns once key's run has n waiters.
func waitWaiters[T any](t *testing.T, g *Shared[T], key string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.f.mu.Lock()
		c := g.f.calls[key]
		got := 0
		if c != nil {
			got = c.waiters
		}
		g.f.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d waiters, want %d", key, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSharedOutlivesOneCaller(t *testing.T) {
	var g Shared[int]
	var runs atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context) (int, error) {
		runs.Add(1)
		select {
		case <-release:
			return 42, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	// The first caller gives up; the second still gets the result.
	ctx1, cancel1 := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var err1 error
	wg.Go(func() { _, err1 = g.Do(ctx1, "k", fn) })
	waitWaiters(t, &g, "k", 1)
	var got2 int
	var err2 error
	wg.Go(func() { got2, err2 = g.Do(context.Background(), "k", fn) })
	waitWaiters(t, &g, "k", 2)
	cancel1()
	waitWaiters(t, &g, "k", 1)
	close(release)
	wg.Wait()
	if !errors.Is(err1, context.Canceled) || err2 != nil || got2 != 42 || runs.Load() != 1 {
		t.Fatalf("err1=%v err2=%v got2=%d runs=%d; want canceled, nil, 42, 1", err1, err2, got2, runs.Load())
	}
}

func TestSharedStopsWhenEveryCallerLeaves(t *testing.T) {
	var g Shared[int]
	started, stopped := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	_, err := g.Do(ctx, "k", func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		close(stopped)
		return 0, ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want canceled", err)
	}
	// The last caller returns only once the work has wound down.
	select {
	case <-stopped:
	default:
		t.Fatal("Do returned before the cancelled work ended")
	}
	// A new caller starts afresh.
	v, err := g.Do(context.Background(), "k", func(context.Context) (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("Do after cancel = %d, %v", v, err)
	}
}
