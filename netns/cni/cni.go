package cni

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/netns"
)

// podInterface is the name of the pod's interface on the network, as the kubelet names it.
const podInterface = "eth0"

// cleanupTimeout bounds the DEL that undoes a failed ADD after the caller has given up.
const cleanupTimeout = time.Minute

// PortMapping is one hostPort of a pod.
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	// Protocol is tcp, udp or sctp (any case); empty means tcp.
	Protocol string
	// HostIP limits the mapping to one node address; empty means all.
	HostIP string
}

// Bandwidth limits a pod's traffic, in bits per second and bits (the bandwidth plugin's
// units). It reaches only plugins that declare the "bandwidth" capability.
type Bandwidth struct {
	IngressRate, IngressBurst, EgressRate, EgressBurst uint64
}

// DNS is the pod's DNS config, for plugins that declare the "dns" capability.
type DNS struct {
	Servers, Searches, Options []string
}

// SetupOptions describes the pod to the plugins: its identity as CNI_ARGS
// (K8S_POD_NAME, K8S_POD_NAMESPACE, K8S_POD_UID) and its capability arguments.
type SetupOptions struct {
	PodName, PodNamespace, PodUID string
	PortMappings                  []PortMapping
	Bandwidth                     *Bandwidth
	DNS                           *DNS
}

// Result is what Setup gives the pod.
type Result struct {
	// Network is the name of the network the pod joined.
	Network string
	// Interface is the pod's interface on it (eth0).
	Interface string
	// IPs are the pod's addresses, IPv4 before IPv6.
	IPs []net.IP
	// HostInterface is the node's end of the pod's veth on the built-in network (whose
	// counters tell whether any packet crossed it); "" on other networks.
	HostInterface string
}

// Network runs CNI plugins for pods. It re-reads ConfDir on every call, so a config that
// appears later (a network add-on starting after peapod) is picked up without a restart.
// It is safe for concurrent use by different pods.
type Network struct {
	cfg    Config
	logger *zap.Logger
	cni    *libcni.CNIConfig

	mu             sync.Mutex
	lastSource     string // the config source last logged, to log changes once
	masqueradeDone bool   // the built-in network's subnet masquerade rule is in place
}

// New returns a Network for cfg. It does not need a usable config yet: Status says when one
// is there.
func New(cfg Config, logger *zap.Logger) (*Network, error) {
	if cfg.CacheDir == "" {
		return nil, fmt.Errorf("cni: CacheDir is required: %w", errdefs.ErrInvalidArgument)
	}
	if len(cfg.BinDirs) == 0 {
		return nil, fmt.Errorf("cni: BinDirs is required: %w", errdefs.ErrInvalidArgument)
	}
	cfg = cfg.withDefaults()
	if _, _, err := net.ParseCIDR(cfg.Subnet); err != nil {
		return nil, fmt.Errorf("cni: built-in subnet %q: %w", cfg.Subnet, errdefs.ErrInvalidArgument)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	exec := newExec(&stderrLogger{logger: logger})
	return &Network{
		cfg:    cfg,
		logger: logger,
		cni:    libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, exec),
	}, nil
}

// current loads the network config to use now and logs when it changes.
func (n *Network) current() (*network, error) {
	nw, err := loadNetwork(n.cfg)
	source := ""
	if nw != nil {
		source = nw.source
	}
	n.mu.Lock()
	changed := source != n.lastSource
	n.lastSource = source
	n.mu.Unlock()
	if changed && nw != nil {
		n.logger.Info("cni network config loaded", zap.String("network", nw.list.Name), zap.String("source", source))
	}
	return nw, err
}

