package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container/spec"
	"github.com/peapod-runtime/peapod/images"
	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/volumes"
)

// specInput completes the request's spec input with what the pod, the image and the node
// decide.
func (m *Manager) specInput(ctx context.Context, pod sandbox.Sandbox, c Container, img *images.Image, rootfs, podPidNS string) (spec.Input, error) {
	in := c.Config.Spec
	in.ID = c.ID
	in.RootfsPath = rootfs
	in.TTY = c.Config.TTY
	in.Mounts = c.Config.Mounts
	in.Annotations = c.Config.Annotations
	in.Image = spec.Image{
		Entrypoint: img.Config.Entrypoint,
		Cmd:        img.Config.Cmd,
		Env:        img.Config.Env,
		WorkingDir: img.Config.WorkingDir,
		User:       img.Config.User,
	}
	for v := range img.Config.Volumes {
		in.Image.Volumes = append(in.Image.Volumes, v)
	}
	in.ImageVolumesDir = filepath.Join(c.Dir, "volumes")
	in.PodFiles = volumes.PodFilePaths{Hostname: pod.HostnamePath, ResolvConf: pod.ResolvPath, Hosts: pod.HostsPath, Shm: pod.ShmPath}
	if pod.Config.Namespaces.Network != sandbox.ModeNode {
		in.Hostname = pod.Config.Hostname
	}

	ns := pod.Config.Namespaces
	in.Namespaces.Network = podNamespace(ns.Network, pod.NetNSPath)
	in.Namespaces.UTS = podNamespace(ns.Network, pod.UTSPath)
	in.Namespaces.IPC = podNamespace(ns.IPC, pod.IPCPath)
	if u := pod.Config.UserNamespace; u != nil && pod.UserNSPath != "" {
		uid, gid := u.RootIDs()
		in.Namespaces.User = spec.UserNamespace{Path: pod.UserNSPath, RootUID: uid, RootGID: gid}
	}
	switch in.Namespaces.PID.Mode {
	case spec.ModePod:
		// The pod's choice decides: its own PID namespace (held by the shim), the node's, or
		// one per container.
		switch ns.PID {
		case sandbox.ModePod:
			if podPidNS == "" {
				return spec.Input{}, fmt.Errorf("pod %s has no PID namespace holder: %w", pod.ID, errdefs.ErrFailedPrecondition)
			}
			in.Namespaces.PID = spec.Namespace{Mode: spec.ModePod, Path: podPidNS}
		case sandbox.ModeNode:
			in.Namespaces.PID = spec.Namespace{Mode: spec.ModeNode}
		default:
			in.Namespaces.PID = spec.Namespace{Mode: spec.ModeContainer}
		}
	case spec.ModeTarget:
		target, err := m.Get(in.Namespaces.PID.Path)
		if err != nil {
			return spec.Input{}, fmt.Errorf("pid namespace target: %w", err)
		}
		if target.PodID != pod.ID || target.State != StateRunning || target.Pid == 0 {
			return spec.Input{}, fmt.Errorf("pid namespace target %s is not a running container of this pod: %w", target.ID, errdefs.ErrFailedPrecondition)
		}
		in.Namespaces.PID.Path = fmt.Sprintf("/proc/%d/ns/pid", target.Pid)
	}

	if !pod.Config.Privileged && in.Security.Privileged {
		return spec.Input{}, fmt.Errorf("a privileged container needs a privileged pod sandbox: %w", errdefs.ErrInvalidArgument)
	}
	var res cgroups.Resources
	if c.Config.Resources != nil {
		res = *c.Config.Resources
	}
	// The node's pids limit applies to every container, whatever it asks for.
	res.PidsLimit = m.opts.PidsLimit
	res, err := m.opts.Cgroups.CheckResources(log.With(ctx, log.ContainerID(c.ID), log.PodSandboxID(c.PodID)), res)
	if err != nil {
		return spec.Input{}, err
	}
	in.Resources = res.ToSpec(m.opts.Cgroups.IsV2())
	if c.Config.Resources != nil {
		adj := int(c.Config.Resources.OomScoreAdj)
		in.OOMScoreAdj = &adj
	}
	cgPath, err := cgroups.ContainerCgroupsPath(m.opts.Cgroups.Driver(), pod.CgroupParent, c.ID)
	if err != nil {
		return spec.Input{}, err
	}
	in.CgroupsPath = cgPath
	in.Host = m.opts.Host
	return in, nil
}

func podNamespace(mode sandbox.NamespaceMode, path string) spec.Namespace {
	if mode == sandbox.ModeNode || path == "" {
		return spec.Namespace{Mode: spec.ModeNode}
	}
	return spec.Namespace{Mode: spec.ModePod, Path: path}
}

func shimCreateOptions(c Container, s *specs.Spec, rootfs string) shim.CreateOptions {
	return shim.CreateOptions{
		ID: c.ID, Spec: s, Rootfs: rootfs,
		Stdin: c.Config.Stdin, StdinOnce: c.Config.StdinOnce, Tty: c.Config.TTY,
		LogPath: c.LogPath, LogRoot: c.LogDirectory,
	}
}

// stopSignal picks the request's stop signal, else the image's, else SIGTERM.
func stopSignal(requested, image string) string {
	for _, s := range []string{requested, image} {
		if s != "" && signalNumber(s) != 0 {
			return s
		}
	}
	return "SIGTERM"
}

// signalNumber parses "SIGTERM", "TERM", "15", the CRI's "SIGRTMINPLUS3"/"SIGRTMAXMINUS2",
// the image's "SIGRTMIN+3"/"SIGRTMAX-2" and the aliases SIGCLD, SIGPOLL and SIGIOT; 0 when
// unknown.
func signalNumber(name string) syscall.Signal {
	name = strings.ToUpper(strings.TrimSpace(name))
	if n, err := strconv.Atoi(name); err == nil {
		if n > 0 && n < 65 {
			return syscall.Signal(n)
		}
		return 0
	}
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	const rtmin, rtmax = 34, 64 // glibc's SIGRTMIN and SIGRTMAX, what runc uses
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{
		{"SIGRTMINPLUS", rtmin, 1}, {"SIGRTMIN+", rtmin, 1}, {"SIGRTMAXMINUS", rtmax, -1}, {"SIGRTMAX-", rtmax, -1},
	} {
		if v, ok := strings.CutPrefix(name, rt.prefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > rtmax-rtmin {
				return 0
			}
			return syscall.Signal(rt.base + rt.sign*n)
		}
	}
	switch name {
	case "SIGRTMIN":
		return rtmin
	case "SIGRTMAX":
		return rtmax
	case "SIGCLD":
		return syscall.SIGCHLD
	case "SIGPOLL":
		return syscall.SIGIO
	case "SIGIOT":
		return syscall.SIGABRT
	}
	return unix.SignalNum(name)
}

// specFile holds a container's OCI spec beside its rootfs, for verbose status only: the
// shim keeps the spec it runs, and memory is not spent on a copy per container.
const specFile = "config.json"

func writeSpec(dir string, s *specs.Spec) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, specFile), b, 0o600); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	return nil
}

// readSpec reads back the spec writeSpec wrote.
func readSpec(dir string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, specFile))
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	s := new(specs.Spec)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	return s, nil
}

// Spec returns the OCI spec the container was created with, as JSON.
func (m *Manager) Spec(id string) (json.RawMessage, error) {
	c, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(c.Dir, specFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s has no spec on disk: %w", c.ID, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("read container %s spec: %w", c.ID, err)
	}
	return b, nil
}
