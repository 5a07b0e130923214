package netns

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// NewPinnedInUserNamespace is NewPinned for a pod with a user namespace of its own: it creates
// a user namespace with the mapping m and, inside it (owned by it), fresh namespaces of the
// given kinds, and pins all of them under dir (dir/user among them). The pod's root then
// holds capabilities over its own network, IPC and UTS namespaces and over nothing of the
// node's. Hostname and lo are set as NewPinned does.
//
// A process of ours cannot unshare a user namespace (it has threads), so a child is cloned
// into the new namespaces, held stopped by ptrace at its exec before it runs a single
// instruction of its own, long enough to pin its namespaces, then killed. On failure
// everything pinned is undone.
func NewPinnedInUserNamespace(ctx context.Context, dir, hostname string, m IDMapping, kinds ...Kind) (_ map[Kind]string, retErr error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	flags, err := cloneFlags(dir, hostname, kinds)
	if err != nil {
		return nil, err
	}
	flags |= unix.CLONE_NEWUSER
	all := append([]Kind{User}, kinds...)
	paths, undo, err := pinFiles(dir, all)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			undo()
		}
	}()
	onLockedThread(func() bool {
		// ptrace ties the stopped child to this thread: it stays locked until the child is
		// reaped.
		err = pinFromStoppedChild(flags, m, all, paths)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("pin namespaces under %s: %w", dir, err)
	}
	if hostname != "" {
		if err := Do(paths[UTS], func() error { return unix.Sethostname([]byte(hostname)) }); err != nil {
			return nil, fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	if flags&unix.CLONE_NEWNET != 0 {
		if err := Do(paths[Net], loopbackUp); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// pinFromStoppedChild clones a child into new namespaces (flags) with m written as its maps,
// stopped by PTRACE_TRACEME at its exec, bind-mounts each of its namespaces onto paths, and
// kills and reaps it. setgroups stays allowed in the namespace: containers set their
// supplementary groups there.
func pinFromStoppedChild(flags int, m IDMapping, kinds []Kind, paths map[Kind]string) error {
	toSys := func(in []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		out := make([]syscall.SysProcIDMap, 0, len(in))
		for _, r := range in {
			out = append(out, syscall.SysProcIDMap{ContainerID: int(r.ContainerID), HostID: int(r.HostID), Size: int(r.Size)})
		}
		return out
	}
	// The child never runs: it is stopped at the exec and killed. Should it ever be let go,
	// --version makes the daemon (or a test binary, with an unknown flag) exit at once.
	cmd := exec.Command("/proc/self/exe", "--version")
	cmd.Args[0] = "peapod-userns"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 uintptr(flags),
		UidMappings:                toSys(m.UIDs),
		GidMappings:                toSys(m.GIDs),
		GidMappingsEnableSetgroups: true,
		Ptrace:                     true,
		Pdeathsig:                  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start a child in new namespaces: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	pid := strconv.Itoa(cmd.Process.Pid)
	for _, k := range kinds {
		src := "/proc/" + pid + "/ns/" + string(k)
		if err := unix.Mount(src, paths[k], "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", src, paths[k], err)
		}
	}
	return nil
}
