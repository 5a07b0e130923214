// Package store is peapod's persistent metadata: a bbolt database of JSON records in named
// buckets, and name reservations that say who holds a name (ids are resolved in memory, by
// internal/table). It is the only package that imports bbolt.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

// namesBucket holds reservations as "<kind>/<name>" -> holder id.
const namesBucket = "names"

// DB is an open metadata database. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string

	// Group commit (Update): calls that arrive while one commits wait in queue and go to
	// disk together in the next transaction, one fdatasync pair for all of them.
	mu      sync.Mutex
	queue   []*update
	leading bool // an Update is committing; the queue waits for it to hand over
	commits int  // transactions written by Update (for tests)
}

// update is one Update call waiting in the queue.
type update struct {
	fn   func(*Tx) error
	err  error
	lead bool          // woken to commit the queue, not with its result
	wake chan struct{} // one send: err is set, or lead
}

// Open opens (creating if needed) the database at path. A database another process holds
// open, or one that is corrupt or unreadable, is an error: the daemon must never start over
// an empty store silently.
func Open(path string) (db *DB, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create metadata dir: %w", err)
	}
	// bbolt panics on some kinds of corruption instead of returning an error.
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("metadata database %s is corrupt: %v", path, r)
		}
	}()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("metadata database %s is locked by another process: %w", path, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("open metadata database %s (corrupt or unreadable; move it aside to start over): %w", path, err)
	}
	// Walk every page once so that corruption is found now, not in the middle of an RPC.
	if err := b.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			return e
		}
		return nil
	}); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("metadata database %s is corrupt (move it aside to start over): %w", path, err)
	}
	return &DB{bolt: b, path: path}, nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close() error { return db.bolt.Close() }

// Tx is one transaction: a read-only one from View, a read-write one from Update.
type Tx struct{ tx *bolt.Tx }

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in a read-write transaction; nothing is written if fn fails. Once it
// returns nil, fn's writes are on disk.
//
// Concurrent calls share transactions (group commit): a call that finds none committing
// commits at once, alone; calls that arrive meanwhile queue, and the first of them then
// commits all of them in one transaction, so a burst of pods costs the disk one sync per
// round instead of one per write. If any fn of a shared transaction fails, that transaction
// is dropped and each call runs again in its own, so every call gets its own result and a
// failing one writes nothing: fn must be safe to run twice (it only reads and writes tx).
func (db *DB) Update(fn func(*Tx) error) error {
	u := &update{fn: fn, wake: make(chan struct{}, 1)}
	db.mu.Lock()
	db.queue = append(db.queue, u)
	if db.leading {
		db.mu.Unlock()
		if <-u.wake; !u.lead {
			return u.err
		}
		db.mu.Lock()
	}
	db.leading = true
	batch := db.queue
	db.queue = nil
	db.mu.Unlock()

	db.commit(batch)

	db.mu.Lock()
	if len(db.queue) > 0 {
		next := db.queue[0]
		next.lead = true
		next.wake <- struct{}{}
	} else {
		db.leading = false
	}
	db.mu.Unlock()
	return u.err
}

