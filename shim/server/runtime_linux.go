package server

import (
	"context"
	"os"
	"syscall"

	"github.com/peapod-runtime/peapod/shim/wire"
)

// Runtime creates the pod's containers. The Server's own is helperRuntime, which runs
// shim/libct in peapod-shim-runc helpers; a test may pass another in Options.Runtime.
type Runtime interface {
	// Create creates container id from spec and starts its init, which waits for Start
	// before it execs the user process (runc create).
	Create(ctx context.Context, id string, spec CreateSpec, stdio Stdio) (RuntimeContainer, error)
	// Remove cleans up what an earlier shim left of container id: it kills its processes and
	// removes its cgroup and state. Nothing left is not an error.
	Remove(ctx context.Context, id string) error
}

// RuntimeContainer is one container of a Runtime. Its processes are children of the shim,
// whose reaper waits for them: the runtime never waits for a container process itself.
type RuntimeContainer interface {
	// Pid is the init's pid.
	Pid() int
	// Start lets the created init exec the user process.
	Start(ctx context.Context) error
	// Signal signals the init, or every process of the container when all is set. A stopped
	// container returns an error wrapping errdefs.ErrFailedPrecondition.
	Signal(ctx context.Context, sig syscall.Signal, all bool) error
	// Exec starts the container's process changed by e in the running container and returns
	// its pid.
	Exec(ctx context.Context, e wire.ExecOverrides, stdio Stdio) (int, error)
	// Stopped runs after the init has been reaped and before its exit is reported: it tells
	// whether the container's cgroup recorded an OOM kill, and kills what is left of a
	// container that shares a PID namespace.
	Stopped(ctx context.Context) (oomKilled bool, err error)
	// Destroy removes the stopped container's cgroup and state.
	Destroy(ctx context.Context) error
}

// CreateSpec is a container's OCI spec as the daemon sent it (JSON, not decoded by the
// shim), with what the shim sets: Root.Path is Rootfs, Process.Terminal is Terminal.
type CreateSpec struct {
	JSON     []byte
	Rootfs   string
	Terminal bool
}

// Stdio are a new process's fds 0, 1 and 2 (nil means /dev/null), or, for a terminal, the
// socket over which the process sends the master side of its new pty.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
	ConsoleSocket         *os.File
}
