package spec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/volumes"
)

// Security is the container's security context, in peapod's terms.
type Security struct {
	Privileged bool

	RunAsUser                *int64
	RunAsUsername            string
	RunAsGroup               *int64
	RunAsNonRoot             bool
	SupplementalGroups       []int64
	SupplementalGroupsPolicy GroupsPolicy

	Capabilities   Capabilities
	NoNewPrivs     bool
	ReadonlyRootfs bool

	// Seccomp wins over the deprecated SeccompProfilePath ("runtime/default",
	// "localhost/<path>"...); both unset means unconfined.
	Seccomp            *SecurityProfile
	SeccompProfilePath string
	// AppArmor wins over the deprecated AppArmorProfile string.
	AppArmor        *SecurityProfile
	AppArmorProfile string

	// MaskedPaths and ReadonlyPaths replace the defaults when not empty; privileged
	// containers get none either way.
	MaskedPaths   []string
	ReadonlyPaths []string
}

// Input is everything that decides a container's spec. The cri package fills it from the
// CreateContainer request, the pod and the image; Host comes from ProbeHost.
type Input struct {
	// ID names the container in logs and errors.
	ID string
	// RootfsPath is the container's root filesystem: a merged view of the image (its mounted
	// overlay), read for /etc/passwd, /etc/group and the image VOLUMEs' content.
	RootfsPath string
	Image      Image

	Command    []string
	Args       []string
	WorkingDir string
	Env        []EnvVar
	TTY        bool
	// Hostname is the pod's hostname, for HOSTNAME and a new UTS namespace ("" means the
	// node's).
	Hostname string

	// Mounts are the CRI mounts; Devices the CRI devices.
	Mounts  []volumes.Mount
	Devices []Device
	// CDIDevices are fully-qualified CDI device names, resolved against Host.CDISpecDirs.
	CDIDevices []string
	// PodFiles are the pod's hostname, resolv.conf, hosts and shm (from volumes.WritePodFiles
	// and MountPodShm); each is skipped when Mounts covers its path.
	PodFiles volumes.PodFilePaths
	// ImageVolumesDir is where the image's VOLUMEs are created, seeded, for this container
	// (e.g. <container dir>/volumes); "" ignores image VOLUMEs.
	ImageVolumesDir string

	Namespaces Namespaces
	Security   Security

	// Resources are the cgroup limits already in OCI form; CgroupsPath the container's cgroup.
	Resources   *specs.LinuxResources
	CgroupsPath string
	// OOMScoreAdj is the CRI's oom_score_adj; nil leaves the inherited one.
	OOMScoreAdj *int

	Annotations map[string]string
	Sysctls     map[string]string

	Host Host
}

// Resolved is what Generate decided that the container's status reports.
type Resolved struct {
	User User
}

