package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// rootLock is the exclusive lock a daemon holds on its root for its whole life, so that two
// daemons never share one store.
type rootLock struct{ f *os.File }

func lockRoot(root string) (*rootLock, error) {
	path := filepath.Join(root, "peapod.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open root lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("root %s is locked by another peapod daemon (pid %s): only one daemon may use a root", root, bytes.TrimSpace(holder))
		}
		return nil, fmt.Errorf("lock root %s: %w", root, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &rootLock{f: f}, nil
}

// release drops the lock; the file stays, naming no one until the next daemon writes itself.
func (l *rootLock) release() {
	_ = l.f.Truncate(0)
	_ = l.f.Close()
}
