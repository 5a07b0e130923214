package table

import (
	"errors"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
)

type rec struct {
	ID string
	N  int
}

func newTable(persist func(rec) error) *Table[rec, struct{}] {
	if persist == nil {
		persist = func(rec) error { return nil }
	}
	return New[rec, struct{}]("thing", persist)
}

func TestResolveByIDOrUniquePrefix(t *testing.T) {
	tb := newTable(nil)
	tb.Add("abc1", rec{ID: "abc1"}, struct{}{})
	tb.Add("abd2", rec{ID: "abd2"}, struct{}{})
	for _, tc := range []struct {
		id      string
		want    string
		wantErr error
	}{
		{id: "abc1", want: "abc1"},
		{id: "abd", want: "abd2"},
		{id: "ab", wantErr: errdefs.ErrInvalidArgument},
		{id: "", wantErr: errdefs.ErrInvalidArgument},
		{id: "zz", wantErr: errdefs.ErrNotFound},
	} {
		got, err := tb.Get(tc.id)
		if !errors.Is(err, tc.wantErr) || err == nil && got.ID != tc.want {
			t.Errorf("Get(%q) = %+v, %v; want %q, %v", tc.id, got, err, tc.want, tc.wantErr)
		}
		if _, err := tb.Resolve(tc.id); !errors.Is(err, tc.wantErr) {
			t.Errorf("Resolve(%q) = %v; want %v", tc.id, err, tc.wantErr)
		}
	}
	if tb.Has("abc") || !tb.Has("abc1") {
		t.Error("Has matches prefixes or misses ids")
	}
}

// A caller that waited for the lock of a record removed meanwhile is told NotFound, and so is
// a second remover (the call-twice case of every Remove RPC).
func TestRemovedEntryIsNotFoundToWaitersAndSecondCalls(t *testing.T) {
	tb := newTable(nil)
	tb.Add("a", rec{ID: "a"}, struct{}{})
	e, unlock, err := tb.Lock("a")
	if err != nil {
		t.Fatal(err)
	}
	waiterResolved := make(chan struct{})
	waited := make(chan error, 1)
	go func() {
		we, err := tb.Resolve("a")
		close(waiterResolved)
		if err != nil {
			waited <- err
			return
		}
		_, err = we.Lock()
		waited <- err
	}()
	<-waiterResolved
	e.Remove()
	unlock()
	if err := <-waited; !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("waiter's Lock after Remove = %v, want NotFound", err)
	}
	if _, _, err := tb.Lock("a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Lock = %v, want NotFound", err)
	}
	if got := tb.List(nil, func(a, b rec) bool { return a.ID < b.ID }); len(got) != 0 {
		t.Errorf("List after Remove = %v", got)
	}
}

// Readers see a change only once it is persisted, keep the old record when persisting fails,
// and never wait behind the op lock.
func TestPersistThenPublish(t *testing.T) {
	persisting := make(chan struct{})
	release := make(chan error)
	tb := newTable(func(rec) error {
		close(persisting)
		return <-release
	})
	e := tb.Add("a", rec{ID: "a", N: 1}, struct{}{})
	unlock, err := e.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	done := make(chan error, 1)
	go func() {
		_, err := e.Update(func(r *rec) { r.N = 2 })
		done <- err
	}()
	<-persisting
	// The op lock is held and a persist is under way: reads answer with the old record.
	if got, err := tb.Get("a"); err != nil || got.N != 1 {
		t.Errorf("Get while persisting = %+v, %v; want N=1", got, err)
	}
	if got := tb.List(nil, func(a, b rec) bool { return false }); len(got) != 1 || got[0].N != 1 {
		t.Errorf("List while persisting = %+v; want N=1", got)
	}
	boom := errors.New("disk full")
	release <- boom
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the persist error", err)
	}
	if got := e.Record(); got.N != 1 {
		t.Errorf("record after a failed persist = %+v, want N=1", got)
	}
}

// Concurrent changes of one record are serialised: none is lost, and each is persisted in
// the order it is published (run with -race).
func TestConcurrentUpdates(t *testing.T) {
	var mu sync.Mutex
	var persisted []int
	tb := newTable(func(r rec) error {
		mu.Lock()
		persisted = append(persisted, r.N)
		mu.Unlock()
		return nil
	})
	e := tb.Add("a", rec{ID: "a"}, struct{}{})
	const n = 50
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := e.Update(func(r *rec) { r.N++ }); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			_, _ = tb.Get("a")
			_ = tb.List(nil, func(a, b rec) bool { return a.N < b.N })
		}()
	}
	wg.Wait()
	if got := e.Record().N; got != n {
		t.Fatalf("N = %d after %d concurrent updates", got, n)
	}
	for i, v := range persisted {
		if v != i+1 {
			t.Fatalf("persisted %v: not in order", persisted)
		}
	}
}
