package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

type rec struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db, path
}

func TestPutGetDeleteSurvivesReopen(t *testing.T) {
	db, path := openTemp(t)
	if err := db.Put("pods", "abc", rec{Name: "a", N: 1}); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, path)
	var got rec
	if err := db.Get("pods", "abc", &got); err != nil || got != (rec{Name: "a", N: 1}) {
		t.Fatalf("Get after reopen = %+v, %v", got, err)
	}
	if err := db.Delete("pods", "abc"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete("pods", "abc"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := db.Get("pods", "abc", &got); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after delete: %v, want NotFound", err)
	}
	if err := db.Get("nobucket", "x", &got); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get from missing bucket: %v, want NotFound", err)
	}
}

func TestReserve(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	if err := db.Reserve("pod", "default/web", "id1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Reserve("pod", "default/web", "id1"); err != nil {
		t.Fatalf("same holder again: %v", err)
	}
	err := db.Reserve("pod", "default/web", "id2")
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("other holder: %v, want AlreadyExists", err)
	}
	if want := "id1"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name holder %s", err, want)
	}
	if err := db.Release("pod", "default/web", "id2"); err != nil {
		t.Fatal(err)
	}
	if h, err := db.Holder("pod", "default/web"); err != nil || h != "id1" {
		t.Fatalf("release by non-holder freed the name: %q %v", h, err)
	}
	if err := db.Release("pod", "default/web", "id1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Reserve("pod", "default/web", "id2"); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if err := db.Reserve("pod", "", "id2"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty name: %v", err)
	}
}

func TestUpdateRollsBack(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	boom := errors.New("boom")
	err := db.Update(func(tx *Tx) error {
		if err := tx.Put("c", "k", rec{N: 1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	var r rec
	if err := db.Get("c", "k", &r); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("failed update left a record: %v", err)
	}
}

func TestCorruptDatabaseIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	junk := make([]byte, 64*1024)
	for i := range junk {
		junk[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(path); err == nil {
		db.Close()
		t.Fatal("Open of a corrupt database succeeded")
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	db, path := openTemp(t)
	defer db.Close()
	if db2, err := Open(path); err == nil {
		db2.Close()
		t.Fatal("second Open of a held database succeeded")
	} else if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("second Open: %v, want Unavailable", err)
	}
}

func TestLoad(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	for k, n := range map[string]int{"b": 2, "a": 1} {
		if err := db.Put("c", k, rec{N: n}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := Load(db, "c", func(k string, r rec) error {
		got = append(got, fmt.Sprintf("%s=%d", k, r.N))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a=1,b=2" {
		t.Errorf("Load = %v, want a=1,b=2 in key order", got)
	}
	if err := db.Put("c", "bad", "not a record"); err != nil {
		t.Fatal(err)
	}
	if err := Load(db, "c", func(string, rec) error { return nil }); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("Load of a record that does not decode = %v, want an error naming it", err)
	}
}

// waitFor waits until cond, read under db.mu, holds.
func waitFor(t *testing.T, db *DB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.mu.Lock()
		ok := cond()
		db.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// queued waits until n updates wait in db's queue.
func queued(t *testing.T, db *DB, n int) {
	t.Helper()
	waitFor(t, db, fmt.Sprintf("%d queued updates", n), func() bool { return len(db.queue) == n })
}

// blockCommit starts an Update of fn that stays committing until release is called (at the
// latest when the test ends), and returns once it commits; its result comes on done.
func blockCommit(t *testing.T, db *DB, fn func(*Tx) error) (release func(), done <-chan error) {
	t.Helper()
	unblock := make(chan struct{})
	release = sync.OnceFunc(func() { close(unblock) })
	t.Cleanup(release)
	result := make(chan error, 1)
	go func() {
		result <- db.Update(func(tx *Tx) error {
			<-unblock
			return fn(tx)
		})
	}()
	waitFor(t, db, "an update committing", func() bool { return db.leading })
	return release, result
}

// reopen closes db and opens the database at path again, closed when the test ends.
func reopen(t *testing.T, db *DB, path string) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestUpdateGroupCommit: updates that arrive while one commits share the next transaction;
// one of them failing (or panicking) fails alone and writes nothing, the others land.
func TestUpdateGroupCommit(t *testing.T) {
	db, path := openTemp(t)
	release, first := blockCommit(t, db, func(tx *Tx) error { return tx.Put("c", "first", rec{N: -1}) })

	const n = 10
	boom := errors.New("boom")
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Update(func(tx *Tx) error {
				if err := tx.Put("c", fmt.Sprint(i), rec{N: i}); err != nil {
					return err
				}
				switch i {
				case 3:
					return boom
				case 7:
					panic("seven")
				}
				return nil
			})
		}()
		queued(t, db, i+1)
	}
	release()
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first update: %v", err)
	}
	// The first alone, the ten together (dropped for the failures), then each of the ten.
	if want := 1 + 1 + n; db.commits != want {
		t.Errorf("%d transactions, want %d", db.commits, want)
	}
	for i, err := range errs {
		switch {
		case i == 3 && !errors.Is(err, boom), i == 7 && (err == nil || !strings.Contains(err.Error(), "seven")):
			t.Errorf("update %d: %v, want its own failure", i, err)
		case i != 3 && i != 7 && err != nil:
			t.Errorf("update %d: %v", i, err)
		}
	}

	// What landed is on disk: reopen.
	db = reopen(t, db, path)
	for i := range n {
		var r rec
		err := db.Get("c", fmt.Sprint(i), &r)
		if i == 3 || i == 7 {
			if !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("failed update %d left a record: %v", i, err)
			}
			continue
		}
		if err != nil || r.N != i {
			t.Errorf("update %d: record %+v, %v", i, r, err)
		}
	}

	// Without failures, a queue is one transaction.
	db.commits = 0
	release, first = blockCommit(t, db, func(*Tx) error { return nil })
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Put("d", fmt.Sprint(i), rec{N: i})
		}()
		queued(t, db, i+1)
	}
	release()
	wg.Wait()
	<-first
	for i, err := range errs {
		if err != nil {
			t.Errorf("put %d: %v", i, err)
		}
	}
	if db.commits != 2 {
		t.Errorf("%d transactions for one alone and a queue of %d, want 2", db.commits, n)
	}
}
