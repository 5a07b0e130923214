package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// execChunk is a piece of an exec's output, or its end.
type execChunk struct {
	stdout, stderr []byte
	exited         bool
	exitCode       int
	timedOut       bool
}

// execSync runs o in container id and passes its output to send as it comes, each stream
// capped at MaxExecOutput, then a last chunk with the exit. On timeout it kills the
// command's process group (every exec process leads its own session), reports timed out, and
// leaves the container running. Output is not waited for longer than ExecDrain of silence
// after the command exited: a background child may keep the pipes open forever.
func (s *Server) execSync(ctx context.Context, id string, o shim.ExecSyncOptions, send func(execChunk) error) error {
	if len(o.Args) == 0 {
		return fmt.Errorf("exec in container %s: no command: %w", id, errdefs.ErrInvalidArgument)
	}
	c, err := s.runningContainer("exec in", id)
	if err != nil {
		return err
	}
	p := wire.ExecOverrides{Args: o.Args, Env: o.Env, Cwd: o.Cwd, User: o.User}

	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("exec stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fmt.Errorf("exec stderr pipe: %w", err)
	}
	pid, exited, err := s.spawnExec(ctx, c, p, Stdio{Stdout: outW, Stderr: errW})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		var nr *execNotRunnable
		if errors.As(err, &nr) {
			return send(execChunk{stderr: []byte(nr.Error() + "\n"), exited: true, exitCode: nr.code})
		}
		return err
	}
	c.log.Debug("exec started", corelog.Int("pid", pid), corelog.Strings("args", o.Args))

	chunks := make(chan execChunk)
	var kept [2]int
	out := &execOutput{files: []*os.File{outR, errR}, drain: s.opts.ExecDrain}
	out.start(func(i int, b []byte) error {
		if kept[i] >= shim.MaxExecOutput {
			return nil
		}
		b = bytes.Clone(b[:min(len(b), shim.MaxExecOutput-kept[i])])
		kept[i] += len(b)
		if i == 0 {
			chunks <- execChunk{stdout: b}
		} else {
			chunks <- execChunk{stderr: b}
		}
		return nil
	})
	pumpsDone := make(chan struct{})
	go func() {
		out.wait()
		close(pumpsDone)
	}()

	var (
		timeout   <-chan time.Time
		done      = ctx.Done()
		pumpsOver bool
		ws        unix.WaitStatus
		hasExit   bool
		timedOut  bool
		sendErr   error
	)
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	for !pumpsOver || !hasExit {
		select {
		case ch := <-chunks:
			if sendErr == nil {
				if sendErr = send(ch); sendErr != nil {
					// The caller is gone: nobody will read the result, stop the command.
					s.reaper.killGroup(pid)
				}
			}
		case <-pumpsDone:
			pumpsOver, pumpsDone = true, nil
		case ws = <-exited:
			hasExit, exited = true, nil
			if timedOut || sendErr != nil {
				out.close()
			} else {
				out.commandExited()
			}
		case <-timeout:
			timedOut, timeout = true, nil
			s.reaper.killGroup(pid)
		case <-done:
			done = nil
			sendErr = ctx.Err()
			s.reaper.killGroup(pid)
		}
	}
	out.close()
	if sendErr != nil {
		return sendErr
	}
	code, _ := exitCode(ws)
	c.log.Debug("exec exited", corelog.Int("pid", pid), corelog.Int("exit_code", code), corelog.Bool("timed_out", timedOut))
	return send(execChunk{exited: true, exitCode: code, timedOut: timedOut})
}

// runningContainer returns container id if it runs: exec and attach need a running one.
func (s *Server) runningContainer(op, id string) (*container, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, err
	}
	if st := c.state(); c.hasExited() || st.Status != shim.StatusRunning {
		return nil, fmt.Errorf("%s container %s: it is %s: %w", op, id, st.Status, errdefs.ErrFailedPrecondition)
	}
	return c, nil
}

// execNotRunnable is a command that could not be executed: what a shell would say, exit code
// 127 for a missing command and 126 for one that cannot run. It is the command's result, not a
// failure of the exec.
type execNotRunnable struct {
	code int
	err  error
}

func (e *execNotRunnable) Error() string { return e.err.Error() }

// spawnExec starts p in running container c with stdio and registers it with the reaper.
// A command that cannot be executed gives an *execNotRunnable; a container that stopped
// meanwhile gives errdefs.ErrFailedPrecondition.
func (s *Server) spawnExec(ctx context.Context, c *container, p wire.ExecOverrides, stdio Stdio) (int, <-chan unix.WaitStatus, error) {
	pid, exited, err := s.reaper.spawn(func() (int, error) {
		return c.rt.Exec(ctx, p, stdio)
	})
	if err == nil {
		return pid, exited, nil
	}
	if c.hasExited() {
		return 0, nil, fmt.Errorf("exec in container %s: it has stopped: %v: %w", c.id, err, errdefs.ErrFailedPrecondition)
	}
	if code, ok := execStartExitCode(err); ok {
		return 0, nil, &execNotRunnable{code: code, err: err}
	}
	return 0, nil, fmt.Errorf("exec in container %s: %w", c.id, err)
}

// execOutput reads an exec's output files (pipes, or a terminal's master) until every writer
// is gone or, once the command has exited, until nothing has come for drain: a background
// child may hold a pipe open forever. A reader blocked on a slow consumer loses nothing:
// only silence counts.
type execOutput struct {
	files  []*os.File
	drain  time.Duration
	exited atomic.Bool
	wg     sync.WaitGroup
}

// start reads each file in its own goroutine and passes what it reads to emit, with the
// file's index; the slice is reused after emit returns. A reader stops when emit fails.
func (o *execOutput) start(emit func(i int, b []byte) error) {
	for i, f := range o.files {
		o.wg.Go(func() {
			buf := make([]byte, wire.MaxFramePayload)
			for {
				if o.exited.Load() {
					_ = f.SetReadDeadline(time.Now().Add(o.drain))
				}
				n, err := f.Read(buf)
				if n > 0 && emit(i, buf[:n]) != nil {
					return
				}
				if err != nil {
					return
				}
			}
		})
	}
}

// commandExited starts the drain: from now on a reader stops after drain without data.
func (o *execOutput) commandExited() {
	o.exited.Store(true)
	for _, f := range o.files {
		_ = f.SetReadDeadline(time.Now().Add(o.drain))
	}
}

// wait returns once every reader has stopped.
func (o *execOutput) wait() { o.wg.Wait() }

// close closes the files, which stops the readers.
func (o *execOutput) close() {
	for _, f := range o.files {
		f.Close()
	}
}

// execStartExitCode recognizes the errors libcontainer returns when the command cannot be
// executed (its init reports exec.LookPath's error as text), and gives the exit code a shell
// would: 127 for a missing command, 126 for one that cannot run.
func execStartExitCode(err error) (int, bool) {
	msg := err.Error()
	if !strings.Contains(msg, `exec: "`) {
		return 0, false
	}
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
		return 127, true
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "is a directory"), strings.Contains(msg, "exec format error"):
		return 126, true
	}
	return 0, false
}
