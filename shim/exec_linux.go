package shim

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
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
// leaves the container running. Output is not waited for longer than ExecDrain after the
// command exited: a background child may keep the pipes open forever.
func (s *Server) execSync(ctx context.Context, id string, o ExecSyncOptions, send func(execChunk) error) error {
	if len(o.Args) == 0 {
		return fmt.Errorf("exec in container %s: no command: %w", id, errdefs.ErrInvalidArgument)
	}
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.hasExited() || c.state().Status != StatusRunning {
		return fmt.Errorf("exec in container %s: it is %s: %w", id, c.state().Status, errdefs.ErrFailedPrecondition)
	}
	p := execProcess(c.spec.Process, o)

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
	pid, exited, err := s.reaper.spawn(func() (int, error) {
		return c.rt.Exec(ctx, p, Stdio{Stdout: outW, Stderr: errW})
	})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if c.hasExited() {
			return fmt.Errorf("exec in container %s: it has stopped: %v: %w", id, err, errdefs.ErrFailedPrecondition)
		}
		if code, ok := execStartExitCode(err); ok {
			// What a shell would say: the command is missing (127) or cannot run (126).
			return send(execChunk{stderr: []byte(err.Error() + "\n"), exited: true, exitCode: code})
		}
		return fmt.Errorf("exec in container %s: %w", id, err)
	}
	c.log.Debug("exec started", zap.Int("pid", pid), zap.Strings("args", o.Args))

	chunks := make(chan execChunk)
	pumpsDone := make(chan struct{}, 2)
	pump := func(r *os.File, stdout bool) {
		defer func() { pumpsDone <- struct{}{} }()
		kept := 0
		for {
			buf := make([]byte, 32<<10)
			n, err := r.Read(buf)
			if n > 0 && kept < MaxExecOutput {
				n = min(n, MaxExecOutput-kept)
				kept += n
				ch := execChunk{stderr: buf[:n]}
				if stdout {
					ch = execChunk{stdout: buf[:n]}
				}
				chunks <- ch
			}
			if err != nil {
				return
			}
		}
	}
	go pump(outR, true)
	go pump(errR, false)
	closeReaders := func() {
		outR.Close()
		errR.Close()
	}

	var (
		timeout  <-chan time.Time
		drain    <-chan time.Time
		done     = ctx.Done()
		pumps    = 0
		ws       unix.WaitStatus
		hasExit  bool
		timedOut bool
		sendErr  error
	)
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	for pumps < 2 || !hasExit {
		select {
		case ch := <-chunks:
			if sendErr == nil {
				if sendErr = send(ch); sendErr != nil {
					// The caller is gone: nobody will read the result, stop the command.
					s.reaper.killGroup(pid)
				}
			}
		case <-pumpsDone:
			pumps++
		case ws = <-exited:
			hasExit, exited = true, nil
			if timedOut || sendErr != nil {
				closeReaders()
			} else {
				drain = time.After(s.opts.ExecDrain)
			}
		case <-timeout:
			timedOut, timeout = true, nil
			s.reaper.killGroup(pid)
		case <-drain:
			drain = nil
			closeReaders()
		case <-done:
			done = nil
			sendErr = ctx.Err()
			s.reaper.killGroup(pid)
		}
	}
	closeReaders()
	if sendErr != nil {
		return sendErr
	}
	code, _ := exitCode(ws)
	c.log.Debug("exec exited", zap.Int("pid", pid), zap.Int("exit_code", code), zap.Bool("timed_out", timedOut))
	return send(execChunk{exited: true, exitCode: code, timedOut: timedOut})
}

// execProcess is the container's process with the exec's command and overrides.
func execProcess(base *specs.Process, o ExecSyncOptions) *specs.Process {
	p := *base
	p.Terminal = false
	p.ConsoleSize = nil
	p.Args = o.Args
	if len(o.Env) > 0 {
		p.Env = o.Env
	}
	if o.Cwd != "" {
		p.Cwd = o.Cwd
	}
	if o.User != nil {
		p.User = *o.User
	}
	return &p
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
