package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
	"unsafe"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"
)

// si_code of a SIGCHLD siginfo (<asm-generic/siginfo.h>).
const (
	cldExited = 1 // exited: si_status is its exit code
	cldKilled = 2 // killed: si_status is the signal
	cldDumped = 3 // killed, and dumped core
)

// maxPluginOutput bounds what a plugin may write to stdout or to stderr.
const maxPluginOutput = 4 << 20

// reapDelay is how long an exited plugin stays a zombie before the daemon reaps it.
//
// Reaping a process makes the kernel drop its /proc entries (release_task ->
// proc_flush_pid -> d_invalidate), and for the bridge plugin, which enters the pod's network
// namespace from several threads (/proc/<pid>/task/<tid>/ns/net), that dcache walk spins
// on a busy node for a while after the exit. Measured on the 110-pod density bench (perf,
// d_walk under the daemon's waitid): reaped at once, 1.7 ms of the daemon's cpu per pod
// start; 0.2 ms after the exit, 1.1 ms; 5 ms after, 0.05 ms. The answer does not wait for
// the reap: it is read from the zombie (waitid WNOWAIT).
const reapDelay = 10 * time.Millisecond

// pluginGOMAXPROCS is the GOMAXPROCS a plugin runs with unless the daemon's environment sets
// one. Most plugins are Go programs that live for one call of mostly syscalls; with one P their
// runtime starts fewer threads and preempts less (strace of the bridge plugin's ADD, with
// host-local: 10 clones and 5 tgkills, against 12 and 17 with the default of 2 on a 2-core
// node). Measured on this project's 2-core VM (that ADD into a new network namespace, 60
// alternating runs): 43.6 ms of cpu per call with the default, 40.3 with 1.
const pluginGOMAXPROCS = "1"

// pluginEnv is environ with GOMAXPROCS=pluginGOMAXPROCS added when environ names none.
func pluginEnv(environ []string) []string {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return environ
		}
	}
	return append(environ[:len(environ):len(environ)], "GOMAXPROCS="+pluginGOMAXPROCS)
}

// pluginExec runs plugins as libcni's own exec does (stdin the config, stdout the result or
// a CNI error, non-zero exit on failure, a retry while the binary is being replaced), but
// answers as soon as the plugin has exited and reaps it reapDelay later, and gives it one P
// (pluginEnv).
type pluginExec struct {
	version.PluginDecoder // Decode, as libcni's own exec
	// stderr gets what a plugin that succeeded wrote to its stderr.
	stderr io.Writer
	// reaped, when set, is told each plugin's pid once it is reaped (tests).
	reaped func(pid int)
}

func newExec(stderr io.Writer) invoke.Exec { return &pluginExec{stderr: stderr} }

// FindInPath finds plugin in paths, as libcni's own exec.
func (*pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// ExecPlugin runs the plugin at path.
func (e *pluginExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	for try := 0; ; try++ {
		stdout, stderr, err := e.run(ctx, path, stdin, environ)
		if errors.Is(err, unix.ETXTBSY) && try < 5 {
			// The binary is being written: wait for the writer, as libcni does.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		if errors.Is(err, errTooMuchOutput) {
			return nil, fmt.Errorf("plugin %s: %w", path, err)
		}
		if err != nil {
			return nil, pluginError(err, stdout, stderr)
		}
		if e.stderr != nil && len(stderr) > 0 {
			_, _ = e.stderr.Write(stderr)
		}
		return stdout, nil
	}
}

// run starts the plugin, reads its output until it closes it, and returns once the plugin
// has exited, with its failure if it did not exit 0. It leaves the plugin a zombie, reaped
// reapDelay later.
func (e *pluginExec) run(ctx context.Context, path string, stdin []byte, environ []string) (stdout, stderr []byte, err error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("plugin stdout: %w", err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return nil, nil, fmt.Errorf("plugin stderr: %w", err)
	}
	defer errR.Close()
	c := exec.CommandContext(ctx, path)
	c.Env, c.Stdin, c.Stdout, c.Stderr = pluginEnv(environ), bytes.NewReader(stdin), outW, errW
	err = c.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		return nil, nil, err
	}
	// From here the plugin is reaped whatever happens, reapDelay after it exits.
	defer time.AfterFunc(reapDelay, func() {
		_ = c.Wait()
		if e.reaped != nil {
			e.reaped(c.Process.Pid)
		}
	})

	errc := make(chan []byte, 1)
	go func() {
		b, err := readBounded(errR)
		if err != nil {
			b = []byte("(" + err.Error() + ")")
		}
		errc <- b
	}()
	stdout, outErr := readBounded(outR)
	stderr = <-errc
	if err := exited(c.Process.Pid); err != nil && outErr == nil {
		return stdout, stderr, err
	}
	return stdout, stderr, outErr
}

var errTooMuchOutput = fmt.Errorf("wrote more than %d bytes", maxPluginOutput)

// readBounded reads r to its end, at most maxPluginOutput bytes of it.
func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPluginOutput+1))
	if err == nil && len(b) > maxPluginOutput {
		// Drain the rest so that the plugin is not stuck writing.
		_, _ = io.Copy(io.Discard, r)
		return nil, errTooMuchOutput
	}
	return b, err
}

// exited waits for the child pid to exit without reaping it (waitid WNOWAIT): nil when it
// exited 0, else how it ended.
func exited(pid int) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for plugin %d: %w", pid, err)
		}
	}
	switch code, status := childStatus(&info); code {
	case cldExited:
		if status == 0 {
			return nil
		}
		return fmt.Errorf("exit status %d", status)
	case cldKilled, cldDumped:
		return fmt.Errorf("signal: %v", unix.Signal(status))
	default:
		return fmt.Errorf("plugin %d ended with si_code %d", pid, code)
	}
}

// childStatus is a SIGCHLD siginfo's si_code and si_status: x/sys/unix leaves the union of
// siginfo_t opaque. On 64-bit Linux its SIGCHLD fields sit after the three ints and their
// padding: si_pid at 16, si_uid at 20, si_status at 24.
func childStatus(info *unix.Siginfo) (code, status int32) {
	const statusOffset = 24
	return info.Code, *(*int32)(unsafe.Add(unsafe.Pointer(info), statusOffset))
}

// maxQuoted bounds how much of a plugin's output a message quotes.
const maxQuoted = 4 << 10

// pluginError is the CNI error a failed plugin reports on stdout, or one made of its stderr
// or of how it ended, as libcni reports it.
func pluginError(err error, stdout, stderr []byte) error {
	e := &types.Error{}
	switch {
	case len(stdout) > 0:
		if perr := json.Unmarshal(stdout, e); perr != nil {
			e.Msg = fmt.Sprintf("netplugin failed but error parsing its diagnostic message %q: %v", quoted(stdout), perr)
		}
	case len(stderr) > 0:
		e.Msg = fmt.Sprintf("netplugin failed: %q: %v", quoted(stderr), err)
	default:
		e.Msg = fmt.Sprintf("netplugin failed with no error message: %v", err)
	}
	return e
}

// quoted is b, cut to maxQuoted bytes.
func quoted(b []byte) []byte {
	if len(b) > maxQuoted {
		return append(b[:maxQuoted:maxQuoted], "..."...)
	}
	return b
}