// Generate resolves in into an OCI spec. It reads the image's /etc/passwd and /etc/group,
// a Localhost seccomp profile, the host's devices for a privileged container, and creates
// the image VOLUME directories under ImageVolumesDir (last, after everything that can fail
// without touching the disk; the caller removes that directory with the container).
//
// Errors are wrapped errdefs sentinels: ErrInvalidArgument for a request that cannot be
// honoured as written (unknown capability, missing username, bad profile, no command...),
// ErrNotFound for a missing mount or device host path, ErrFailedPrecondition for what the
// node lacks (a capability peapod does not hold, non-shared mount propagation, rro).
func Generate(ctx context.Context, in Input) (*specs.Spec, Resolved, error) {
	sec := in.Security
	if in.RootfsPath == "" {
		return nil, Resolved{}, fmt.Errorf("container %s has no rootfs: %w", in.ID, errdefs.ErrInvalidArgument)
	}
	args, err := ProcessArgs(in.Image, in.Command, in.Args)
	if err != nil {
		return nil, Resolved{}, err
	}
	// Checks that Build would make anyway, made here so that a refused request leaves
	// nothing on disk.
	if _, err := NamespaceList(in.Namespaces); err != nil {
		return nil, Resolved{}, err
	}
	cwd := ProcessCwd(in.Image, in.WorkingDir)
	if !filepath.IsAbs(cwd) {
		return nil, Resolved{}, fmt.Errorf("working directory %q is not absolute: %w", cwd, errdefs.ErrInvalidArgument)
	}
	if in.OOMScoreAdj != nil && (*in.OOMScoreAdj < -1000 || *in.OOMScoreAdj > 1000) {
		return nil, Resolved{}, fmt.Errorf("oom_score_adj %d is outside -1000..1000: %w", *in.OOMScoreAdj, errdefs.ErrInvalidArgument)
	}
	caps, err := ResolveCapabilities(sec.Capabilities, sec.Privileged, in.Host.Capabilities)
	if err != nil {
		return nil, Resolved{}, err
	}
	seccompProfile := sec.Seccomp
	if seccompProfile == nil {
		if seccompProfile, err = ParseLegacyProfile(sec.SeccompProfilePath); err != nil {
			return nil, Resolved{}, fmt.Errorf("seccomp: %w", err)
		}
	}
	appArmorProfile := sec.AppArmor
	if appArmorProfile == nil {
		if appArmorProfile, err = ParseLegacyProfile(sec.AppArmorProfile); err != nil {
			return nil, Resolved{}, fmt.Errorf("apparmor: %w", err)
		}
	}
	apparmor, err := AppArmor(appArmorProfile, sec.Privileged, in.Host.AppArmor, in.Host.AppArmorDefault, in.Host.AppArmorProfileExists)
	if err != nil {
		return nil, Resolved{}, err
	}
	criMounts, err := volumes.ToOCI(in.Mounts, volumes.MountOptions{Lookup: in.Host.MountLookup, RecursiveReadOnly: in.Host.RecursiveReadOnly})
	if err != nil {
		return nil, Resolved{}, err
	}

	u, err := ResolveUser(in.RootfsPath, UserRequest{
		RunAsUser:          sec.RunAsUser,
		RunAsUsername:      sec.RunAsUsername,
		RunAsGroup:         sec.RunAsGroup,
		ImageUser:          in.Image.User,
		SupplementalGroups: sec.SupplementalGroups,
		Policy:             sec.SupplementalGroupsPolicy,
		RunAsNonRoot:       sec.RunAsNonRoot,
	})
	if err != nil {
		return nil, Resolved{}, err
	}
	seccomp, err := Seccomp(seccompProfile, sec.Privileged, caps.Bounding, in.Host.Platform)
	if err != nil {
		return nil, Resolved{}, err
	}
	devices, deviceRules, err := ResolveDevices(in.Devices)
	if err != nil {
		return nil, Resolved{}, err
	}
	cdiEdits, err := CDIDevices(in.Host.CDISpecDirs, in.CDIDevices)
	if err != nil {
		return nil, Resolved{}, err
	}
	var hostDevices []specs.LinuxDevice
	if sec.Privileged {
		dir := in.Host.DevDir
		if dir == "" {
			dir = "/dev"
		}
		if hostDevices, err = HostDevices(dir); err != nil {
			return nil, Resolved{}, fmt.Errorf("list host devices: %w", err)
		}
	}
	hostname := in.Hostname
	if hostname == "" {
		if hostname, err = os.Hostname(); err != nil {
			return nil, Resolved{}, fmt.Errorf("read the node's hostname: %w", err)
		}
	}

	var imageMounts []specs.Mount
	if in.ImageVolumesDir != "" && len(in.Image.Volumes) > 0 {
		if imageMounts, err = volumes.ImageVolumes(ctx, in.RootfsPath, in.Image.Volumes, in.ImageVolumesDir, in.Mounts); err != nil {
			return nil, Resolved{}, err
		}
	}
	podMounts := volumes.PodMounts(in.PodFiles, sec.ReadonlyRootfs, in.Mounts)
	if userns := in.Namespaces.User; userns.Path != "" {
		// The pod's files and the caller's volumes keep their host ids on disk and show them
		// inside through the pod's mapping. The image's VOLUMEs were seeded from the rootfs
		// as the container sees it (its layers are idmapped already), so they are not: a
		// fresh one, made by us as host root, goes to the pod's root.
		podMounts, criMounts = idmapped(podMounts, nil), idmapped(criMounts, imageVolumeDests(in.Mounts))
		for _, m := range imageMounts {
			if err := ownByPodRoot(m.Source, userns); err != nil {
				return nil, Resolved{}, err
			}
		}
	}
	mounts := slices.Concat(podMounts, imageMounts, criMounts)

	env := ProcessEnv(in.Image, hostname, in.TTY, in.Env)
	opts := []Opt{
		WithRootfs(in.RootfsPath, sec.ReadonlyRootfs),
		WithProcessArgs(args...),
		func(s *specs.Spec) error { s.Process.Env = env; return nil },
		WithCwd(cwd),
		WithTerminal(in.TTY),
		WithUser(u.UID, u.GID, u.AdditionalGids),
		WithCapabilities(caps),
		WithNoNewPrivs(sec.NoNewPrivs),
		WithNamespaces(in.Namespaces),
		WithMounts(mounts...),
		WithResources(in.Resources),
		WithDevices(devices, deviceRules),
		WithCgroupsPath(in.CgroupsPath),
		WithAnnotations(in.Annotations),
		WithSysctls(in.Sysctls),
		WithSeccomp(seccomp),
		WithApparmor(apparmor),
	}
	if in.Namespaces.UTS.Mode == ModeContainer {
		opts = append(opts, WithHostname(hostname))
	}
	if len(sec.MaskedPaths) > 0 {
		opts = append(opts, WithMaskedPaths(sec.MaskedPaths))
	}
	if len(sec.ReadonlyPaths) > 0 {
		opts = append(opts, WithReadonlyPaths(sec.ReadonlyPaths))
	}
	if sec.Privileged {
		opts = append(opts, WithPrivileged(caps.Bounding, hostDevices))
	}
	if n := in.Host.NoFileLimit; n > 0 {
		opts = append(opts, WithRlimits(specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: n, Soft: n}))
	}
	if in.OOMScoreAdj != nil {
		adj := *in.OOMScoreAdj
		if floor := in.Host.OOMScoreAdjFloor; floor != nil && adj < *floor {
			log.From(ctx).Debug("oom_score_adj raised to the daemon's own",
				log.ContainerID(in.ID), zap.Int("requested", adj), zap.Int("floor", *floor))
			adj = *floor
		}
		opts = append(opts, WithOOMScoreAdj(adj))
	}

	s, err := Build(Default(), opts...)
	if err != nil {
		return nil, Resolved{}, fmt.Errorf("container %s spec: %w", in.ID, err)
	}
	if err := cdiEdits.Inject(s); err != nil {
		return nil, Resolved{}, fmt.Errorf("container %s spec: %w", in.ID, err)
	}
	return s, Resolved{User: u}, nil
}

