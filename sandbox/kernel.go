package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/internal/topdir"
	"github.com/peapod-runtime/peapod/netns"
	"github.com/peapod-runtime/peapod/netns/cni"
	"github.com/peapod-runtime/peapod/store"
	"github.com/peapod-runtime/peapod/volumes"
)

// Options are a Manager's dependencies.
type Options struct {
	DB     *store.DB
	Logger *zap.Logger
	// StateDir is the daemon's volatile state (/run/peapod): pods' files and namespace pins
	// live below it.
	StateDir string
	// Network connects pods to the pod network. Nil means pods can only use the node's.
	Network *cni.Network
	Cgroups *cgroups.Manager
	// UserNamespaces says the node can run pods in user namespaces of their own (see
	// container.ProbeUserNamespaces); without it such a pod is FailedPrecondition.
	UserNamespaces bool
}

// kernel does the pod work the kernel sees: namespaces, files, cgroup, network.
type kernel struct {
	podsDir string
	nsDir   string
	network *cni.Network
	cgroups *cgroups.Manager
	userns  bool
}

func newKernel(opts Options) (*kernel, error) {
	if opts.DB == nil || opts.Cgroups == nil || opts.StateDir == "" {
		return nil, fmt.Errorf("sandbox manager needs a store, a cgroup manager and a state dir: %w", errdefs.ErrInvalidArgument)
	}
	k := &kernel{
		podsDir: filepath.Join(opts.StateDir, podsDirName),
		nsDir:   filepath.Join(opts.StateDir, "ns"),
		network: opts.Network,
		cgroups: opts.Cgroups,
		userns:  opts.UserNamespaces,
	}
	for _, d := range []string{k.podsDir, k.nsDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
		// One directory per pod in each: spread them over the filesystem's block groups.
		if err := topdir.Mark(d); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// podsDirName is the directory of the state dir that holds one directory per pod.
const podsDirName = "pods"

// PodDir is the directory of pod id's volatile files, its shim's sockets among them, under
// the daemon's state dir stateDir.
func PodDir(stateDir, id string) string { return filepath.Join(stateDir, podsDirName, id) }

func hostNetwork(c Config) bool { return c.Namespaces.Network == ModeNode }
func hostIPC(c Config) bool     { return c.Namespaces.IPC == ModeNode }

// validate refuses what can never work, before anything is created.
func (k *kernel) validate(c Config) error {
	for name := range c.Sysctls {
		if err := netns.ValidateSysctl(name, hostNetwork(c), hostIPC(c)); err != nil {
			return fmt.Errorf("sysctl %q: %w", name, err)
		}
	}
	if c.Namespaces.Network == ModeContainer || c.Namespaces.IPC == ModeContainer {
		return fmt.Errorf("a pod's network and ipc namespaces are per pod or the node's, not per container: %w", errdefs.ErrInvalidArgument)
	}
	if u := c.UserNamespace; u != nil {
		if err := u.Validate(); err != nil {
			return err
		}
		if hostNetwork(c) || hostIPC(c) || c.Namespaces.PID == ModeNode {
			return fmt.Errorf("a pod in a user namespace of its own cannot use the node's network, IPC or PID namespace: %w", errdefs.ErrInvalidArgument)
		}
		if !k.userns {
			return fmt.Errorf("user namespaces are not available on this node (they need Linux 6.13+ and a root directory others may search; the daemon's log at start says what its probe found): %w", errdefs.ErrFailedPrecondition)
		}
	}
	if !hostNetwork(c) && k.network == nil {
		return fmt.Errorf("pod networking is not available on this node (only hostNetwork pods can run): %w", errdefs.ErrFailedPrecondition)
	}
	if c.Hostname != "" && len(c.Hostname) > 64 {
		return fmt.Errorf("hostname %q is longer than 64 bytes: %w", c.Hostname, errdefs.ErrInvalidArgument)
	}
	for _, r := range []*cgroups.Resources{c.Resources, c.Overhead} {
		if r != nil {
			if err := r.Validate(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *kernel) networkOptions(c Config) cni.SetupOptions {
	o := cni.SetupOptions{PodName: c.Metadata.Name, PodNamespace: c.Metadata.Namespace, PodUID: c.Metadata.UID}
	for _, pm := range c.PortMappings {
		o.PortMappings = append(o.PortMappings, cni.PortMapping{
			HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: pm.Protocol, HostIP: pm.HostIP,
		})
	}
	if c.DNS != nil {
		o.DNS = &cni.DNS{Servers: c.DNS.Servers, Searches: c.DNS.Searches, Options: c.DNS.Options}
	}
	return o
}

// setup makes the pod real. On failure it undoes everything it did.
func (k *kernel) setup(ctx context.Context, sb *Sandbox) (retErr error) {
	c := sb.Config
	sb.Dir = filepath.Join(k.podsDir, sb.ID) // PodDir
	defer func() {
		if retErr != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			k.undo(cctx, sb)
		}
	}()
	if err := os.MkdirAll(sb.Dir, 0o711); err != nil {
		return fmt.Errorf("create pod dir: %w", err)
	}
	// What a daemon killed before the pod's record is stored needs to undo this setup: the
	// next daemon finds the journal in a pod dir with no record (recoverUnfinished).
	if err := writeSetupJournal(sb); err != nil {
		return err
	}

	// Namespaces: a hostNetwork pod also keeps the node's UTS namespace (its hostname), as
	// Kubernetes does.
	var kinds []netns.Kind
	hostname := ""
	if !hostNetwork(c) {
		kinds = append(kinds, netns.Net, netns.UTS)
		hostname = c.Hostname
	}
	if !hostIPC(c) {
		kinds = append(kinds, netns.IPC)
	}
	if len(kinds) > 0 {
		var pins map[netns.Kind]string
		var err error
		if c.UserNamespace != nil {
			pins, err = netns.NewPinnedInUserNamespace(ctx, filepath.Join(k.nsDir, sb.ID), hostname, *c.UserNamespace, kinds...)
		} else {
			pins, err = netns.NewPinned(ctx, filepath.Join(k.nsDir, sb.ID), hostname, kinds...)
		}
		if err != nil {
			return fmt.Errorf("create pod namespaces: %w", err)
		}
		sb.NetNSPath, sb.IPCPath, sb.UTSPath, sb.UserNSPath = pins[netns.Net], pins[netns.IPC], pins[netns.UTS], pins[netns.User]
		if len(c.Sysctls) > 0 {
			if err := netns.SetSysctls(ctx, pins, c.Sysctls); err != nil {
				return fmt.Errorf("apply sysctls: %w", err)
			}
		}
	}

	if hostIPC(c) {
		sb.ShmPath = "/dev/shm"
	} else {
		sb.ShmPath = filepath.Join(sb.Dir, "shm")
		if err := volumes.MountPodShm(sb.ShmPath, 0); err != nil {
			return fmt.Errorf("mount pod /dev/shm: %w", err)
		}
	}

	// The pod cgroup, in its QoS tier unless the kubelet chose the place.
	class := cgroups.PodQoSClass(c.Resources, nil)
	parent, err := k.cgroups.PodCgroupParent(c.CgroupParent, c.Metadata.UID, class)
	if err != nil {
		return fmt.Errorf("pod cgroup path: %w", err)
	}
	var res cgroups.Resources
	if c.Resources != nil {
		if res, err = k.cgroups.CheckResources(ctx, *c.Resources); err != nil {
			return err
		}
	}
	if err := k.cgroups.CreatePod(ctx, parent, class, res.ToSpec(k.cgroups.IsV2())); err != nil {
		return fmt.Errorf("create pod cgroup %s: %w", parent, err)
	}
	sb.CgroupParent, sb.QoS = parent, class.String()

	if !hostNetwork(c) {
		start := time.Now()
		result, err := k.network.Setup(ctx, sb.ID, sb.NetNSPath, k.networkOptions(c))
		if err != nil {
			return fmt.Errorf("set up pod network: %w", err)
		}
		sb.IPs = parseIPs(result.IPs)
		sb.HostInterface = result.HostInterface
		log.From(ctx).Debug("pod network up", zap.Strings("ips", sb.IPs), zap.Duration(log.KeyDuration, time.Since(start)))
	}

	files := volumes.PodFiles{Dir: sb.Dir, Hostname: c.Hostname, IPs: sb.IPs, HostNetwork: hostNetwork(c)}
	if files.Hostname == "" {
		// No hostname asked: the pod keeps the node's, inherited by its UTS namespace.
		if h, err := os.Hostname(); err == nil {
			files.Hostname = h
		}
	}
	if c.DNS != nil {
		files.DNS = &volumes.DNSConfig{Servers: c.DNS.Servers, Searches: c.DNS.Searches, Options: c.DNS.Options}
	}
	paths, err := volumes.WritePodFiles(files)
	if err != nil {
		return fmt.Errorf("write pod files: %w", err)
	}
	sb.HostnamePath, sb.ResolvPath, sb.HostsPath = paths.Hostname, paths.ResolvConf, paths.Hosts
	return nil
}

// undo removes whatever setup made; it is stop plus remove, best effort.
func (k *kernel) undo(ctx context.Context, sb *Sandbox) {
	if err := k.stop(ctx, sb); err != nil {
		log.From(ctx).Error("undo pod network", zap.Error(err))
	}
	if err := k.remove(ctx, sb, true); err != nil {
		log.From(ctx).Error("undo pod", zap.Error(err))
	}
}

// stop disconnects the pod from the network; the namespaces stay until remove. Safe to
// repeat: NetworkDown records that CNI DEL already succeeded.
func (k *kernel) stop(ctx context.Context, sb *Sandbox) error {
	if hostNetwork(sb.Config) || sb.NetworkDown || k.network == nil {
		return nil
	}
	nsPath := sb.NetNSPath
	if ok, _ := netns.IsPinned(nsPath); !ok {
		nsPath = "" // CNI DEL still releases the IP and the host side without a netns.
	}
	if err := k.network.Teardown(ctx, sb.ID, nsPath, k.networkOptions(sb.Config)); err != nil {
		return fmt.Errorf("tear down pod network: %w", err)
	}
	sb.NetworkDown = true
	return nil
}

// remove deletes the pod's /dev/shm, cgroup and files, and its namespace pins unless pins is
// false (a network teardown still running removes them). Safe to repeat.
func (k *kernel) remove(ctx context.Context, sb *Sandbox, pins bool) error {
	var errs []error
	if sb.ShmPath != "" && sb.ShmPath != "/dev/shm" {
		if err := volumes.UnmountPodShm(sb.ShmPath); err != nil {
			errs = append(errs, fmt.Errorf("unmount pod /dev/shm: %w", err))
		}
	}
	if pins {
		if err := netns.RemoveAll(filepath.Join(k.nsDir, sb.ID)); err != nil {
			errs = append(errs, fmt.Errorf("remove pod namespaces: %w", err))
		}
	}
	if sb.CgroupParent != "" {
		if err := k.cgroups.RemovePod(ctx, sb.CgroupParent); err != nil {
			errs = append(errs, fmt.Errorf("remove pod cgroup: %w", err))
		}
	}
	if len(errs) == 0 && sb.Dir != "" {
		if err := os.RemoveAll(sb.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove pod dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// parseIPs keeps only valid addresses (defensive: CNI results are external input).
func parseIPs(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		if ip != nil {
			out = append(out, ip.String())
		}
	}
	return out
}

// setupJournal is the file in a pod's dir that holds the pod while its setup runs: removed
// once the pod's record is stored.
const setupJournal = "setup.json"

func writeSetupJournal(sb *Sandbox) error {
	raw, err := json.Marshal(sb)
	if err != nil {
		return fmt.Errorf("encode pod setup journal: %w", err)
	}
	if err := os.WriteFile(filepath.Join(sb.Dir, setupJournal), raw, 0o600); err != nil {
		return fmt.Errorf("write pod setup journal: %w", err)
	}
	return nil
}

// recoverUnfinished undoes every pod setup that a daemon kill cut off before the pod's record
// was stored: a pod dir with no record. Its journal gives the config; what setup fills in
// along the way (namespaces, /dev/shm, the cgroup) is derived again, and each undo step
// copes with what was never made.
func (k *kernel) recoverUnfinished(ctx context.Context, known func(id string) bool, l *zap.Logger) {
	entries, err := os.ReadDir(k.podsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		id := e.Name()
		if !e.IsDir() || known(id) {
			_ = os.Remove(filepath.Join(k.podsDir, id, setupJournal))
			continue
		}
		sb := Sandbox{ID: id, Dir: filepath.Join(k.podsDir, id)}
		if raw, err := os.ReadFile(filepath.Join(sb.Dir, setupJournal)); err == nil {
			if err := json.Unmarshal(raw, &sb); err != nil {
				l.Error("decode pod setup journal", log.PodSandboxID(id), zap.Error(err))
				continue
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			l.Error("read pod setup journal", log.PodSandboxID(id), zap.Error(err))
			continue
		}
		sb.ID, sb.Dir = id, filepath.Join(k.podsDir, id)
		if !hostNetwork(sb.Config) {
			sb.NetNSPath = filepath.Join(k.nsDir, id, "net")
		}
		if _, err := os.Stat(filepath.Join(sb.Dir, "shm")); err == nil {
			sb.ShmPath = filepath.Join(sb.Dir, "shm")
		}
		if sb.Config.Metadata.UID != "" {
			class := cgroups.PodQoSClass(sb.Config.Resources, nil)
			if parent, err := k.cgroups.PodCgroupParent(sb.Config.CgroupParent, sb.Config.Metadata.UID, class); err == nil {
				sb.CgroupParent = parent
			}
		}
		l.Warn("undo a pod setup cut off by a daemon stop", log.PodSandboxID(id))
		k.undo(log.With(ctx, log.PodSandboxID(id)), &sb)
	}
}
