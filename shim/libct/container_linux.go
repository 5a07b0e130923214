package libct

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
)

// Container is one libcontainer container.
type Container struct {
	c         *libcontainer.Container
	root      string // the Runtime's root, for the checkpoint helper
	id        string
	pid       int
	sharedPid bool
	log       *corelog.Logger
}

// Pid is the init's pid.
func (c *Container) Pid() int { return c.pid }

// Start lets the created init exec the user's process (runc start).
func (c *Container) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.c.Exec(); err != nil {
		return fmt.Errorf("start container %s: %w", c.id, err)
	}
	return nil
}

// Signal sends sig to the init, or to every process of the container when all is set.
func (c *Container) Signal(_ context.Context, sig syscall.Signal, all bool) error {
	if !all || sig == unix.SIGKILL {
		// SIGKILL to the init of a private PID namespace kills the namespace; for a shared
		// one libcontainer kills every process of the cgroup.
		if err := c.c.Signal(sig); err != nil {
			return signalError(c.id, err)
		}
		return nil
	}
	pids, err := c.c.Processes()
	if err != nil {
		return signalError(c.id, err)
	}
	if len(pids) == 0 {
		return signalError(c.id, libcontainer.ErrNotRunning)
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal process %d of container %s: %w", pid, c.id, err)
		}
	}
	return nil
}

// Exec starts p in the running container and returns its pid. The process runs in the
// container's namespaces and cgroup with p's settings; it leads its own session.
func (c *Container) Exec(ctx context.Context, p *specs.Process, stdio Stdio) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	lp, err := newProcess(p, stdio)
	if err != nil {
		return 0, err
	}
	if err := c.c.Run(lp); err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", c.id, err)
	}
	pid, err := lp.Pid()
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", c.id, err)
	}
	return pid, nil
}

// Stopped runs once the init has been reaped: it reads the cgroup's OOM kill count before the
// cgroup goes away, and kills what is left of a container that shares a PID namespace
// (a private namespace dies with its init).
func (c *Container) Stopped(context.Context) (bool, error) {
	oom, err := c.oomKilled()
	if c.sharedPid {
		if kerr := c.c.Signal(unix.SIGKILL); kerr != nil && !errors.Is(kerr, libcontainer.ErrNotRunning) && !errors.Is(kerr, libcontainer.ErrCgroupNotExist) {
			c.log.Warn("kill remaining processes", corelog.ContainerID(c.id), corelog.Error(kerr))
		}
	}
	return oom, err
}

// oomKilled reads the oom_kill counter of the container's memory cgroup: memory.oom_control
// on cgroup v1, memory.events on v2. A fresh cgroup starts at 0, so any kill counts; an
// exit code of 137 alone proves nothing.
func (c *Container) oomKilled() (bool, error) {
	st, err := c.c.State()
	if err != nil {
		return false, fmt.Errorf("container %s state: %w", c.id, err)
	}
	var candidates []string
	if p := st.CgroupPaths["memory"]; p != "" {
		candidates = append(candidates, filepath.Join(p, "memory.oom_control"))
	}
	if p := st.CgroupPaths[""]; p != "" {
		candidates = append(candidates, filepath.Join(p, "memory.events"))
	}
	for _, f := range candidates {
		n, err := readCounter(f, "oom_kill")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		return n > 0, nil
	}
	return false, nil
}

func readCounter(path, key string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return 0, fs.ErrNotExist
}

// Destroy removes the stopped container's cgroup and libcontainer state.
func (c *Container) Destroy(context.Context) error {
	if err := c.c.Destroy(); err != nil {
		return fmt.Errorf("destroy container %s: %w", c.id, err)
	}
	return nil
}

// SharedPid says the container joined a PID namespace it does not own (its init's exit does
// not end its other processes).
func (c *Container) SharedPid() bool { return c.sharedPid }

// CgroupPaths are the container's cgroup directories by controller ("" is the unified one).
func (c *Container) CgroupPaths() (map[string]string, error) {
	st, err := c.c.State()
	if err != nil {
		return nil, fmt.Errorf("container %s state: %w", c.id, err)
	}
	return st.CgroupPaths, nil
}