// idmapped adds "idmap" to each bind mount but those at skip: libcontainer then mounts it
// through the user namespace the container joins (kernel idmapped mounts), so a file of host
// uid N shows as container uid N. Submounts of an rbind are left as they are: idmapping them
// all would fail on the first filesystem that cannot be idmapped.
func idmapped(mounts []specs.Mount, skip map[string]bool) []specs.Mount {
	out := slices.Clone(mounts)
	for i, m := range out {
		if m.Type == "bind" && !skip[filepath.Clean(m.Destination)] && !slices.Contains(m.Options, "idmap") {
			out[i].Options = append(slices.Clone(m.Options), "idmap")
		}
	}
	return out
}

// ownByPodRoot gives dir to the pod's root when it belongs to the host's (who created it),
// an id the pod's user namespace does not map.
func ownByPodRoot(dir string, u UserNamespace) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("image volume %s: %w", dir, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == 0 && st.Gid == 0 {
		if err := os.Lchown(dir, int(u.RootUID), int(u.RootGID)); err != nil {
			return fmt.Errorf("give image volume %s to the pod's root: %w", dir, err)
		}
	}
	return nil
}

// imageVolumeDests are the container paths of the image volumes (Mount.image) among mounts:
// their overlays are idmapped already, layer by layer (an overlay mount itself cannot be).
func imageVolumeDests(mounts []volumes.Mount) map[string]bool {
	out := map[string]bool{}
	for _, m := range mounts {
		if m.Image != "" {
			out[filepath.Clean(m.ContainerPath)] = true
		}
	}
	return out
}