// Status returns nil when a network config is usable and every plugin it names (and loopback)
// is in BinDirs. Otherwise its message says what is missing, for NetworkReady.
func (n *Network) Status() error {
	nw, err := n.current()
	if err != nil {
		return err
	}
	var missing []string
	for _, plugin := range append(pluginTypes(nw.list), "loopback") {
		if _, err := invoke.FindInPath(plugin, n.cfg.BinDirs); err != nil && !slices.Contains(missing, plugin) {
			missing = append(missing, plugin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cni network %q (%s): plugin binaries %s not found in %s: %w",
			nw.list.Name, nw.source, strings.Join(missing, ", "), strings.Join(n.cfg.BinDirs, ":"), errdefs.ErrFailedPrecondition)
	}
	return nil
}

func pluginTypes(list *libcni.NetworkConfigList) []string {
	var out []string
	for _, p := range list.Plugins {
		out = append(out, p.Network.Type)
		if p.Network.IPAM.Type != "" {
			out = append(out, p.Network.IPAM.Type)
		}
	}
	return out
}

// Setup connects the pod whose network namespace is pinned at netnsPath: it brings up lo with
// the loopback plugin, then ADDs the pod to the network. If the ADD fails half-way it runs DEL
// before returning the error, so no address or rule is left behind.
func (n *Network) Setup(ctx context.Context, podID, netnsPath string, opts SetupOptions) (Result, error) {
	if podID == "" || netnsPath == "" {
		return Result{}, fmt.Errorf("cni setup: pod id and netns path are required: %w", errdefs.ErrInvalidArgument)
	}
	rt, err := runtimeConf(podID, netnsPath, opts)
	if err != nil {
		return Result{}, err
	}
	nw, err := n.current()
	if err != nil {
		return Result{}, err
	}
	lo, err := loopbackConfList()
	if err != nil {
		return Result{}, err
	}
	lg := log.From(ctx).With(log.PodSandboxID(podID), zap.String(log.KeyNetNS, netnsPath))
	start := time.Now()
	loRT := loopbackRuntimeConf(rt)
	if n.cfg.SkipLoopback {
		lo = nil
	} else if _, err := n.cni.AddNetworkList(ctx, lo, loRT); err != nil {
		n.rollback(ctx, lg, lo, loRT)
		return Result{}, fmt.Errorf("cni setup of pod %s: bring up lo: %w", podID, err)
	}
	list := nw.list
	if nw.builtin() && len(opts.PortMappings) == 0 {
		list = nw.noHostPorts // no portmap on start, and none on stop (see network)
	}
	res, err := n.cni.AddNetworkList(ctx, list, rt)
	if err == nil && nw.builtin() {
		err = enableRouteLocalnet(n.cfg.Bridge)
		if err == nil {
			err = n.ensureMasquerade()
		}
	}
	if err != nil {
		n.rollback(ctx, lg, list, rt)
		n.rollback(ctx, lg, lo, loRT)
		return Result{}, fmt.Errorf("cni setup of pod %s on network %q (%s): %w", podID, list.Name, nw.source, err)
	}
	bridge := "" // only the built-in network's veth is known to be the pod's
	if nw.builtin() {
		bridge = n.cfg.Bridge
	}
	out, err := toResult(list.Name, res, bridge)
	if err != nil {
		n.rollback(ctx, lg, list, rt)
		n.rollback(ctx, lg, lo, loRT)
		return Result{}, fmt.Errorf("cni setup of pod %s on network %q: %w", podID, list.Name, err)
	}
	lg.Debug("cni setup done", zap.String("network", list.Name), zap.Stringers("ips", ipStringers(out.IPs)),
		zap.Duration(log.KeyDuration, time.Since(start)))
	return out, nil
}

// rollback runs DEL after a failed ADD, on a context that survives the caller's cancellation.
// libcni stops a list's DEL at the first plugin that fails, and the plugin that made the ADD
// fail (missing, broken) often fails DEL too; so when the whole-list DEL fails, each plugin is
// DELeted on its own, last first, to release what the others took.
func (n *Network) rollback(ctx context.Context, lg *zap.Logger, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	if list == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := n.cni.DelNetworkList(ctx, list, rt)
	if err == nil {
		return
	}
	lg.Debug("cni del after failed add", zap.String("network", list.Name), zap.Error(err))
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		one := &libcni.NetworkConfigList{Name: list.Name, CNIVersion: list.CNIVersion, Plugins: list.Plugins[i : i+1]}
		if err := n.cni.DelNetworkList(ctx, one, rt); err != nil {
			lg.Warn("cni del after failed add", zap.String("network", list.Name),
				zap.String("plugin", list.Plugins[i].Network.Type), zap.Error(err))
		}
	}
}

