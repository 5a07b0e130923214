package client

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// reap waits for the started child cmd to exit and reaps it, and sends its exit (nil for
// status 0) on the returned channel. Unlike cmd.Wait, which blocks an OS thread of the
// daemon in waitid for as long as the shim lives (one thread per pod), the wait is a pidfd
// parked in the runtime's poller, which the kernel makes readable when the process ends.
func reap(cmd *exec.Cmd) <-chan error {
	ch := make(chan error, 1)
	pid := cmd.Process.Pid
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		// Not expected for a child not yet reaped; fall back to the thread.
		go func() { ch <- cmd.Wait() }()
		return ch
	}
	f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	go func() {
		defer f.Close()
		ch <- waitPidfd(f, pid)
	}()
	return ch
}

// waitPidfd parks until the pidfd f of the child pid is readable, then reaps the child. The
// child is then a zombie, which keeps its pid from reuse, so reaping it by pid is safe.
func waitPidfd(f *os.File, pid int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("wait for process %d: %w", pid, err)
	}
	var ws unix.WaitStatus
	var werr error
	err = rc.Read(func(uintptr) bool {
		var got int
		got, werr = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if errors.Is(werr, unix.EINTR) {
			return false
		}
		return got == pid || werr != nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("wait for process %d: %w", pid, err)
	case werr != nil:
		return fmt.Errorf("wait for process %d: %w", pid, werr)
	case ws.Signaled():
		return fmt.Errorf("process %d killed by signal %v", pid, ws.Signal())
	case ws.ExitStatus() != 0:
		return fmt.Errorf("process %d exit status %d", pid, ws.ExitStatus())
	}
	return nil
}
