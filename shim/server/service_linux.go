package server

import (
	"context"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/api"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// service adapts the Server to the generated ttrpc interface.
type service struct{ s *Server }

var _ api.ShimService = (*service)(nil)

func (v *service) Info(ctx context.Context, _ *api.InfoRequest) (*api.InfoResponse, error) {
	i := v.s.info(ctx)
	return &api.InfoResponse{
		Pid:          uint32(i.Pid),
		PodId:        i.PodID,
		PidNamespace: i.PidNamespace,
		PidHolderPid: uint32(i.PidHolderPid),
		Seccomp:      i.Seccomp,
		Version:      i.Version,
		Goroutines:   uint32(i.Goroutines),
	}, nil
}

func (v *service) Create(ctx context.Context, r *api.CreateRequest) (*api.CreateResponse, error) {
	pid, err := v.s.create(ctx, createRequest{
		CreateOptions: shim.CreateOptions{
			ID:        r.GetId(),
			Rootfs:    r.GetRootfs(),
			Stdin:     r.GetStdin(),
			StdinOnce: r.GetStdinOnce(),
			Tty:       r.GetTty(),
			LogPath:   r.GetLogPath(),
			LogRoot:   r.GetLogRoot(),
		},
		specJSON: r.GetSpec(),
	})
	if err != nil {
		return nil, err
	}
	return &api.CreateResponse{Pid: uint32(pid)}, nil
}

func (v *service) Start(ctx context.Context, r *api.StartRequest) (*api.StartResponse, error) {
	pid, err := v.s.start(ctx, r.GetId())
	if err != nil {
		return nil, err
	}
	return &api.StartResponse{Pid: uint32(pid)}, nil
}

func (v *service) Signal(ctx context.Context, r *api.SignalRequest) (*api.SignalResponse, error) {
	if err := v.s.signal(ctx, r.GetId(), syscall.Signal(r.GetSignal()), r.GetAll()); err != nil {
		return nil, err
	}
	return &api.SignalResponse{}, nil
}

func (v *service) State(_ context.Context, r *api.StateRequest) (*api.ContainerState, error) {
	c, err := v.s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	return c.state().ToAPI(), nil
}

func (v *service) List(context.Context, *api.ListRequest) (*api.ListResponse, error) {
	var resp api.ListResponse
	for _, st := range v.s.list() {
		resp.Containers = append(resp.Containers, st.ToAPI())
	}
	return &resp, nil
}

func (v *service) Wait(ctx context.Context, r *api.WaitRequest) (*api.ContainerState, error) {
	st, err := v.s.wait(ctx, r.GetId())
	if err != nil {
		return nil, err
	}
	return st.ToAPI(), nil
}

func (v *service) Delete(ctx context.Context, r *api.DeleteRequest) (*api.DeleteResponse, error) {
	if err := v.s.delete(ctx, r.GetId()); err != nil {
		return nil, err
	}
	return &api.DeleteResponse{}, nil
}

func (v *service) ExecSync(ctx context.Context, r *api.ExecSyncRequest, stream api.Shim_ExecSyncServer) error {
	if !v.s.enter(true) {
		return wire.ToStatus(errReexecuting)
	}
	defer v.s.leave()
	o := shim.ExecSyncOptions{
		Args:    r.GetArgs(),
		Env:     r.GetEnv(),
		Cwd:     r.GetCwd(),
		Timeout: time.Duration(r.GetTimeoutNs()),
	}
	if u := r.GetUser(); u != nil {
		o.User = &specs.User{UID: u.GetUid(), GID: u.GetGid(), AdditionalGids: u.GetAdditionalGids()}
	}
	err := v.s.execSync(ctx, r.GetId(), o, func(c execChunk) error {
		return stream.Send(&api.ExecSyncChunk{
			Stdout:   c.stdout,
			Stderr:   c.stderr,
			Exited:   c.exited,
			ExitCode: int32(c.exitCode),
			TimedOut: c.timedOut,
		})
	})
	// Streams bypass the unary interceptor: note the activity and map the error class here.
	v.s.touch()
	return wire.ToStatus(err)
}

func (v *service) ReopenLog(_ context.Context, r *api.ReopenLogRequest) (*api.ReopenLogResponse, error) {
	if err := v.s.reopenLog(r.GetId()); err != nil {
		return nil, err
	}
	return &api.ReopenLogResponse{}, nil
}

// Prepare starts a libcontainer helper for the Create the daemon says is coming, unless one
// waits already: its start then overlaps the daemon's own preparation of the container.
func (v *service) Prepare(context.Context, *api.PrepareRequest) (*api.PrepareResponse, error) {
	if v.s.helper != nil {
		v.s.helper.Warm()
	}
	return &api.PrepareResponse{}, nil
}

func (v *service) Shutdown(context.Context, *api.ShutdownRequest) (*api.ShutdownResponse, error) {
	if err := v.s.requestShutdown(); err != nil {
		return nil, err
	}
	return &api.ShutdownResponse{}, nil
}
