package cri

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/container/spec"
	"github.com/peapod-runtime/peapod/volumes"
)

// containerConfig validates a CreateContainer request and converts it.
func (s *Server) containerConfig(req *runtimeapi.CreateContainerRequest) (container.Config, error) {
	c := req.GetConfig()
	if c == nil {
		return container.Config{}, fmt.Errorf("config is required: %w", errdefs.ErrInvalidArgument)
	}
	if req.GetPodSandboxId() == "" {
		return container.Config{}, fmt.Errorf("pod_sandbox_id is required: %w", errdefs.ErrInvalidArgument)
	}
	name := c.GetMetadata().GetName()
	if name == "" {
		return container.Config{}, fmt.Errorf("config.metadata.name is required: %w", errdefs.ErrInvalidArgument)
	}
	if strings.ContainsAny(name, "/\x00") {
		return container.Config{}, fmt.Errorf("config.metadata.name %q must not contain '/': %w", name, errdefs.ErrInvalidArgument)
	}
	if c.GetImage().GetImage() == "" {
		return container.Config{}, fmt.Errorf("config.image.image is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := checkMetadataSize("container config", c.GetLabels(), c.GetAnnotations()); err != nil {
		return container.Config{}, err
	}
	hash, err := configHash(req)
	if err != nil {
		return container.Config{}, err
	}
	linux := c.GetLinux()
	out := container.Config{
		Metadata:    container.Metadata{Name: name, Attempt: c.GetMetadata().GetAttempt()},
		Image:       c.GetImage().GetImage(),
		UserImage:   c.GetImage().GetUserSpecifiedImage(),
		Labels:      c.GetLabels(),
		Annotations: c.GetAnnotations(),
		LogPath:     c.GetLogPath(),
		Stdin:       c.GetStdin(),
		StdinOnce:   c.GetStdinOnce(),
		TTY:         c.GetTty(),
		Hash:        hash,
	}
	if sig := c.GetStopSignal(); sig != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		out.StopSignal = strings.TrimPrefix(sig.String(), "SIGNAL_")
	}
	if out.Mounts, err = containerMounts(c.GetMounts()); err != nil {
		return container.Config{}, err
	}
	if out.Resources, err = s.resources(linux.GetResources()); err != nil {
		return container.Config{}, fmt.Errorf("config.linux.resources: %w", err)
	}
	if out.Spec, err = specInput(c); err != nil {
		return container.Config{}, err
	}
	userns, node, err := userNamespace(linux.GetSecurityContext().GetNamespaceOptions())
	if err != nil {
		return container.Config{}, err
	}
	if userns != nil || node {
		out.UserNamespace = &container.UserNamespaceRequest{Node: node, Mapping: userns}
	}
	return out, nil
}

// containerMounts converts the CRI mounts, image volumes (Mount.image) included.
func containerMounts(ms []*runtimeapi.Mount) ([]volumes.Mount, error) {
	var out []volumes.Mount
	for _, m := range ms {
		if m.GetImage().GetImage() != "" {
			mnt, err := imageMount(m)
			if err != nil {
				return nil, err
			}
			out = append(out, mnt)
			continue
		}
		out = append(out, volumes.Mount{
			ContainerPath:     m.GetContainerPath(),
			HostPath:          m.GetHostPath(),
			Readonly:          m.GetReadonly(),
			Propagation:       volumes.Propagation(m.GetPropagation()),
			RecursiveReadOnly: m.GetRecursiveReadOnly(),
			SelinuxRelabel:    m.GetSelinuxRelabel(),
		})
	}
	return out, nil
}

