// Package table is the in-memory record table behind the pod and container managers: every
// record by id, found by id or unique prefix, read without waiting behind a change, changed
// under a per-record lock, persisted before it is published. A removed record stays
// removed: a caller that waited for its lock is told NotFound.
package table

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/internal/idprefix"
)

// IDLength is the length of every id NewID makes: the hex of 32 random bytes.
const IDLength = 64

// NewID returns a fresh random id for a record.
func NewID() string {
	var b [IDLength / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Table holds records of type R; X is the caller's per-record state that is never
// persisted (channels, a pending error).
type Table[R, X any] struct {
	kind    string
	persist func(R) error

	mu      sync.RWMutex
	entries map[string]*Entry[R, X]
}

// Entry is one record. Its op lock (Lock) serialises the lifecycle calls on it; a change of
// the record (Update, Publish) may also come from elsewhere (an exit watcher) and is
// serialised by a lock of its own, so that it never waits behind a slow lifecycle call.
type Entry[R, X any] struct {
	t  *Table[R, X]
	id string
	op sync.Mutex
	// change guards the read-modify-persist-publish of rec.
	change  sync.Mutex
	rec     R    // guarded by t.mu
	removed bool // set under op once the record is deleted
	// X is the caller's state of this record; the caller guards it.
	X X
}

// New returns an empty table. kind names the records in errors ("container", "pod
// sandbox"); persist stores one record durably and is called before a change is published.
func New[R, X any](kind string, persist func(R) error) *Table[R, X] {
	return &Table[R, X]{kind: kind, persist: persist, entries: map[string]*Entry[R, X]{}}
}

// Add publishes a record already persisted (loaded at start, or stored by a create's own
// transaction) and returns its entry.
func (t *Table[R, X]) Add(id string, r R, x X) *Entry[R, X] {
	e := &Entry[R, X]{t: t, id: id, rec: r, X: x}
	t.mu.Lock()
	t.entries[id] = e
	t.mu.Unlock()
	return e
}

// Resolve finds the entry of id or of the only id starting with it: an empty id or an
// ambiguous prefix is InvalidArgument, no match NotFound.
func (t *Table[R, X]) Resolve(id string) (*Entry[R, X], error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return idprefix.Lookup(t.entries, id, t.kind)
}

// Lock resolves id and takes its entry's op lock, for a change to it (Entry.Lock).
func (t *Table[R, X]) Lock(id string) (*Entry[R, X], func(), error) {
	e, err := t.Resolve(id)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := e.Lock()
	if err != nil {
		return nil, nil, err
	}
	return e, unlock, nil
}

// Get returns a copy of the record of id or of a unique prefix of it.
func (t *Table[R, X]) Get(id string) (R, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, err := idprefix.Lookup(t.entries, id, t.kind)
	if err != nil {
		var zero R
		return zero, err
	}
	return e.rec, nil
}

// Exact returns the record whose id is exactly id.
func (t *Table[R, X]) Exact(id string) (R, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if e, ok := t.entries[id]; ok {
		return e.rec, true
	}
	var zero R
	return zero, false
}

// Has says whether a record with exactly this id is in the table.
func (t *Table[R, X]) Has(id string) bool {
	_, ok := t.Exact(id)
	return ok
}

// List returns copies of the records for which match (if not nil) says true, ordered by
// less.
func (t *Table[R, X]) List(match func(id string, r R) bool, less func(a, b R) bool) []R {
	t.mu.RLock()
	var out []R
	for id, e := range t.entries {
		if match == nil || match(id, e.rec) {
			out = append(out, e.rec)
		}
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return less(out[i], out[j]) })
	return out
}

// Entries returns every entry, for a walk over all of them (recovery).
func (t *Table[R, X]) Entries() []*Entry[R, X] {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Entry[R, X], 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	return out
}

// Lock takes the entry's op lock. An entry removed while the caller waited is NotFound.
// Call unlock when done.
func (e *Entry[R, X]) Lock() (unlock func(), err error) {
	e.op.Lock()
	if e.removed {
		e.op.Unlock()
		return nil, fmt.Errorf("%s %q: %w", e.t.kind, e.id, errdefs.ErrNotFound)
	}
	return e.op.Unlock, nil
}

// Record returns a copy of the entry's current record.
func (e *Entry[R, X]) Record() R {
	e.t.mu.RLock()
	defer e.t.mu.RUnlock()
	return e.rec
}

// Update applies fn to a copy of the record, persists it, then publishes it. When persisting
// fails, readers keep the old record and Update returns it with the error.
func (e *Entry[R, X]) Update(fn func(*R)) (R, error) {
	e.change.Lock()
	defer e.change.Unlock()
	r := e.Record()
	fn(&r)
	if err := e.t.persist(r); err != nil {
		return e.Record(), err
	}
	e.t.mu.Lock()
	e.rec = r
	e.t.mu.Unlock()
	return r, nil
}

// Publish applies fn to the record in memory only: for what the next persisted change
// carries along, or what a restart learns again (a process id).
func (e *Entry[R, X]) Publish(fn func(*R)) {
	e.change.Lock()
	defer e.change.Unlock()
	e.t.mu.Lock()
	fn(&e.rec)
	e.t.mu.Unlock()
}

// Remove drops the entry, whose record the caller has deleted from the store, with its op
// lock held: whoever waits for that lock is then told NotFound.
func (e *Entry[R, X]) Remove() {
	e.removed = true
	e.t.mu.Lock()
	if e.t.entries[e.id] == e {
		delete(e.t.entries, e.id)
	}
	e.t.mu.Unlock()
}
