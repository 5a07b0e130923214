package cri

import (
	"context"
	"encoding/json"
	"time"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/images"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/stats"
	"github.com/peapod-runtime/peapod/stream"
)

// The handlers' collaborators, each declared here by what the handlers call on it and
// nothing more: cmd/peapod wires the real ones (sandbox.Manager, container.Manager,
// images.Service, stats.Collector, stream.Server, cni.Network), the unit tests fakes.

// networkStatus reports whether pod networking can be set up; nil means ready.
type networkStatus interface {
	Status() error
}

// sandboxes runs pods: sandbox.Manager.
type sandboxes interface {
	podSource
	Run(ctx context.Context, cfg sandbox.Config) (sandbox.Sandbox, error)
	List(f sandbox.Filter) []sandbox.Sandbox
	Stop(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	UpdateResources(ctx context.Context, id string, res cgroups.Resources) error
	// SetPodCIDR and PodCIDR persist what UpdateRuntimeConfig hands down.
	SetPodCIDR(cidr string) error
	PodCIDR() (string, error)
	// UserNamespacesSupported says pods may have user namespaces of their own (Status).
	UserNamespacesSupported() bool
}

// containers runs containers: container.Manager.
type containers interface {
	eventSource
	Create(ctx context.Context, podID string, cfg container.Config) (container.Container, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
	HoldPod(ctx context.Context, podID string) (release func(), err error)
	StopPod(ctx context.Context, podID string) error
	RemovePod(ctx context.Context, podID string) error
	Get(id string) (container.Container, error)
	Spec(id string) (json.RawMessage, error)
	CheckRunning(id string) (container.Container, error)
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (container.ExecSyncResult, error)
	ReopenLog(ctx context.Context, id string) error
	UpdateResources(ctx context.Context, id string, res *cgroups.Resources) error
	Checkpoint(ctx context.Context, id, location string) error
}

// imageStore pulls and keeps images: images.Service.
type imageStore interface {
	Pull(ctx context.Context, ref string, auth images.Auth) (images.Image, error)
	Status(ctx context.Context, ref string) (*images.Image, error)
	List(ctx context.Context, filter string) ([]images.Image, error)
	Remove(ctx context.Context, ref string) error
	FsInfo(ctx context.Context) (images.FsUsage, error)
}

// statsSource answers the last samples: stats.Collector.
type statsSource interface {
	Pod(id string) (stats.Pod, bool)
	PodNow(sb sandbox.Sandbox) (stats.Pod, bool)
	ContainerNow(c container.Container) (stats.Container, bool)
}

// streamURLs hands out the one-time URLs of Exec, Attach and PortForward: stream.Server.
type streamURLs interface {
	ExecURL(r stream.ExecRequest) (string, error)
	AttachURL(r stream.AttachRequest) (string, error)
	PortForwardURL(podID string, ports []int32) (string, error)
}
