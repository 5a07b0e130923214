package server

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// consoleSocket is a socket pair over which a container's init sends the master side of the
// pty it creates for a terminal process.
type consoleSocket struct {
	parent, child *os.File
}

func newConsoleSocket() (*consoleSocket, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console socket pair: %w", err)
	}
	return &consoleSocket{
		parent: os.NewFile(uintptr(fds[0]), "console-parent"),
		child:  os.NewFile(uintptr(fds[1]), "console-child"),
	}, nil
}

// receive returns the pty master the process sent. The init has sent it before its start
// returned, so a short timeout only guards against a broken child.
func (c *consoleSocket) receive(timeout time.Duration) (*os.File, error) {
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(int(c.parent.Fd()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("console socket timeout: %w", err)
	}
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(c.parent.Fd()), name, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive pty master: bad control message (%d messages): %v", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive pty master: want one fd, got %d: %v", len(fds), err)
	}
	// Non-blocking, so that the runtime poller serves reads (no thread parked per terminal) and
	// Close interrupts a pending read.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("pty master: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

func (c *consoleSocket) close() {
	c.parent.Close()
	c.child.Close()
}
