package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"go.uber.org/zap/zapcore"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim/libct"
	"github.com/peapod-runtime/peapod/shim/serve"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// helper runs one job of shim/wire's helper protocol: hello, one request with its fds, one
// reply. Its stderr is the shim's log.
func helper(args []string) int {
	fs := flag.NewFlagSet("helper", flag.ContinueOnError)
	root := fs.String("root", "", "libcontainer's state root (<pod state dir>/libct)")
	warmUp := fs.Bool("warm", false, "build encoding/json's caches while waiting for the request (a helper started ahead of use)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f := os.NewFile(wire.HelperFD, "helper")
	fc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peapod-shim-runc helper:", err)
		return 1
	}
	conn, ok := fc.(*net.UnixConn)
	if !ok {
		fmt.Fprintln(os.Stderr, "peapod-shim-runc helper: fd 3 is not a unix socket")
		return 1
	}
	defer conn.Close()
	log := stderrLogger()
	defer log.Sync() //nolint:errcheck

	w := wire.NewFrameWriter(conn)
	if err := w.WriteJSON(wire.FrameOK, wire.HelperHello{Seccomp: seccomp.Enabled}); err != nil {
		return 1
	}
	if *warmUp {
		warm()
	}
	files, err := wire.ReceiveFiles(conn, 4)
	if err != nil {
		// The shim closed the socket: it had no work for this helper.
		return 0
	}
	t, b, err := wire.NewFrameReader(conn).Next()
	if err != nil || t != wire.FrameHeader {
		log.Error("helper request", corelog.Error(err), corelog.Stringer("frame", t))
		return 1
	}
	var req wire.HelperRequest
	if err := json.Unmarshal(b, &req); err != nil {
		log.Error("decode helper request", corelog.Error(err))
		return 1
	}
	reply, err := do(context.Background(), *root, log, req, files)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		reply.Error, reply.Class = err.Error(), wire.ErrorClass(err)
	}
	if err := w.WriteJSON(wire.FrameOK, reply); err != nil {
		log.Error("helper reply", corelog.String("op", req.Op), corelog.Error(err))
		return 1
	}
	return 0
}

// stderrLogger logs this process's lines, and libcontainer's (logrus), as JSON to stderr:
// the shim's log.
func stderrLogger() *corelog.Logger {
	logrus.SetFormatter(&logrus.JSONFormatter{})
	logrus.SetOutput(os.Stderr)
	core := zapcore.NewCore(zapcore.NewJSONEncoder(corelog.ProductionEncoderConfig()), zapcore.Lock(os.Stderr), zapcore.InfoLevel)
	return corelog.New(core).With(corelog.String("process", "peapod-shim-runc"), corelog.Int(corelog.KeyPID, os.Getpid()))
}

// firstStage serves a pod as its monitor's first stage: the helper requests run in this
// process (do), until the monitor re-executes into the lean peapod-shim.
func firstStage(args []string) int {
	log := sync.OnceValue(stderrLogger) // made once serve has made stderr the shim's log
	return serve.Serve(args, &serve.FirstStage{
		Seccomp: seccomp.Enabled,
		Do: func(ctx context.Context, root string, req wire.HelperRequest, files []*os.File) (wire.HelperReply, error) {
			return do(ctx, root, log(), req, files)
		},
	})
}

// do runs req with libct; files are the new process's stdio as req names them.
func do(ctx context.Context, root string, log *corelog.Logger, req wire.HelperRequest, files []*os.File) (wire.HelperReply, error) {
	var reply wire.HelperReply
	rt, err := libct.New(libct.Options{Root: root, Logger: log})
	if err != nil {
		return reply, err
	}
	var stdio libct.Stdio
	for _, s := range []struct {
		want bool
		f    **os.File
	}{{req.Stdin, &stdio.Stdin}, {req.Stdout, &stdio.Stdout}, {req.Stderr, &stdio.Stderr}, {req.Console, &stdio.ConsoleSocket}} {
		if !s.want {
			continue
		}
		if len(files) == 0 {
			return reply, fmt.Errorf("helper %s: fewer fds than streams: %w", req.Op, wire.ErrProtocol)
		}
		*s.f, files = files[0], files[1:]
	}
	var spec *specs.Spec
	if req.Op == wire.HelperCreate || req.Op == wire.HelperExec {
		if spec, err = decodeSpec(req); err != nil {
			return reply, err
		}
	}
	switch req.Op {
	case wire.HelperCreate:
		root := specs.Root{Path: req.Rootfs}
		if spec.Root != nil {
			root.Readonly = spec.Root.Readonly
		}
		spec.Root = &root
		spec.Process.Terminal = req.Terminal
		c, err := rt.Create(ctx, req.ID, spec, stdio)
		if err != nil {
			return reply, err
		}
		reply.Pid, reply.SharedPid = c.Pid(), c.SharedPid()
		if reply.CgroupPaths, err = c.CgroupPaths(); err != nil {
			log.Warn("container cgroup paths", corelog.ContainerID(req.ID), corelog.Error(err))
		}
		return reply, nil
	case wire.HelperRemove:
		return reply, rt.Remove(ctx, req.ID)
	}
	c, err := rt.Load(req.ID)
	if err != nil {
		if req.Op == wire.HelperDestroy && errors.Is(err, errdefs.ErrNotFound) {
			return reply, nil
		}
		return reply, err
	}
	switch req.Op {
	case wire.HelperExec:
		if req.Exec == nil {
			return reply, fmt.Errorf("exec in %s: no process: %w", req.ID, errdefs.ErrInvalidArgument)
		}
		reply.Pid, err = c.Exec(ctx, req.Exec.Process(*spec.Process), stdio)
	case wire.HelperSignal:
		err = c.Signal(ctx, syscall.Signal(req.Signal), req.All)
	case wire.HelperKillAll:
		// For a container sharing a PID namespace, libcontainer's SIGKILL goes to every
		// process of its cgroup.
		if err = c.Signal(ctx, syscall.SIGKILL, false); errors.Is(err, errdefs.ErrFailedPrecondition) {
			err = nil
		}
	case wire.HelperDestroy:
		err = c.Destroy(ctx)
	case wire.HelperCheckpoint:
		err = c.Checkpoint(ctx, req.ImagesDir, req.WorkDir, req.LeaveRunning)
	default:
		err = fmt.Errorf("helper: unknown op %q: %w", req.Op, errdefs.ErrInvalidArgument)
	}
	return reply, err
}

// warm builds encoding/json's field caches of the OCI spec and of libcontainer's state (what
// a create or an exec decodes) while the helper waits for its request: a helper started ahead
// of use then spends that time off the request's path. A helper started for a request that
// is already waiting does not warm: that put the whole spec's caches (about 130 page faults)
// on the path of every teardown's destroy.
func warm() {
	_, _ = json.Marshal(&specs.Spec{})
	_, _ = json.Marshal(&libcontainer.State{})
}

// decodeSpec decodes the container's spec the shim passed on as the daemon sent it.
func decodeSpec(req wire.HelperRequest) (*specs.Spec, error) {
	spec := new(specs.Spec)
	if err := json.Unmarshal(req.Spec, spec); err != nil {
		return nil, fmt.Errorf("container %s: decode spec: %v: %w", req.ID, err, errdefs.ErrInvalidArgument)
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, fmt.Errorf("container %s: spec has no process args: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	return spec, nil
}
