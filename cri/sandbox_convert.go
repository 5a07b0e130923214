package cri

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/netns"
	"github.com/peapod-runtime/peapod/sandbox"
)

// builtinHandlers are the runtime handlers peapod always answers to: the default one, under
// its own name and under the name kubelets and RuntimeClasses commonly use for it.
var builtinHandlers = []string{"", "peapod", "runc"}

// handlerNames are the runtime handlers peapod answers to, in the order Status lists them:
// the built-in ones, then the configured runtime.handlers.
func (s *Server) handlerNames() []string {
	names := slices.Clone(builtinHandlers)
	for _, h := range s.opts.Config.Runtime.Handlers {
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names
}

func namespaceMode(m runtimeapi.NamespaceMode) sandbox.NamespaceMode {
	switch m {
	case runtimeapi.NamespaceMode_CONTAINER:
		return sandbox.ModeContainer
	case runtimeapi.NamespaceMode_NODE:
		return sandbox.ModeNode
	case runtimeapi.NamespaceMode_TARGET:
		return sandbox.ModeTarget
	}
	return sandbox.ModePod
}

func criNamespaceMode(m sandbox.NamespaceMode) runtimeapi.NamespaceMode {
	switch m {
	case sandbox.ModeContainer:
		return runtimeapi.NamespaceMode_CONTAINER
	case sandbox.ModeNode:
		return runtimeapi.NamespaceMode_NODE
	case sandbox.ModeTarget:
		return runtimeapi.NamespaceMode_TARGET
	}
	return runtimeapi.NamespaceMode_POD
}

// configHash identifies a request exactly: a kubelet retry sends the same bytes.
func configHash(m proto.Message) (string, error) {
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("hash config: %w", err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// sandboxConfig validates a RunPodSandbox request and converts it.
func (s *Server) sandboxConfig(req *runtimeapi.RunPodSandboxRequest) (sandbox.Config, error) {
	c := req.GetConfig()
	if c == nil {
		return sandbox.Config{}, fmt.Errorf("config is required: %w", errdefs.ErrInvalidArgument)
	}
	md := c.GetMetadata()
	for field, v := range map[string]string{"metadata.name": md.GetName(), "metadata.namespace": md.GetNamespace(), "metadata.uid": md.GetUid()} {
		if v == "" {
			return sandbox.Config{}, fmt.Errorf("config.%s is required: %w", field, errdefs.ErrInvalidArgument)
		}
	}
	if strings.ContainsAny(md.GetName()+md.GetNamespace()+md.GetUid(), "/\x00") {
		return sandbox.Config{}, fmt.Errorf("config.metadata fields must not contain '/': %w", errdefs.ErrInvalidArgument)
	}
	if names := s.handlerNames(); !slices.Contains(names, req.GetRuntimeHandler()) {
		return sandbox.Config{}, fmt.Errorf("runtime handler %q is not configured (peapod answers to %q; runtime.handlers adds names): %w", req.GetRuntimeHandler(), names, errdefs.ErrInvalidArgument)
	}
	// Container logs are opened beneath it, by the daemon and by the pod's shim alike.
	if d := c.GetLogDirectory(); d != "" && !filepath.IsAbs(d) {
		return sandbox.Config{}, fmt.Errorf("config.log_directory %q must be an absolute path: %w", d, errdefs.ErrInvalidArgument)
	}
	if err := checkMetadataSize("pod sandbox config", c.GetLabels(), c.GetAnnotations()); err != nil {
		return sandbox.Config{}, err
	}
	hash, err := configHash(req)
	if err != nil {
		return sandbox.Config{}, err
	}
	linux := c.GetLinux()
	sc := linux.GetSecurityContext()
	ns := sc.GetNamespaceOptions()
	if ns.GetNetwork() == runtimeapi.NamespaceMode_TARGET || ns.GetIpc() == runtimeapi.NamespaceMode_TARGET {
		return sandbox.Config{}, fmt.Errorf("namespace mode TARGET is only valid for a container's pid namespace: %w", errdefs.ErrInvalidArgument)
	}
	userns, _, err := userNamespace(ns)
	if err != nil {
		return sandbox.Config{}, err
	}
	out := sandbox.Config{
		Metadata: sandbox.Metadata{
			Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(), Attempt: md.GetAttempt(),
		},
		Hostname:     c.GetHostname(),
		LogDirectory: c.GetLogDirectory(),
		Labels:       c.GetLabels(),
		Annotations:  c.GetAnnotations(),
		CgroupParent: linux.GetCgroupParent(),
		Sysctls:      linux.GetSysctls(),
		Namespaces: sandbox.NamespaceOptions{
			Network: namespaceMode(ns.GetNetwork()),
			PID:     namespaceMode(ns.GetPid()),
			IPC:     namespaceMode(ns.GetIpc()),
		},
		UserNamespace:  userns,
		Privileged:     sc.GetPrivileged(),
		RuntimeHandler: req.GetRuntimeHandler(),
		Hash:           hash,
	}
	if out.RunAsUser, out.RunAsGroup, err = podUser(sc); err != nil {
		return sandbox.Config{}, err
	}
	if d := c.GetDnsConfig(); d != nil {
		out.DNS = &sandbox.DNSConfig{Servers: d.GetServers(), Searches: d.GetSearches(), Options: d.GetOptions()}
	}
	for _, pm := range c.GetPortMappings() {
		if pm.GetContainerPort() <= 0 || pm.GetContainerPort() > 65535 || pm.GetHostPort() < 0 || pm.GetHostPort() > 65535 {
			return sandbox.Config{}, fmt.Errorf("port mapping %d->%d is out of range: %w", pm.GetHostPort(), pm.GetContainerPort(), errdefs.ErrInvalidArgument)
		}
		out.PortMappings = append(out.PortMappings, sandbox.PortMapping{
			Protocol:      strings.ToLower(pm.GetProtocol().String()),
			ContainerPort: pm.GetContainerPort(),
			HostPort:      pm.GetHostPort(),
			HostIP:        pm.GetHostIp(),
		})
	}
	res, err := s.resources(linux.GetResources())
	if err != nil {
		return sandbox.Config{}, fmt.Errorf("config.linux.resources: %w", err)
	}
	if out.Overhead, err = s.resources(linux.GetOverhead()); err != nil {
		return sandbox.Config{}, fmt.Errorf("config.linux.overhead: %w", err)
	}
	// The kubelet sends the containers' totals without the overhead (linux.resources) and the
	// overhead beside it; the pod cgroup gets both, as the kubelet sizes it itself (a pod
	// cgroup sized without the overhead undid the kubelet's: node conformance's PodOverhead
	// spec read 100Mi where 240Mi was due).
	if res != nil || out.Overhead != nil {
		total := podTotal(res, out.Overhead)
		if err := total.Validate(); err != nil {
			return sandbox.Config{}, fmt.Errorf("config.linux.resources plus overhead: %w", err)
		}
		out.Resources = &total
	}
	return out, nil
}

func criSandboxState(st sandbox.State) runtimeapi.PodSandboxState {
	if st == sandbox.StateReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func criSandboxMetadata(m sandbox.Metadata) *runtimeapi.PodSandboxMetadata {
	return &runtimeapi.PodSandboxMetadata{Name: m.Name, Namespace: m.Namespace, Uid: m.UID, Attempt: m.Attempt}
}

func criSandbox(sb sandbox.Sandbox) *runtimeapi.PodSandbox {
	return &runtimeapi.PodSandbox{
		Id:             sb.ID,
		Metadata:       criSandboxMetadata(sb.Config.Metadata),
		State:          criSandboxState(sb.State),
		CreatedAt:      sb.CreatedAt.UnixNano(),
		Labels:         sb.Config.Labels,
		Annotations:    sb.Config.Annotations,
		RuntimeHandler: sb.Config.RuntimeHandler,
	}
}

func criSandboxStatus(sb sandbox.Sandbox, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	st := &runtimeapi.PodSandboxStatus{
		Id:        sb.ID,
		Metadata:  criSandboxMetadata(sb.Config.Metadata),
		State:     criSandboxState(sb.State),
		CreatedAt: sb.CreatedAt.UnixNano(),
		Network:   &runtimeapi.PodSandboxNetworkStatus{},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network:       criNamespaceMode(sb.Config.Namespaces.Network),
			Pid:           criNamespaceMode(sb.Config.Namespaces.PID),
			Ipc:           criNamespaceMode(sb.Config.Namespaces.IPC),
			UsernsOptions: criUserNamespace(sb.Config.UserNamespace),
		}}},
		Labels:         sb.Config.Labels,
		Annotations:    sb.Config.Annotations,
		RuntimeHandler: sb.Config.RuntimeHandler,
	}
	if len(sb.IPs) > 0 && sb.State == sandbox.StateReady {
		st.Network.Ip = sb.IPs[0]
		for _, ip := range sb.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if verbose {
		raw, err := json.Marshal(sb)
		if err != nil {
			return nil, fmt.Errorf("encode sandbox info: %w", err)
		}
		resp.Info = map[string]string{"info": string(raw)}
	}
	return resp, nil
}

// podUser validates the sandbox security context's run_as_user and run_as_group.
func podUser(sc *runtimeapi.LinuxSandboxSecurityContext) (uid, gid *uint32, err error) {
	id := func(field string, v *runtimeapi.Int64Value) (*uint32, error) {
		if v == nil {
			return nil, nil
		}
		if v.GetValue() < 0 || v.GetValue() > 1<<32-2 {
			return nil, fmt.Errorf("config.linux.security_context.%s %d is outside 0..%d: %w", field, v.GetValue(), uint32(1<<32-2), errdefs.ErrInvalidArgument)
		}
		n := uint32(v.GetValue())
		return &n, nil
	}
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil {
		return nil, nil, fmt.Errorf("config.linux.security_context.run_as_group needs run_as_user: %w", errdefs.ErrInvalidArgument)
	}
	if uid, err = id("run_as_user", sc.GetRunAsUser()); err != nil {
		return nil, nil, err
	}
	if gid, err = id("run_as_group", sc.GetRunAsGroup()); err != nil {
		return nil, nil, err
	}
	return uid, gid, nil
}

// userNamespace reads userns_options: mode POD is a user namespace of the pod's own with
// exactly one uid and one gid mapping, container root mapped (the mapping, checked); NODE
// is the node's (node true); no option at all is the node's too (node false), as every
// kubelet without user namespaces sends. The CRI allows no other mode: CONTAINER and
// TARGET are InvalidArgument, as are mappings given with NODE.
func userNamespace(ns *runtimeapi.NamespaceOption) (m *netns.IDMapping, node bool, err error) {
	u := ns.GetUsernsOptions()
	if u == nil {
		return nil, false, nil
	}
	switch u.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return nil, false, fmt.Errorf("userns_options mode NODE takes no uid or gid mappings: %w", errdefs.ErrInvalidArgument)
		}
		return nil, true, nil
	case runtimeapi.NamespaceMode_POD:
		conv := func(in []*runtimeapi.IDMapping) []specs.LinuxIDMapping {
			out := make([]specs.LinuxIDMapping, 0, len(in))
			for _, r := range in {
				out = append(out, specs.LinuxIDMapping{ContainerID: r.GetContainerId(), HostID: r.GetHostId(), Size: r.GetLength()})
			}
			return out
		}
		m := &netns.IDMapping{UIDs: conv(u.GetUids()), GIDs: conv(u.GetGids())}
		if err := m.Validate(); err != nil {
			return nil, false, fmt.Errorf("userns_options: %w", err)
		}
		return m, false, nil
	}
	return nil, false, fmt.Errorf("userns_options mode %s: a user namespace is the pod's (POD) or the node's (NODE), never per container or another's: %w", u.GetMode(), errdefs.ErrInvalidArgument)
}

// criUserNamespace is the pod's user namespace as the CRI states it: POD with its mappings, or
// NODE.
func criUserNamespace(m *netns.IDMapping) *runtimeapi.UserNamespace {
	if m == nil {
		return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}
	}
	conv := func(in []specs.LinuxIDMapping) []*runtimeapi.IDMapping {
		out := make([]*runtimeapi.IDMapping, 0, len(in))
		for _, r := range in {
			out = append(out, &runtimeapi.IDMapping{ContainerId: r.ContainerID, HostId: r.HostID, Length: r.Size})
		}
		return out
	}
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: conv(m.UIDs), Gids: conv(m.GIDs)}
}
