package container

import (
	"time"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container/spec"
	"github.com/peapod-runtime/peapod/netns"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/volumes"
)

// State is where a container is in its life:
//
//	(none) ──Create──► Created ──Start──► Running ──(exit)──► Exited ──Remove──► (gone)
//	                      │                                     ▲
//	                      └──────────Stop / monitor lost────────┘
//
// Every change is persisted before it is acknowledged. Unknown is only reported while the
// daemon has not yet learned a container's fate after a restart: its shim did not answer
// the recovery in time, and the record keeps what was last persisted until it does. A Created container's
// init may still be in the making (Manager.Create); if that fails, it goes straight to
// Exited with reason StartError.
type State string

// The states of a container record.
const (
	StateCreated State = "created"
	StateRunning State = "running"
	StateExited  State = "exited"
	StateUnknown State = "unknown"
)

// Exit reasons, as the kubelet reads them.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
	// ReasonStartError is a container whose runtime create or start failed, as containerd
	// reports it.
	ReasonStartError = "StartError"
)

// startErrorExitCode is the exit code of a container that never ran (containerd's too).
const startErrorExitCode = 128

// Metadata names a container within its pod, the way the kubelet does.
type Metadata struct {
	Name    string `json:"name"`
	Attempt uint32 `json:"attempt"`
}

// Config is what CreateContainer asks for, in peapod's terms.
type Config struct {
	Metadata Metadata `json:"metadata"`
	// Image is the image as the request named it; the Manager resolves it.
	Image string `json:"image"`
	// UserImage is the image as the pod's author wrote it (CRI UserSpecifiedImage), when the
	// client sent it: a kubelet names the image by its id in Image.
	UserImage   string            `json:"user_image,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// LogPath is relative to the pod's log directory, as the kubelet gives it.
	LogPath   string             `json:"log_path,omitempty"`
	Stdin     bool               `json:"stdin,omitempty"`
	StdinOnce bool               `json:"stdin_once,omitempty"`
	TTY       bool               `json:"tty,omitempty"`
	Mounts    []volumes.Mount    `json:"mounts,omitempty"`
	Resources *cgroups.Resources `json:"resources,omitempty"`
	// StopSignal is the signal name the request asked for ("" means the image's, else SIGTERM).
	StopSignal string `json:"stop_signal,omitempty"`
	// Hash identifies the exact request, so that a kubelet retry gets the same container.
	Hash string `json:"hash"`
	// UserNamespace is what the request said of the user namespace (nil: nothing). A
	// container always shares its pod's; one that asks for another is refused. Not
	// persisted.
	UserNamespace *UserNamespaceRequest `json:"-"`
	// Spec holds the process, security and namespace choices; the Manager fills in what
	// comes from the pod, the image and the node. Not persisted: the shim keeps the spec.
	Spec spec.Input `json:"-"`
}

// UserNamespaceRequest is a container's userns_options: the node's (Node), or the pod's
// with this mapping.
type UserNamespaceRequest struct {
	Node    bool
	Mapping *netns.IDMapping
}

// Container is a container as peapod keeps it. Values are copies.
type Container struct {
	ID     string `json:"id"`
	PodID  string `json:"pod_id"`
	Config Config `json:"config"`
	// ImageID is the image's id (what PullImage returned).
	ImageID    string    `json:"image_id"`
	State      State     `json:"state"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	ExitCode   int32     `json:"exit_code"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	Pid        int       `json:"pid,omitempty"`
	// LogPath is the absolute log file path ("" when the kubelet gave none).
	LogPath string `json:"log_path_abs,omitempty"`
	// LogDirectory is the pod's log directory, which LogPath lies beneath: the shim opens
	// the log relative to it, never through a symlink.
	LogDirectory string `json:"log_directory,omitempty"`
	// User is who the process runs as.
	User spec.User `json:"user"`
	// StopSignal is the resolved stop signal name.
	StopSignal string `json:"stop_signal_resolved"`
	// Dir holds the writable layer and the rootfs mount point.
	Dir string `json:"dir"`
	// CgroupPath is the container's cgroup (for updates and stats).
	CgroupPath string `json:"cgroup_path"`
	// ImageVolumes are the images the container mounts as image volumes, recorded before
	// they are held and mounted, so that Remove releases them whatever a crash left.
	ImageVolumes []ImageVolume `json:"image_volumes,omitempty"`
}

// ImageVolume is one image volume of a container: Config.Mounts[Index] shows image
// ImageID.
type ImageVolume struct {
	Index   int    `json:"index"`
	ImageID string `json:"image_id"`
}

// Filter selects containers in List; zero fields match everything.
type Filter struct {
	ID            string
	PodID         string
	State         State
	LabelSelector map[string]string
}

// ExecSyncResult is what Manager.ExecSync answers: the command's output (each stream capped)
// and how it ended. The shim makes it; the alias lets callers name it without the shim.
type ExecSyncResult = shim.ExecSyncResult