// Teardown disconnects the pod: CNI DEL on every network libcni's cache says it joined (with
// the config, arguments and port mappings it joined with, so a changed config directory or a
// daemon restart does not matter), or on the current network when the cache knows nothing.
// It is idempotent. When netnsPath is empty or no longer a namespace, it passes an empty
// netns as CNI allows, so the plugins still release the address and the hostPort rules; the
// bridge plugin then skips its masquerade rule, which Teardown removes itself.
func (n *Network) Teardown(ctx context.Context, podID, netnsPath string, opts SetupOptions) error {
	if podID == "" {
		return fmt.Errorf("cni teardown: pod id is required: %w", errdefs.ErrInvalidArgument)
	}
	lg := log.From(ctx).With(log.PodSandboxID(podID), zap.String(log.KeyNetNS, netnsPath))
	if netnsPath != "" {
		if ok, err := netns.IsPinned(netnsPath); err != nil || !ok {
			lg.Debug("cni teardown without netns: it is gone", zap.Error(err))
			netnsPath = ""
		}
	}
	rt, err := runtimeConf(podID, netnsPath, opts)
	if err != nil {
		return err
	}
	atts, err := n.cni.GetCachedAttachments(podID)
	if err != nil {
		return fmt.Errorf("cni teardown of pod %s: read cache: %w", podID, err)
	}
	type del struct {
		list *libcni.NetworkConfigList
		rt   *libcni.RuntimeConf
	}
	var dels []del
	for _, a := range atts {
		list, err := libcni.NetworkConfFromBytes(a.Config)
		if err != nil {
			lg.Warn("cni cache entry unreadable", zap.String("network", a.Network), zap.Error(err))
			continue
		}
		r := *rt
		r.IfName = a.IfName
		r.Args = a.CniArgs
		r.CapabilityArgs = a.CapabilityArgs
		dels = append(dels, del{list, &r})
	}
	if len(dels) == 0 {
		// Never set up, or the cache is gone: DEL on the current network is still right, since
		// DEL of what does not exist succeeds.
		nw, err := n.current()
		if err != nil {
			// No record of an attachment and no network to ask: nothing can be released, and
			// failing would make StopPodSandbox fail until someone fixes the config.
			lg.Warn("cni teardown skipped: no cached attachment and no usable network config", zap.Error(err))
			return nil
		}
		dels = append(dels, del{nw.list, rt})
		if !n.cfg.SkipLoopback {
			lo, err := loopbackConfList()
			if err != nil {
				return err
			}
			dels = append(dels, del{lo, loopbackRuntimeConf(rt)})
		}
	}
	// The pod's networks first, lo last: the reverse of Setup.
	slices.SortStableFunc(dels, func(a, b del) int {
		return boolCmp(a.list.Name == loopbackNetwork, b.list.Name == loopbackNetwork)
	})
	start := time.Now()
	var errs []error
	for _, d := range dels {
		var prev types.Result
		if netnsPath == "" {
			// Read before DEL, which drops the cache entry.
			prev, _ = n.cni.GetNetworkListCachedResult(d.list, d.rt)
		}
		if err := n.cni.DelNetworkList(ctx, d.list, d.rt); err != nil {
			errs = append(errs, fmt.Errorf("network %q: %w", d.list.Name, err))
			continue
		}
		if netnsPath == "" && prev != nil {
			if err := releaseIPMasq(d.list, d.rt, prev); err != nil {
				errs = append(errs, fmt.Errorf("network %q: remove masquerade rule: %w", d.list.Name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cni teardown of pod %s: %w", podID, err)
	}
	lg.Debug("cni teardown done", zap.Duration(log.KeyDuration, time.Since(start)))
	return nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func runtimeConf(podID, netnsPath string, opts SetupOptions) (*libcni.RuntimeConf, error) {
	args := [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_INFRA_CONTAINER_ID", podID},
	}
	for _, a := range [][2]string{
		{"K8S_POD_NAMESPACE", opts.PodNamespace},
		{"K8S_POD_NAME", opts.PodName},
		{"K8S_POD_UID", opts.PodUID},
	} {
		if a[1] != "" {
			args = append(args, a)
		}
	}
	caps := map[string]any{}
	var ports []map[string]any
	for _, pm := range opts.PortMappings {
		m, err := portMapping(pm)
		if err != nil {
			return nil, err
		}
		if m != nil {
			ports = append(ports, m)
		}
	}
	if len(ports) > 0 {
		caps["portMappings"] = ports
	}
	if b := opts.Bandwidth; b != nil {
		caps["bandwidth"] = map[string]uint64{
			"ingressRate": b.IngressRate, "ingressBurst": b.IngressBurst,
			"egressRate": b.EgressRate, "egressBurst": b.EgressBurst,
		}
	}
	if d := opts.DNS; d != nil {
		caps["dns"] = map[string][]string{"servers": d.Servers, "searches": d.Searches, "options": d.Options}
	}
	return &libcni.RuntimeConf{
		ContainerID:    podID,
		NetNS:          netnsPath,
		IfName:         podInterface,
		Args:           args,
		CapabilityArgs: caps,
	}, nil
}

func loopbackRuntimeConf(rt *libcni.RuntimeConf) *libcni.RuntimeConf {
	lo := *rt
	lo.IfName = "lo"
	lo.CapabilityArgs = nil
	return &lo
}

// portMapping converts pm to the portmap plugin's form; a mapping without a host port is no
// hostPort and gives nil.
func portMapping(pm PortMapping) (map[string]any, error) {
	proto := strings.ToLower(pm.Protocol)
	if proto == "" {
		proto = "tcp"
	}
	switch {
	case proto != "tcp" && proto != "udp" && proto != "sctp":
		return nil, fmt.Errorf("port mapping protocol %q (want tcp, udp or sctp): %w", pm.Protocol, errdefs.ErrInvalidArgument)
	case pm.HostPort < 0 || pm.HostPort > 65535 || pm.ContainerPort <= 0 || pm.ContainerPort > 65535:
		return nil, fmt.Errorf("port mapping %d:%d: port out of range: %w", pm.HostPort, pm.ContainerPort, errdefs.ErrInvalidArgument)
	case pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil:
		return nil, fmt.Errorf("port mapping host IP %q: %w", pm.HostIP, errdefs.ErrInvalidArgument)
	case pm.HostPort == 0:
		return nil, nil
	}
	m := map[string]any{"hostPort": pm.HostPort, "containerPort": pm.ContainerPort, "protocol": proto}
	if pm.HostIP != "" {
		m["hostIP"] = pm.HostIP
	}
	return m, nil
}

// toResult picks the pod's addresses out of a CNI result: those on an interface inside the
// pod's namespace, or on no interface at all (plugins need not say). With the bridge of the
// built-in network, it names the node's end of the pod's veth too.
func toResult(network string, res types.Result, bridge string) (Result, error) {
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return Result{}, fmt.Errorf("convert cni result: %w", err)
	}
	out := Result{Network: network, Interface: podInterface}
	for _, ipc := range cur.IPs {
		if ipc.Interface != nil {
			i := *ipc.Interface
			if i < 0 || i >= len(cur.Interfaces) || cur.Interfaces[i].Sandbox == "" {
				continue
			}
			out.Interface = cur.Interfaces[i].Name
		}
		out.IPs = append(out.IPs, ipc.Address.IP)
	}
	if len(out.IPs) == 0 {
		return Result{}, fmt.Errorf("network %q gave the pod no IP address", network)
	}
	if bridge != "" {
		out.HostInterface = hostInterface(cur, bridge)
	}
	slices.SortStableFunc(out.IPs, func(a, b net.IP) int {
		return boolCmp(a.To4() == nil, b.To4() == nil)
	})
	return out, nil
}

// hostInterface is the bridge plugin's host end of the pod's veth: the one interface of the
// result outside the pod that is not the bridge; "" when there is not exactly one.
func hostInterface(cur *current.Result, bridge string) string {
	found := ""
	for _, i := range cur.Interfaces {
		if i.Sandbox != "" || i.Name == bridge || i.Name == "" {
			continue
		}
		if found != "" {
			return ""
		}
		found = i.Name
	}
	return found
}

// enableRouteLocalnet lets packets from 127.0.0.0/8, DNATed to a pod by a hostPort rule, be
// routed out of the bridge. Only ever on peapod's own bridge, which exists after the first ADD.
func enableRouteLocalnet(bridge string) error {
	p := filepath.Join("/proc/sys/net/ipv4/conf", bridge, "route_localnet")
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable route_localnet on %s: %w", bridge, err)
	}
	return nil
}

func ipStringers(ips []net.IP) []fmt.Stringer {
	out := make([]fmt.Stringer, len(ips))
	for i, ip := range ips {
		out[i] = ip
	}
	return out
}

// stderrLogger turns what plugins print on stderr into debug log lines.
type stderrLogger struct{ logger *zap.Logger }

func (w *stderrLogger) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		if l := strings.TrimSpace(string(line)); l != "" {
			w.logger.Debug("cni plugin stderr", zap.String("line", l))
		}
	}
	return len(p), nil
}