// commit writes batch (the calling leader's update first) and wakes every other update in
// it with its result.
func (db *DB) commit(batch []*update) {
	defer func() {
		for _, u := range batch[1:] {
			u.wake <- struct{}{}
		}
	}()
	if len(batch) > 1 {
		err := db.transact(func(tx *Tx) error {
			for _, u := range batch {
				if err := u.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			return
		}
	}
	for _, u := range batch {
		u.err = db.transact(u.fn)
	}
}

// transact runs fn in one bbolt transaction. A panic in fn is its error: the other calls
// of its group still get their results.
func (db *DB) transact(fn func(*Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("metadata update panicked: %v", r)
		}
	}()
	db.commits++
	return db.bolt.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Put stores v as JSON under bucket/key.
func (db *DB) Put(bucket, key string, v any) error {
	return db.Update(func(tx *Tx) error { return tx.Put(bucket, key, v) })
}

// Get decodes bucket/key into v; a missing record is errdefs.ErrNotFound.
func (db *DB) Get(bucket, key string, v any) error {
	return db.View(func(tx *Tx) error { return tx.Get(bucket, key, v) })
}

// Delete removes bucket/key; a missing record is not an error.
func (db *DB) Delete(bucket, key string) error {
	return db.Update(func(tx *Tx) error { return tx.Delete(bucket, key) })
}

// ForEach calls fn for every record of bucket in key order.
func (db *DB) ForEach(bucket string, fn func(key string, raw []byte) error) error {
	return db.View(func(tx *Tx) error { return tx.ForEach(bucket, fn) })
}

// Load decodes every record of bucket as a T and hands it to fn, in key order.
func Load[T any](db *DB, bucket string, fn func(key string, v T) error) error {
	return db.ForEach(bucket, func(key string, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode %s record %s: %w", bucket, key, err)
		}
		return fn(key, v)
	})
}

// Reserve records that id holds name among objects of kind.
func (db *DB) Reserve(kind, name, id string) error {
	return db.Update(func(tx *Tx) error { return tx.Reserve(kind, name, id) })
}

// Release frees name if id holds it.
func (db *DB) Release(kind, name, id string) error {
	return db.Update(func(tx *Tx) error { return tx.Release(kind, name, id) })
}

// Holder returns the id holding name, or errdefs.ErrNotFound.
func (db *DB) Holder(kind, name string) (id string, err error) {
	err = db.View(func(tx *Tx) error { id, err = tx.Holder(kind, name); return err })
	return id, err
}

// Put stores v as JSON under bucket/key.
func (t *Tx) Put(bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	b, err := t.tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	if err := b.Put([]byte(key), raw); err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Get decodes bucket/key into v; a missing record is errdefs.ErrNotFound.
func (t *Tx) Get(bucket, key string, v any) error {
	raw := t.raw(bucket, key)
	if raw == nil {
		return fmt.Errorf("%s %q: %w", bucket, key, errdefs.ErrNotFound)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (t *Tx) raw(bucket, key string) []byte {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Get([]byte(key))
}

// Delete removes bucket/key; a missing record is not an error.
func (t *Tx) Delete(bucket, key string) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

// ForEach calls fn for every record of bucket in key order. raw is valid only during fn.
func (t *Tx) ForEach(bucket string, fn func(key string, raw []byte) error) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

func nameKey(kind, name string) []byte { return []byte(kind + "/" + name) }

// Reserve records that id holds name among objects of kind. A name another id holds is
// errdefs.ErrAlreadyExists naming the holder; the same id reserving again is fine.
func (t *Tx) Reserve(kind, name, id string) error {
	if name == "" || id == "" {
		return fmt.Errorf("reserve %s name %q for %q: empty name or id: %w", kind, name, id, errdefs.ErrInvalidArgument)
	}
	b, err := t.tx.CreateBucketIfNotExists([]byte(namesBucket))
	if err != nil {
		return fmt.Errorf("bucket %s: %w", namesBucket, err)
	}
	if holder := b.Get(nameKey(kind, name)); holder != nil && string(holder) != id {
		return fmt.Errorf("%s name %q is reserved for %s: %w", kind, name, holder, errdefs.ErrAlreadyExists)
	}
	if err := b.Put(nameKey(kind, name), []byte(id)); err != nil {
		return fmt.Errorf("reserve %s name %q: %w", kind, name, err)
	}
	return nil
}

// Release frees name if id holds it; otherwise it does nothing.
func (t *Tx) Release(kind, name, id string) error {
	b := t.tx.Bucket([]byte(namesBucket))
	if b == nil {
		return nil
	}
	if holder := b.Get(nameKey(kind, name)); holder == nil || string(holder) != id {
		return nil
	}
	if err := b.Delete(nameKey(kind, name)); err != nil {
		return fmt.Errorf("release %s name %q: %w", kind, name, err)
	}
	return nil
}

// Holder returns the id holding name, or errdefs.ErrNotFound.
func (t *Tx) Holder(kind, name string) (string, error) {
	if v := t.raw(namesBucket, string(nameKey(kind, name))); v != nil {
		return string(v), nil
	}
	return "", fmt.Errorf("%s name %q: %w", kind, name, errdefs.ErrNotFound)
}
