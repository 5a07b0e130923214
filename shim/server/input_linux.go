package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/shim"
)

// inputEnd is the shim's writing end of a process's stdin: a pipe, or the master of the
// process's terminal. Sessions attached to one container share it.
type inputEnd struct {
	f   *os.File
	tty bool

	mu     sync.Mutex // one writer at a time, so that each frame arrives whole
	closed atomic.Bool
}

// inputPoll is how often a write blocked on a full stdin checks whether its session is over.
const inputPoll = 500 * time.Millisecond

// write writes p to the stdin. A process that does not read its stdin blocks the write: it
// then checks every inputPoll whether abandon says the session is over (the client hung up),
// and gives up if so. A closed stdin drops p and returns an error wrapping os.ErrClosed.
func (in *inputEnd) write(p []byte, abandon func() bool) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	defer in.f.SetWriteDeadline(time.Time{})
	for len(p) > 0 {
		if in.closed.Load() {
			return fmt.Errorf("stdin: %w", os.ErrClosed)
		}
		if err := in.f.SetWriteDeadline(time.Now().Add(inputPoll)); err != nil {
			return fmt.Errorf("stdin: %w", err)
		}
		n, err := in.f.Write(p)
		p = p[n:]
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if abandon() {
				return fmt.Errorf("stdin: session ended while the process did not read: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("stdin: %w", err)
		}
	}
	return nil
}

// eof makes the process read end of file: a pipe is closed; a terminal gets its EOF character
// (what typing ^D does) and takes no more input from the sessions, but stays the process's
// terminal. It is done once; later calls do nothing.
func (in *inputEnd) eof(abandon func() bool) {
	if !in.tty {
		in.release()
		return
	}
	c := termEOF(in.f)
	_ = in.write([]byte{c}, abandon)
	in.closed.Store(true)
}

// release closes a pipe for good (the process exited, or the container is deleted). A
// terminal's master is the container's output too and is closed with it, not here.
func (in *inputEnd) release() {
	if in.closed.Swap(true) || in.tty {
		return
	}
	// Close does not wait for in.mu: a pending write fails at once.
	in.f.Close()
}

// termEOF is the terminal's EOF character (VEOF), ^D unless the process changed it.
func termEOF(master *os.File) byte {
	c := byte(4)
	control(master, func(fd int) {
		if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil && t.Cc[unix.VEOF] != 0 {
			c = t.Cc[unix.VEOF]
		}
	})
	return c
}

// setWinsize resizes the terminal whose master is f.
func setWinsize(f *os.File, s shim.TerminalSize) error {
	var err error
	control(f, func(fd int) {
		err = unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: s.Width, Row: s.Height})
	})
	if err != nil {
		return fmt.Errorf("resize terminal: %w", err)
	}
	return nil
}

// control runs f on f's fd without Fd(), which would put a pollable file in blocking mode.
func control(file *os.File, f func(fd int)) {
	rc, err := file.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { f(int(fd)) })
}

// peerClosed says the other end of conn hung up, without reading from it: the session's
// reader may be the one blocked on a stdin write.
func peerClosed(conn *net.UnixConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			closed = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
		}
	})
	return closed || err != nil
}
