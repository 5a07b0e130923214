package server

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// reaper is the one place the shim waits for children. The shim is a child subreaper, so
// orphans of its containers and exec sessions become its children, and PID 1 on a node may
// reap them only seconds later: the reaper collects every child with wait4(-1) as soon as
// SIGCHLD arrives and hands the status to whoever registered the pid.
//
// libcontainer waits for its own helper processes while it starts a container or an exec.
// spawn holds reaping off (spawnMu for reading) during that time and registers the new pid
// before reaping resumes, so the reaper never steals a helper and never misses an exit.
type reaper struct {
	log     *zap.Logger
	spawnMu sync.RWMutex

	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
}

func newReaper(l *zap.Logger) *reaper {
	return &reaper{log: l, waiters: make(map[int]chan unix.WaitStatus)}
}

// run reaps on every SIGCHLD until ctx is done.
func (r *reaper) run(ctx context.Context) {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	r.reap() // children that exited before Notify
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigs:
			r.reap()
		}
	}
}

func (r *reaper) reap() {
	r.spawnMu.Lock()
	defer r.spawnMu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		ch := r.waiters[pid]
		delete(r.waiters, pid)
		r.mu.Unlock()
		if ch != nil {
			ch <- ws
		}
	}
}

// spawn runs start, which starts one child and returns its pid, with reaping held off, and
// returns a channel that receives the child's wait status once it has been reaped.
func (r *reaper) spawn(start func() (int, error)) (int, <-chan unix.WaitStatus, error) {
	r.spawnMu.RLock()
	defer r.spawnMu.RUnlock()
	pid, err := start()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	r.waiters[pid] = ch
	r.mu.Unlock()
	return pid, ch, nil
}

// killGroup sends SIGKILL to the process group led by pid (what an exec session forked) and
// to pid itself, unless pid has been reaped already: holding reaping off makes sure the pid
// cannot have been reused by then.
func (r *reaper) killGroup(pid int) {
	r.spawnMu.RLock()
	defer r.spawnMu.RUnlock()
	r.mu.Lock()
	_, alive := r.waiters[pid]
	r.mu.Unlock()
	if !alive {
		return
	}
	_ = unix.Kill(-pid, unix.SIGKILL)
	_ = unix.Kill(pid, unix.SIGKILL)
}

// exitCode is what a shell would report for ws: the exit status, or 128+signal.
func exitCode(ws unix.WaitStatus) (code int, signaled bool) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), true
	}
	return ws.ExitStatus(), false
}

// hold runs f with reaping held off: for runtime calls that may run and wait for helper
// processes of their own (hooks), such as Destroy.
func (r *reaper) hold(f func()) {
	r.spawnMu.RLock()
	defer r.spawnMu.RUnlock()
	f()
}
