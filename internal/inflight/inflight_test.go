package inflight

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestRetriesShareOneCreation(t *testing.T) {
	var g Group[string]
	var mu sync.Mutex
	made := map[string]Holder[string]{}
	runs := 0
	release := make(chan struct{})
	existing := func() (Holder[string], bool) {
		mu.Lock()
		defer mu.Unlock()
		h, ok := made["web"]
		return h, ok
	}
	work := func(context.Context) (string, error) {
		<-release
		mu.Lock()
		defer mu.Unlock()
		runs++
		made["web"] = Holder[string]{ID: "id1", Hash: "h1", Val: "id1"}
		return "id1", nil
	}
	// The first caller gives up; the work goes on.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := g.Do(ctx, "pod", "web", "h1", existing, work); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first call: %v, want DeadlineExceeded", err)
	}
	// A different config while it runs is refused; the same config waits for it.
	if _, err := g.Do(context.Background(), "pod", "web", "h2", existing, work); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("different config in flight: %v", err)
	}
	got := make(chan string, 1)
	go func() {
		v, _ := g.Do(context.Background(), "pod", "web", "h1", existing, work)
		got <- v
	}()
	// The retry joins the creation still under way (it would find the holder afterwards).
	for {
		g.f.mu.Lock()
		joined := g.f.calls["web"].waiters
		g.f.mu.Unlock()
		if joined == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if v := <-got; v != "id1" {
		t.Fatalf("retry got %q", v)
	}
	// Finished: the same config gets the holder, another one an error naming it.
	if v, err := g.Do(context.Background(), "pod", "web", "h1", existing, work); v != "id1" || err != nil {
		t.Fatalf("retry after: %q %v", v, err)
	}
	_, err := g.Do(context.Background(), "pod", "web", "h2", existing, work)
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "id1") {
		t.Fatalf("different config after: %v", err)
	}
	if runs != 1 {
		t.Fatalf("work ran %d times", runs)
	}
}

func TestExisting(t *testing.T) {
	table := map[string]string{"id1": "hash-of-id1"}
	lookup := func(id string) (string, bool) { v, ok := table[id]; return v, ok }
	hash := func(v string) string { return v }
	for _, tc := range []struct {
		holder string
		err    error
		want   Holder[string]
		ok     bool
	}{
		{err: errdefs.ErrNotFound},
		{holder: "id1", want: Holder[string]{ID: "id1", Hash: "hash-of-id1", Val: "hash-of-id1"}, ok: true},
		// Held by a creation not yet visible: the name is taken, by no known config.
		{holder: "id2", want: Holder[string]{ID: "id2"}, ok: true},
	} {
		got, ok := Existing(func() (string, error) { return tc.holder, tc.err }, lookup, hash)()
		if got != tc.want || ok != tc.ok {
			t.Errorf("holder %q: got %+v, %v; want %+v, %v", tc.holder, got, ok, tc.want, tc.ok)
		}
	}
}
