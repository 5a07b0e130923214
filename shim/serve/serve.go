// Package serve is the `serve` command of the two binaries a pod's monitor runs as:
// peapod-shim, the lean monitor that holds a pod for its whole life and has helpers of
// peapod-shim-runc do libcontainer's work, and peapod-shim-runc itself as the monitor's first
// stage. The daemon starts a pod's monitor as the first stage: it links libcontainer, so the
// pod's first containers are created in the monitor's own process, without a helper process
// each; once idle it re-executes into the lean peapod-shim (shim/server's reexec_linux.go),
// which holds the pod from then on.
package serve

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/internal/version"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/server"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// FirstStage is what makes a binary that links libcontainer (peapod-shim-runc) a monitor's
// first stage.
type FirstStage struct {
	// Do runs one libcontainer request (shim/wire's helper protocol) in this process, with
	// libcontainer's state under root.
	Do func(ctx context.Context, root string, req wire.HelperRequest, files []*os.File) (wire.HelperReply, error)
	// Seccomp says whether this binary loads seccomp profiles.
	Seccomp bool
}

// Serve runs `serve args`: the monitor of one pod until it is shut down. first is nil in
// peapod-shim; in a first stage it is set, and --lean names the peapod-shim to re-execute
// into.
func Serve(args []string, first *FirstStage) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	podID := fs.String("pod-id", "", "the pod this shim serves")
	stateDir := fs.String("state-dir", "", "the pod's state dir (socket, log, records)")
	pidNS := fs.Bool("pid-namespace", false, "hold a PID namespace for the pod")
	holderUser := fs.String("holder-user", "", "UID:GID the PID namespace holder runs as (default root); it has no capabilities either way")
	holderUserNS := fs.String("holder-userns", "", "the pod's user namespace (a pinned nsfs file), which owns the PID namespace the holder makes")
	helper := fs.String("helper", "", "the peapod-shim-runc binary (default: the one beside this binary, or this binary in a first stage)")
	lean := fs.String("lean", "", "in a first stage: the peapod-shim binary to re-execute into (default: the one beside this binary)")
	readyFD := fs.Int("ready-fd", -1, "fd on which to report readiness (shim/client.Start)")
	resumeFD := fs.Int("resume", -1, "fd of the handover of the shim process this one re-executed from (internal)")
	level := zapcore.InfoLevel
	fs.Var(&level, "log-level", "log level (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var ready io.WriteCloser
	if *readyFD >= 0 {
		unix.CloseOnExec(*readyFD) // no container may inherit it
		ready = os.NewFile(uintptr(*readyFD), "ready")
	}
	report := func(err error) {
		if ready != nil {
			_ = wire.WriteReady(ready, err)
			ready.Close()
			ready = nil
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "peapod-shim:", err)
		}
	}
	if *podID == "" || *stateDir == "" {
		report(fmt.Errorf("--pod-id and --state-dir are required"))
		return 2
	}
	if first == nil {
		// A first stage lives for a pod's first creates and is replaced once idle: the
		// lean monitor it becomes is the one tuned to stay small.
		tuneMemory()
	}

	if err := os.MkdirAll(*stateDir, 0o700); err != nil {
		report(err)
		return 1
	}
	logFile, err := os.OpenFile(shim.LogPath(*stateDir), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		report(err)
		return 1
	}
	// The log file is also stderr: Go panics and libcontainer's logrus lines land there.
	if err := unix.Dup3(int(logFile.Fd()), 2, 0); err != nil {
		report(fmt.Errorf("redirect stderr: %w", err))
		return 1
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(corelog.ProductionEncoderConfig()), zapcore.Lock(logFile), level)
	log := corelog.New(core).With(corelog.PodSandboxID(*podID), corelog.Int(corelog.KeyPID, os.Getpid()))
	defer log.Sync() //nolint:errcheck

	helperBin, reexecBinary, err := binaries(*helper, *lean, first != nil)
	if err != nil {
		report(err)
		return 1
	}
	opts := server.Options{
		PodID:        *podID,
		StateDir:     *stateDir,
		Helper:       helperBin,
		Logger:       log,
		PidNamespace: *pidNS,
		HolderUser:   *holderUser,
		HolderUserNS: *holderUserNS,
		Version:      version.String(),
		// A shim that has been busy sheds what the work left in its process by executing
		// itself afresh once idle (shim/server's reexec_linux.go); a first stage executes the
		// lean binary.
		ReexecBinary: reexecBinary,
		ReexecArgs:   func(fd int) []string { return reexecArgs(os.Args, fd, helperBin, reexecBinary) },
	}
	if first != nil {
		opts.InProcess, opts.Seccomp = first.Do, first.Seccomp
	}
	var srv *server.Server
	if *resumeFD >= 0 {
		srv, err = server.Resume(opts, *resumeFD)
	} else {
		srv, err = server.New(opts)
	}
	if err != nil {
		report(err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	signal.Ignore(syscall.SIGHUP)
	if err := srv.Serve(ctx, report); err != nil {
		log.Error("shim failed", corelog.Error(err))
		return 1
	}
	return 0
}

// binaries resolves the helper binary (peapod-shim-runc) and the one to re-execute ("" for
// this one): by default both are beside this binary, and a first stage is its own helper.
func binaries(helper, lean string, first bool) (string, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("find this binary: %w", err)
	}
	if helper == "" {
		helper = filepath.Join(filepath.Dir(exe), "peapod-shim-runc")
		if first {
			helper = exe
		}
	}
	if !first {
		return helper, "", nil
	}
	if lean == "" {
		lean = filepath.Join(filepath.Dir(exe), "peapod-shim")
	}
	return helper, lean, nil
}

// reexecArgs is the argv of a re-executed shim: the same, with --resume fd in place of
// --ready-fd (and of an earlier --resume), and the helper found at the start (the binary
// beside this one may have been replaced since). A first stage's names the lean binary it
// executes (binary) and no --lean.
func reexecArgs(args []string, fd int, helper, binary string) []string {
	out := []string{args[0]}
	if binary != "" {
		out[0] = binary
	}
	for i := 1; i < len(args); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		switch {
		case !strings.HasPrefix(args[i], "-"):
		case name == "ready-fd", name == "resume", name == "helper", name == "lean":
			if !hasValue {
				i++
			}
			continue
		}
		out = append(out, args[i])
	}
	return append(out, "--helper", helper, "--resume", strconv.Itoa(fd))
}

// tuneMemory keeps a mostly idle process small: one shim runs per pod on every node. One P is
// plenty for copying output and serving a few calls (and saves its caches); a lower GC target
// returns garbage sooner, and a soft limit is a safety valve. GOMAXPROCS, GOGC and GOMEMLIMIT
// in the environment still win.
func tuneMemory() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(16 << 20)
	}
}
