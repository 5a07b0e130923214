package cri

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/container/spec"
	"github.com/peapod-runtime/peapod/sandbox"
)

// requestCodes are the codes a conversion may refuse a request with: the request's fault,
// or a feature peapod lacks. Anything else (Unknown above all) is a bug in the validation.
var requestCodes = map[codes.Code]bool{codes.InvalidArgument: true, codes.Unimplemented: true}

func seedPodConfig() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u-1", Attempt: 1},
		Hostname:     "web",
		LogDirectory: "/var/log/pods/default_web_u-1",
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
		PortMappings: []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080, HostIp: "127.0.0.1"}},
		Labels:       map[string]string{"app": "web"},
		Annotations:  map[string]string{"a": "b"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/burstable/podu-1",
			Sysctls:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_POD},
			},
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20},
		},
	}
}

func seedContainerRequest() *runtimeapi.CreateContainerRequest {
	return &runtimeapi.CreateContainerRequest{
		PodSandboxId: "0123456789abcdef",
		Config: &runtimeapi.ContainerConfig{
			Metadata:   &runtimeapi.ContainerMetadata{Name: "app", Attempt: 2},
			Image:      &runtimeapi.ImageSpec{Image: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
			Command:    []string{"sh", "-c"},
			Args:       []string{"echo hi"},
			WorkingDir: "/work",
			Envs:       []*runtimeapi.KeyValue{{Key: "A", Value: []byte("1")}},
			Mounts:     []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/tmp/data", Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}},
			Devices:    []*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}},
			Labels:     map[string]string{"io.kubernetes.container.name": "app"},
			LogPath:    "app/2.log",
			StopSignal: runtimeapi.Signal_SIGNAL_SIGTERM,
			Linux: &runtimeapi.LinuxContainerConfig{
				Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 128 << 20, OomScoreAdj: 500, CpusetCpus: "0", HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}}},
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					Capabilities:     &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"}},
					NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "fedcba9876543210"},
					RunAsUser:        &runtimeapi.Int64Value{Value: 1000},
					RunAsGroup:       &runtimeapi.Int64Value{Value: 1000},
					ReadonlyRootfs:   true,
					NoNewPrivs:       true,
					Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
					MaskedPaths:      []string{"/proc/kcore"},
				},
			},
		},
		SandboxConfig: seedPodConfig(),
	}
}

// fuzzConversion seeds f with the wire bytes of seeds and feeds every input that decodes as
// a request (newReq) to convert: it must refuse it with one of requestCodes, never panic, or
// accept it, and then check judges what it made.
func fuzzConversion[Req proto.Message, Out any](f *testing.F, seeds []proto.Message, newReq func() Req, convert func(Req) (Out, error), check func(*testing.T, Req, Out)) {
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := newReq()
		if err := proto.Unmarshal(data, req); err != nil {
			return
		}
		out, err := convert(req)
		if err != nil {
			if c := codeOf(err); !requestCodes[c] {
				t.Fatalf("refused with %v: %v", c, err)
			}
			return
		}
		check(t, req, out)
	})
}