// specInput is what the OCI spec is built from: the process, its devices, its namespaces and
// its security context.
func specInput(c *runtimeapi.ContainerConfig) (spec.Input, error) {
	sc := c.GetLinux().GetSecurityContext()
	in := spec.Input{Command: c.GetCommand(), Args: c.GetArgs(), WorkingDir: c.GetWorkingDir()}
	for _, kv := range c.GetEnvs() {
		in.Env = append(in.Env, spec.EnvVar{Key: kv.GetKey(), Value: string(kv.GetValue())})
	}
	for _, d := range c.GetDevices() {
		in.Devices = append(in.Devices, spec.Device{ContainerPath: d.GetContainerPath(), HostPath: d.GetHostPath(), Permissions: d.GetPermissions()})
	}
	for _, d := range c.GetCDIDevices() {
		if d.GetName() == "" {
			return spec.Input{}, fmt.Errorf("config.CDI_devices: a device without a name: %w", errdefs.ErrInvalidArgument)
		}
		in.CDIDevices = append(in.CDIDevices, d.GetName())
	}
	ns := sc.GetNamespaceOptions()
	in.Namespaces.PID = spec.Namespace{Mode: spec.NamespaceMode(ns.GetPid())}
	if ns.GetPid() == runtimeapi.NamespaceMode_TARGET {
		if ns.GetTargetId() == "" {
			return spec.Input{}, fmt.Errorf("pid namespace mode TARGET needs target_id: %w", errdefs.ErrInvalidArgument)
		}
		in.Namespaces.PID.Path = ns.GetTargetId()
	}
	in.Security = containerSecurity(sc)
	return in, nil
}

// containerSecurity converts the container's security context.
func containerSecurity(sc *runtimeapi.LinuxContainerSecurityContext) spec.Security {
	sec := spec.Security{
		Privileged:               sc.GetPrivileged(),
		RunAsUsername:            sc.GetRunAsUsername(),
		SupplementalGroups:       sc.GetSupplementalGroups(),
		SupplementalGroupsPolicy: spec.GroupsPolicy(sc.GetSupplementalGroupsPolicy()),
		NoNewPrivs:               sc.GetNoNewPrivs(),
		ReadonlyRootfs:           sc.GetReadonlyRootfs(),
		SeccompProfilePath:       sc.GetSeccompProfilePath(),
		AppArmorProfile:          sc.GetApparmorProfile(),
		MaskedPaths:              sc.GetMaskedPaths(),
		ReadonlyPaths:            sc.GetReadonlyPaths(),
		Capabilities: spec.Capabilities{
			Add:        sc.GetCapabilities().GetAddCapabilities(),
			Drop:       sc.GetCapabilities().GetDropCapabilities(),
			AddAmbient: sc.GetCapabilities().GetAddAmbientCapabilities(),
		},
	}
	if u := sc.GetRunAsUser(); u != nil {
		v := u.GetValue()
		sec.RunAsUser = &v
	}
	if g := sc.GetRunAsGroup(); g != nil {
		v := g.GetValue()
		sec.RunAsGroup = &v
	}
	sec.Seccomp = securityProfile(sc.GetSeccomp())
	sec.AppArmor = securityProfile(sc.GetApparmor())
	return sec
}

func securityProfile(p *runtimeapi.SecurityProfile) *spec.SecurityProfile {
	if p == nil {
		return nil
	}
	return &spec.SecurityProfile{Type: spec.ProfileType(p.GetProfileType()), LocalhostRef: p.GetLocalhostRef()}
}

