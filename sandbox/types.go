package sandbox

import (
	"fmt"
	"strconv"
	"time"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/netns"
)

// State is where a pod is in its life:
//
//	(none) ──Run──► Ready ──Stop──► NotReady ──Remove──► (gone)
//	                  │                 ▲
//	                  └──Stop, lost─────┘   Stop and Remove repeat harmlessly.
//
// A Run that fails part-way undoes what it did and leaves no record. A pod that can no
// longer run containers (its PID namespace holder exited) is NotReady with a Reason, as a
// pod whose pause container died is for containerd: a kubelet then stops it and makes a
// new one.
type State string

// The states a pod record can be in.
const (
	StateReady    State = "ready"
	StateNotReady State = "notready"
)

// NamespaceMode says whose namespace a pod uses.
type NamespaceMode int

// The CRI namespace modes. Pod is the zero value: a pod gets its own namespaces by default.
const (
	ModePod NamespaceMode = iota
	ModeContainer
	ModeNode
	ModeTarget
)

// NamespaceOptions are the pod's namespace choices.
type NamespaceOptions struct {
	Network NamespaceMode `json:"network"`
	PID     NamespaceMode `json:"pid"`
	IPC     NamespaceMode `json:"ipc"`
}

// DNSConfig is the pod's resolver configuration; an empty one means the host's.
type DNSConfig struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// PortMapping is one hostPort.
type PortMapping struct {
	Protocol      string `json:"protocol"`
	ContainerPort int32  `json:"container_port"`
	HostPort      int32  `json:"host_port"`
	HostIP        string `json:"host_ip,omitempty"`
}

// Metadata names a pod the way the kubelet does.
type Metadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
	Attempt   uint32 `json:"attempt"`
}

// Config is what RunPodSandbox asks for, in peapod's own terms.
type Config struct {
	Metadata       Metadata          `json:"metadata"`
	Hostname       string            `json:"hostname,omitempty"`
	LogDirectory   string            `json:"log_directory,omitempty"`
	DNS            *DNSConfig        `json:"dns,omitempty"`
	PortMappings   []PortMapping     `json:"port_mappings,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	CgroupParent   string            `json:"cgroup_parent,omitempty"`
	Sysctls        map[string]string `json:"sysctls,omitempty"`
	Namespaces     NamespaceOptions  `json:"namespaces"`
	Privileged     bool              `json:"privileged,omitempty"`
	RuntimeHandler string            `json:"runtime_handler,omitempty"`
	// Resources are the pod's declared totals (sandbox linux.resources, overhead
	// included); Overhead is the overhead alone.
	Resources *cgroups.Resources `json:"resources,omitempty"`
	Overhead  *cgroups.Resources `json:"overhead,omitempty"`
	// Hash identifies the exact request, so that a kubelet's retry of the same config is
	// recognised and a different config under the same name is refused.
	Hash string `json:"hash"`

	// UserNamespace, when set, gives the pod a user namespace of its own with this mapping
	// (CRI userns_options mode POD): its other namespaces are created inside it, and its
	// containers join it. Nil keeps the node's (mode NODE).
	UserNamespace *netns.IDMapping `json:"user_namespace,omitempty"`

	// RunAsUser and RunAsGroup are the pod's own identity (the sandbox security context),
	// which its PID namespace holder runs as; RunAsGroup needs RunAsUser.
	RunAsUser  *uint32 `json:"run_as_user,omitempty"`
	RunAsGroup *uint32 `json:"run_as_group,omitempty"`
}

// Sandbox is a pod as peapod keeps it. Values are copies: changing one changes nothing.
type Sandbox struct {
	ID        string    `json:"id"`
	Config    Config    `json:"config"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	// IPs are the pod's addresses, IPv4 first; empty for a hostNetwork pod.
	IPs []string `json:"ips,omitempty"`
	// HostInterface is the node's end of the pod's veth on the built-in network; "" on other
	// networks (stats then read the pod's counters inside its namespace every pass).
	HostInterface string `json:"host_interface,omitempty"`
	// Namespace pins (empty when the node's namespace is used).
	NetNSPath string `json:"netns_path,omitempty"`
	IPCPath   string `json:"ipc_path,omitempty"`
	UTSPath   string `json:"uts_path,omitempty"`
	// UserNSPath pins the pod's own user namespace (Config.UserNamespace).
	UserNSPath string `json:"userns_path,omitempty"`
	// CgroupParent is the pod cgroup (as an OCI cgroupsPath parent) and QoS its tier.
	CgroupParent string `json:"cgroup_parent"`
	QoS          string `json:"qos"`
	// Files the pod's containers mount.
	Dir          string `json:"dir"`
	ShmPath      string `json:"shm_path"`
	HostnamePath string `json:"hostname_path"`
	ResolvPath   string `json:"resolv_path"`
	HostsPath    string `json:"hosts_path"`
	// NetworkDown is set once CNI DEL succeeded, so a repeated Stop skips it.
	NetworkDown bool `json:"network_down,omitempty"`
	// Reason says why a pod nobody stopped is NotReady (MarkNotReady).
	Reason string `json:"reason,omitempty"`
}

// Name is the key under which a pod's name is reserved: the kubelet's own pod name parts.
func (c Config) Name() string {
	return c.Metadata.Namespace + "/" + c.Metadata.Name + "/" + c.Metadata.UID + "/" + strconv.FormatUint(uint64(c.Metadata.Attempt), 10)
}

// Filter selects pods in List; zero fields match everything.
type Filter struct {
	ID            string
	State         State
	LabelSelector map[string]string
}

// HolderUser is "UID:GID" for the pod's PID namespace holder, "" when the pod sets no
// run_as_user (the holder then stays root, still without capabilities). A pod with a
// run_as_user but no run_as_group gets group 0, as a pause image without /etc/passwd would.
func (c Config) HolderUser() string {
	if c.RunAsUser == nil {
		return ""
	}
	gid := uint32(0)
	if c.RunAsGroup != nil {
		gid = *c.RunAsGroup
	}
	return fmt.Sprintf("%d:%d", *c.RunAsUser, gid)
}
