package server

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
)

// reaper is the one place the shim waits for children. The shim is a child subreaper, so
// orphans of its containers and exec sessions become its children, and PID 1 on a node may
// reap them only seconds later: the reaper collects every child with wait4(-1) as soon as
// SIGCHLD arrives and hands the status to whoever registered the pid.
//
// libcontainer waits for its own helper processes while it starts a container or an exec.
// spawn holds reaping off during that time and registers the new pid
// before reaping resumes, so the reaper never steals a helper and never misses an exit.
//
// Holds nest (a helper started while a create holds reaping off holds it too), so they are a
// count, not a read lock: a reaper waiting for a lock would block a nested hold.
type reaper struct {
	log *corelog.Logger

	holdMu   sync.Mutex
	released *sync.Cond // signalled when holds drops to 0
	holds    int

	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
}

func newReaper(l *corelog.Logger) *reaper {
	r := &reaper{log: l, waiters: make(map[int]chan unix.WaitStatus)}
	r.released = sync.NewCond(&r.holdMu)
	return r
}

// acquire holds reaping off until release.
func (r *reaper) acquire() {
	r.holdMu.Lock()
	r.holds++
	r.holdMu.Unlock()
}

func (r *reaper) release() {
	r.holdMu.Lock()
	r.holds--
	if r.holds == 0 {
		r.released.Broadcast()
	}
	r.holdMu.Unlock()
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
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	for r.holds > 0 {
		r.released.Wait()
	}
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
	r.acquire()
	defer r.release()
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
// to pid itself, unless pid has been reaped already.
func (r *reaper) killGroup(pid int) {
	r.unreaped(pid, func() {
		_ = unix.Kill(-pid, unix.SIGKILL)
		_ = unix.Kill(pid, unix.SIGKILL)
	})
}

// signal sends sig to pid unless it has been reaped already; it says whether pid was still
// there.
func (r *reaper) signal(pid int, sig unix.Signal) bool {
	var err error
	return r.unreaped(pid, func() { err = unix.Kill(pid, sig) }) && err == nil
}

// unreaped runs f, with reaping held off, if pid has not been reaped yet (holding reaping off
// makes sure the pid cannot have been reused meanwhile); it says whether f ran.
func (r *reaper) unreaped(pid int, f func()) bool {
	r.acquire()
	defer r.release()
	r.mu.Lock()
	_, alive := r.waiters[pid]
	r.mu.Unlock()
	if alive {
		f()
	}
	return alive
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
	r.acquire()
	defer r.release()
	f()
}

// register returns the channel that gets pid's wait status: for the children a re-executed
// shim inherits (Resume), before the reaper runs.
func (r *reaper) register(pid int) <-chan unix.WaitStatus {
	ch := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	r.waiters[pid] = ch
	r.mu.Unlock()
	return ch
}

// waitingFor says pid has not been reaped yet.
func (r *reaper) waitingFor(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.waiters[pid]
	return ok
}