func criContainerState(st container.State) runtimeapi.ContainerState {
	switch st {
	case container.StateCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case container.StateRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case container.StateExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func criContainerMetadata(md container.Metadata) *runtimeapi.ContainerMetadata {
	return &runtimeapi.ContainerMetadata{Name: md.Name, Attempt: md.Attempt}
}

func criContainer(c container.Container) *runtimeapi.Container {
	return &runtimeapi.Container{
		Id:           c.ID,
		PodSandboxId: c.PodID,
		Metadata:     criContainerMetadata(c.Config.Metadata),
		Image:        reportedImage(c.Config),
		ImageRef:     c.ImageID,
		ImageId:      c.ImageID,
		State:        criContainerState(c.State),
		CreatedAt:    c.CreatedAt.UnixNano(),
		Labels:       c.Config.Labels,
		Annotations:  c.Config.Annotations,
	}
}

// reportedImage is the image a container's status names: the one the pod's author wrote
// (UserSpecifiedImage) when the client sent it, else the one the request named. A kubelet
// creates containers by image id and sends the author's name beside it; it shows the status's
// image in the pod's status, where specs and users expect the name (containerd reports the
// same, from UserSpecifiedImage or the image's first tag; CRI-O too).
func reportedImage(c container.Config) *runtimeapi.ImageSpec {
	img := c.Image
	if c.UserImage != "" {
		img = c.UserImage
	}
	return &runtimeapi.ImageSpec{Image: img, UserSpecifiedImage: c.UserImage}
}

func nanos(c container.Container) (started, finished int64) {
	if !c.StartedAt.IsZero() {
		started = c.StartedAt.UnixNano()
	}
	if !c.FinishedAt.IsZero() {
		finished = c.FinishedAt.UnixNano()
	}
	return started, finished
}

// criContainerStatus converts a container; a non-nil spec (verbose) adds the info map.
func criContainerStatus(c container.Container, verbose bool, spec json.RawMessage) (*runtimeapi.ContainerStatusResponse, error) {
	started, finished := nanos(c)
	st := &runtimeapi.ContainerStatus{
		Id:          c.ID,
		Metadata:    criContainerMetadata(c.Config.Metadata),
		State:       criContainerState(c.State),
		CreatedAt:   c.CreatedAt.UnixNano(),
		StartedAt:   started,
		FinishedAt:  finished,
		ExitCode:    c.ExitCode,
		Image:       reportedImage(c.Config),
		ImageRef:    c.ImageID,
		ImageId:     c.ImageID,
		Reason:      c.Reason,
		Message:     c.Message,
		Labels:      c.Config.Labels,
		Annotations: c.Config.Annotations,
		LogPath:     c.LogPath,
		User: &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{
			Uid: int64(c.User.UID), Gid: int64(c.User.GID), SupplementalGroups: groups(c.User.AdditionalGids),
		}},
	}
	if r := criResources(c.Config.Resources); r != nil {
		st.Resources = &runtimeapi.ContainerResources{Linux: r}
	}
	for _, m := range c.Config.Mounts {
		cm := &runtimeapi.Mount{
			ContainerPath: m.ContainerPath, HostPath: m.HostPath, Readonly: m.Readonly,
			Propagation: runtimeapi.MountPropagation(m.Propagation), RecursiveReadOnly: m.RecursiveReadOnly,
			SelinuxRelabel: m.SelinuxRelabel,
		}
		if m.Image != "" {
			cm.Image, cm.ImageSubPath = &runtimeapi.ImageSpec{Image: m.Image}, m.ImageSubPath
		}
		st.Mounts = append(st.Mounts, cm)
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if verbose {
		raw, err := json.Marshal(struct {
			container.Container
			SandboxID   string          `json:"sandboxID"`
			RuntimeSpec json.RawMessage `json:"runtimeSpec,omitempty"`
		}{c, c.PodID, spec})
		if err != nil {
			return nil, fmt.Errorf("encode container info: %w", err)
		}
		resp.Info = map[string]string{"info": string(raw)}
	}
	return resp, nil
}

func groups(g []uint32) []int64 {
	out := make([]int64, len(g))
	for i, v := range g {
		out[i] = int64(v)
	}
	return out
}

// imageMount converts an image volume (Mount.image): the image the kubelet pulled, shown
// read-only whatever the request says ("all image mounts are per feature definition
// readonly"), with private propagation (the image's overlay is the runtime's own mount).
func imageMount(m *runtimeapi.Mount) (volumes.Mount, error) {
	if m.GetHostPath() != "" {
		return volumes.Mount{}, fmt.Errorf("mount %s: host_path and image are mutually exclusive: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
	}
	return volumes.Mount{
		ContainerPath:     m.GetContainerPath(),
		Readonly:          true,
		Propagation:       volumes.PropagationPrivate,
		RecursiveReadOnly: m.GetRecursiveReadOnly(),
		SelinuxRelabel:    m.GetSelinuxRelabel(),
		Image:             m.GetImage().GetImage(),
		ImageSubPath:      m.GetImageSubPath(),
	}, nil
}