// FuzzContainerConfig: any CreateContainerRequest (as the wire bytes a client may send) is
// converted or refused with InvalidArgument or Unimplemented, never a panic and never a code
// the request cannot be blamed for; what is accepted keeps the request's name, image,
// command and mounts, has valid resources, and the same request always hashes the same.
func FuzzContainerConfig(f *testing.F) {
	s := &Server{}
	seeds := []proto.Message{
		seedContainerRequest(),
		&runtimeapi.CreateContainerRequest{PodSandboxId: "p", Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "a/b"}, Image: &runtimeapi.ImageSpec{Image: "x"}}},
		&runtimeapi.CreateContainerRequest{PodSandboxId: "p", Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "n"}, Image: &runtimeapi.ImageSpec{Image: "x"},
			Linux: &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{CpuQuota: -5, MemoryLimitInBytes: 1}}}},
		&runtimeapi.CreateContainerRequest{},
	}
	newReq := func() *runtimeapi.CreateContainerRequest { return &runtimeapi.CreateContainerRequest{} }
	fuzzConversion(f, seeds, newReq, s.containerConfig, func(t *testing.T, req *runtimeapi.CreateContainerRequest, out container.Config) {
		c := req.GetConfig()
		name := c.GetMetadata().GetName()
		if out.Metadata.Name != name || name == "" || strings.ContainsAny(name, "/\x00") {
			t.Fatalf("accepted name %q as %q", name, out.Metadata.Name)
		}
		if out.Image == "" || out.Image != c.GetImage().GetImage() {
			t.Fatalf("accepted image %q as %q", c.GetImage().GetImage(), out.Image)
		}
		if len(out.Spec.Command) != len(c.GetCommand()) || len(out.Spec.Args) != len(c.GetArgs()) || len(out.Mounts) != len(c.GetMounts()) || len(out.Spec.Env) != len(c.GetEnvs()) {
			t.Fatalf("lost parts of the request: %+v", out)
		}
		if out.Resources != nil {
			if err := out.Resources.Validate(); err != nil {
				t.Fatalf("accepted resources that do not validate: %v", err)
			}
		}
		if out.Spec.Namespaces.PID.Mode == spec.ModeTarget && out.Spec.Namespaces.PID.Path == "" {
			t.Fatal("accepted a TARGET pid namespace without a target")
		}
		again, err := s.containerConfig(proto.Clone(req).(*runtimeapi.CreateContainerRequest))
		if err != nil || again.Hash != out.Hash || out.Hash == "" {
			t.Fatalf("the same request converts differently: hash %q then %q (%v)", out.Hash, again.Hash, err)
		}
	})
}

// FuzzSandboxConfig: any RunPodSandboxRequest is converted or refused with InvalidArgument
// (or Unimplemented); what is accepted has its metadata, a known handler, ports in range and
// no TARGET mode for the pod's own namespaces.
func FuzzSandboxConfig(f *testing.F) {
	s := &Server{}
	seeds := []proto.Message{
		&runtimeapi.RunPodSandboxRequest{Config: seedPodConfig()},
		&runtimeapi.RunPodSandboxRequest{Config: seedPodConfig(), RuntimeHandler: "kata"},
		&runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "a", Namespace: "b", Uid: "../c"}}},
		&runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "a", Namespace: "b", Uid: "c"},
			PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 70000}}}},
		&runtimeapi.RunPodSandboxRequest{},
		wrapperspb.String("not a request"),
	}
	newReq := func() *runtimeapi.RunPodSandboxRequest { return &runtimeapi.RunPodSandboxRequest{} }
	fuzzConversion(f, seeds, newReq, s.sandboxConfig, func(t *testing.T, req *runtimeapi.RunPodSandboxRequest, out sandbox.Config) {
		md := req.GetConfig().GetMetadata()
		for _, v := range []string{md.GetName(), md.GetNamespace(), md.GetUid()} {
			if v == "" || strings.ContainsAny(v, "/\x00") {
				t.Fatalf("accepted metadata %+v", md)
			}
		}
		if out.Metadata.Name != md.GetName() || out.Metadata.UID != md.GetUid() || out.Metadata.Namespace != md.GetNamespace() {
			t.Fatalf("metadata %+v converted to %+v", md, out.Metadata)
		}
		if !slices.Contains(builtinHandlers, out.RuntimeHandler) {
			t.Fatalf("accepted handler %q", out.RuntimeHandler)
		}
		for _, pm := range out.PortMappings {
			if pm.ContainerPort <= 0 || pm.ContainerPort > 65535 || pm.HostPort < 0 || pm.HostPort > 65535 {
				t.Fatalf("accepted port mapping %+v", pm)
			}
		}
		ns := req.GetConfig().GetLinux().GetSecurityContext().GetNamespaceOptions()
		if ns.GetNetwork() == runtimeapi.NamespaceMode_TARGET || ns.GetIpc() == runtimeapi.NamespaceMode_TARGET {
			t.Fatal("accepted a TARGET network or IPC namespace for a pod")
		}
		if out.Resources != nil {
			if err := out.Resources.Validate(); err != nil {
				t.Fatalf("accepted resources that do not validate: %v", err)
			}
		}
	})
}
