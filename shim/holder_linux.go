package shim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The holder's pid and start time are kept in the state dir, so that the next shim of the
// pod can kill a holder whose shim was killed (SIGKILL leaves no chance to stop it).
func holderFile(stateDir string) string { return filepath.Join(stateDir, "pidns-holder") }

// WriteHolderFile records the pid of the holder a shim started.
func WriteHolderFile(stateDir string, pid int) error {
	start, err := processStartTime(pid)
	if err != nil {
		return err
	}
	if err := os.WriteFile(holderFile(stateDir), []byte(fmt.Sprintf("%d %d\n", pid, start)), 0o600); err != nil {
		return fmt.Errorf("record pid namespace holder: %w", err)
	}
	return nil
}

// KillStaleHolder kills the pod PID namespace holder a dead shim left in stateDir, if any:
// the daemon calls it when it removes a pod whose shim is gone, the next shim of the pod
// when it starts. It returns the pid it killed (0: none), for the caller's log.
func KillStaleHolder(stateDir string) (killed int) {
	b, err := os.ReadFile(holderFile(stateDir))
	if err != nil {
		return 0
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscan(string(b), &pid, &start); err == nil && pid > 0 {
		// The start time proves the pid was not reused by an unrelated process.
		if now, err := processStartTime(pid); err == nil && now == start {
			_ = unix.Kill(pid, unix.SIGKILL)
			killed = pid
		}
	}
	_ = os.Remove(holderFile(stateDir))
	return killed
}

// processStartTime is field 22 of /proc/<pid>/stat, in clock ticks since boot.
func processStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// RemoveHolderFile forgets the holder once its shim has stopped it.
func RemoveHolderFile(stateDir string) { _ = os.Remove(holderFile(stateDir)) }

// HolderWatch tells the daemon when a pod's PID namespace holder exits. The shim that
// started the holder reaps it; the daemon, which is not its parent, learns of the exit from
// a pidfd, which the kernel makes readable when the process ends.
type HolderWatch struct {
	// Pid is the holder's pid.
	Pid    int
	pidfd  *os.File // nil when the holder was gone already
	closed atomic.Bool
}

// WatchHolder watches the holder recorded in stateDir (WriteHolderFile) and calls exited
// once, from a goroutine of its own, when the holder exits, or at once when it is gone
// already; never after Close. With no holder recorded it returns nil and no error. A watch
// costs an fd and a goroutine parked in the runtime's poller: no timer, no polling.
func WatchHolder(stateDir string, exited func(*HolderWatch)) (*HolderWatch, error) {
	b, err := os.ReadFile(holderFile(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pid namespace holder record: %w", err)
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscan(string(b), &pid, &start); err != nil || pid <= 0 {
		return nil, fmt.Errorf("pid namespace holder record %s: malformed %q", holderFile(stateDir), b)
	}
	w := &HolderWatch{Pid: pid}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	switch {
	case errors.Is(err, unix.ESRCH):
		// Gone already.
	case err != nil:
		return nil, fmt.Errorf("watch pid namespace holder %d: %w", pid, err)
	default:
		f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
		// Read after the open: a matching start time proves that the pidfd is the holder's
		// and not a later process's that reused its pid.
		if now, err := processStartTime(pid); err == nil && now == start {
			w.pidfd = f
		} else {
			f.Close()
		}
	}
	go w.wait(exited)
	return w, nil
}

func (w *HolderWatch) wait(exited func(*HolderWatch)) {
	if w.pidfd != nil {
		rc, err := w.pidfd.SyscallConn()
		if err != nil {
			return
		}
		// The pidfd is non-blocking, so os.NewFile put it in the runtime's poller: Read
		// parks until it is readable (the process ended) or the file is closed.
		err = rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 0)
			return n > 0 || err != nil && !errors.Is(err, unix.EINTR)
		})
		if err != nil {
			return // closed
		}
	}
	if !w.closed.Load() {
		exited(w)
	}
}

// Close ends the watch: exited is not called after it. Safe to repeat and on nil.
func (w *HolderWatch) Close() {
	if w == nil || w.closed.Swap(true) {
		return
	}
	if w.pidfd != nil {
		w.pidfd.Close()
	}
}
