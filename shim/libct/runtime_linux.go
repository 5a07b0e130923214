package libct

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
)

// Options configure a Runtime.
type Options struct {
	// Root is libcontainer's state directory, e.g. <pod state dir>/libct.
	Root string
	// ClampOOMScoreAdj raises an oom_score_adj below the shim's own to the shim's own.
	// Without CAP_SYS_RESOURCE the kernel refuses a lower value and libcontainer fails with
	// "can't get final child's PID from pipe: EOF". nil means: clamp when the capability
	// is missing.
	ClampOOMScoreAdj *bool
	Logger           *corelog.Logger
}

// Runtime creates containers under one libcontainer root.
type Runtime struct {
	root   string
	clamp  bool
	ownOOM int
	log    *corelog.Logger
	// cgroupV1 are the host's v1 hierarchies under /sys/fs/cgroup, found once (nil: leave
	// the cgroup mount to libcontainer); see expandCgroupV1Mount.
	cgroupV1 []string
}

// Stdio are a process's fds 0, 1 and 2 (nil means /dev/null), or for a terminal the socket
// over which its init sends the pty master.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
	ConsoleSocket         *os.File
}

// New returns a Runtime whose state lives under o.Root.
func New(o Options) (*Runtime, error) {
	if o.Root == "" {
		return nil, fmt.Errorf("libct: no root: %w", errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(o.Root, 0o700); err != nil {
		return nil, fmt.Errorf("libct root: %w", err)
	}
	l := o.Logger
	if l == nil {
		l = corelog.Nop()
	}
	own, err := ownOOMScoreAdj()
	if err != nil {
		return nil, err
	}
	clamp := !hasCapSysResource()
	if o.ClampOOMScoreAdj != nil {
		clamp = *o.ClampOOMScoreAdj
	}
	return &Runtime{root: o.Root, clamp: clamp, ownOOM: own, log: l, cgroupV1: findV1Hierarchies(cgroupV1Root)}, nil
}

// Create creates container id from spec and starts its init, which waits for Start before it
// execs the user's process. spec.Root.Path must be the mounted rootfs.
func (r *Runtime) Create(ctx context.Context, id string, spec *specs.Spec, stdio Stdio) (*Container, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if spec == nil || spec.Process == nil || spec.Root == nil || spec.Linux == nil {
		return nil, fmt.Errorf("container %s: spec needs process, root and linux: %w", id, errdefs.ErrInvalidArgument)
	}
	s := *spec
	proc := *spec.Process
	s.Process = &proc
	if r.clamp && proc.OOMScoreAdj != nil && *proc.OOMScoreAdj < r.ownOOM {
		r.log.Debug("clamp oom_score_adj", corelog.ContainerID(id), corelog.Int("requested", *proc.OOMScoreAdj), corelog.Int("clamped", r.ownOOM))
		v := r.ownOOM
		proc.OOMScoreAdj = &v
	}
	config, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:       id,
		UseSystemdCgroup: isSystemdCgroupsPath(s.Linux.CgroupsPath),
		Spec:             &s,
	})
	if err != nil {
		return nil, fmt.Errorf("container %s: convert spec: %v: %w", id, err, errdefs.ErrInvalidArgument)
	}
	expandCgroupV1Mount(config, r.cgroupV1)
	p, err := newProcess(&proc, stdio)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	p.Init = true
	c, err := libcontainer.Create(r.root, id, config)
	if err != nil {
		if errors.Is(err, libcontainer.ErrExist) {
			return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	if err := c.Start(p); err != nil {
		if derr := c.Destroy(); derr != nil {
			r.log.Warn("destroy container after failed start", corelog.ContainerID(id), corelog.Error(derr))
		}
		return nil, fmt.Errorf("start init of container %s: %w", id, err)
	}
	pid, err := p.Pid()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	return &Container{
		c:         c,
		root:      r.root,
		id:        id,
		pid:       pid,
		sharedPid: !config.Namespaces.IsPrivate(configs.NEWPID),
		log:       r.log,
	}, nil
}

// Remove kills and destroys what an earlier shim left of container id. Nothing left is fine.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	c, err := libcontainer.Load(r.root, id)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	_ = c.Signal(unix.SIGKILL)
	// Not our child any more: poll until it is gone.
	for {
		st, err := c.Status()
		if err != nil || st == libcontainer.Stopped {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove container %s: %w", id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := c.Destroy(); err != nil {
		return fmt.Errorf("destroy container %s: %w", id, err)
	}
	return nil
}

// Load returns container id as libcontainer recorded it under the root: for a process other
// than the one that created it. An unknown container gives errdefs.ErrNotFound.
func (r *Runtime) Load(id string) (*Container, error) {
	c, err := libcontainer.Load(r.root, id)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", id, err)
	}
	st, err := c.State()
	if err != nil {
		return nil, fmt.Errorf("container %s state: %w", id, err)
	}
	return &Container{
		c:         c,
		root:      r.root,
		id:        id,
		pid:       st.InitProcessPid,
		sharedPid: !c.Config().Namespaces.IsPrivate(configs.NEWPID),
		log:       r.log,
	}, nil
}

// isSystemdCgroupsPath tells a systemd "slice:prefix:name" cgroups path from a cgroupfs one.
func isSystemdCgroupsPath(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && strings.Count(p, ":") == 2
}

func ownOOMScoreAdj() (int, error) {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, fmt.Errorf("read own oom_score_adj: %w", err)
	}
	var v int
	if _, err := fmt.Sscan(string(b), &v); err != nil {
		return 0, fmt.Errorf("parse own oom_score_adj %q: %w", b, err)
	}
	return v, nil
}

func hasCapSysResource() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_RESOURCE) != 0
}

// signalError classifies libcontainer's "not running" errors.
func signalError(id string, err error) error {
	if errors.Is(err, libcontainer.ErrNotRunning) || errors.Is(err, libcontainer.ErrCgroupNotExist) || errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("container %s is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	return fmt.Errorf("signal container %s: %w", id, err)
}
