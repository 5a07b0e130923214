package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/images"
	"github.com/peapod-runtime/peapod/internal/idprefix"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/stats"
	"github.com/peapod-runtime/peapod/stream"
)

// The fakes below stand in for the domain packages in the handlers' unit tests. They keep
// just enough state for a handler's answer to depend on it (a removed pod is gone, a stopped
// container is exited) and record every call, so a test can see what a handler asked for and
// that a refused request asked for nothing. fail makes one method answer an error.

// recorder is the call log and the injected errors, shared by one fixture's fakes.
type recorder struct {
	mu    sync.Mutex
	calls []string
	errs  map[string]error
}

// call logs "Kind.Method arg..." and answers the error injected for "Kind.Method", if any.
func (r *recorder) call(method string, args ...any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	entry := method
	for _, a := range args {
		entry += " " + fmt.Sprint(a)
	}
	r.calls = append(r.calls, entry)
	return r.errs[method]
}

func (r *recorder) fail(method string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.errs == nil {
		r.errs = map[string]error{}
	}
	r.errs[method] = err
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// fakeSandboxes is sandbox.Manager: pods by id, a name reservation per pod.
type fakeSandboxes struct {
	rec     *recorder
	mu      sync.Mutex
	pods    map[string]*sandbox.Sandbox
	podCIDR string
	// updated is what UpdateResources last applied, by pod.
	updated map[string]cgroups.Resources
	// userns is what UserNamespacesSupported answers (a fact probed at start, not a call).
	userns bool
}

func (f *fakeSandboxes) add(sb sandbox.Sandbox) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods[sb.ID] = &sb
}

func (f *fakeSandboxes) resolve(id string) (*sandbox.Sandbox, error) {
	return idprefix.Lookup(f.pods, id, "pod sandbox")
}

func (f *fakeSandboxes) Run(_ context.Context, cfg sandbox.Config) (sandbox.Sandbox, error) {
	if err := f.rec.call("Sandboxes.Run", cfg.Name()); err != nil {
		return sandbox.Sandbox{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sb := range f.pods {
		if sb.Config.Name() != cfg.Name() {
			continue
		}
		if sb.Config.Hash != cfg.Hash {
			return sandbox.Sandbox{}, fmt.Errorf("pod name %s is reserved for pod %s: %w", cfg.Name(), sb.ID, errdefs.ErrAlreadyExists)
		}
		return *sb, nil
	}
	sb := &sandbox.Sandbox{ID: fmt.Sprintf("pod%d", len(f.pods)+1), Config: cfg, State: sandbox.StateReady, CreatedAt: time.Unix(1, 0)}
	f.pods[sb.ID] = sb
	return *sb, nil
}

func (f *fakeSandboxes) Get(id string) (sandbox.Sandbox, error) {
	if err := f.rec.call("Sandboxes.Get", id); err != nil {
		return sandbox.Sandbox{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.resolve(id)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	return *sb, nil
}

func (f *fakeSandboxes) List(flt sandbox.Filter) []sandbox.Sandbox {
	_ = f.rec.call("Sandboxes.List", fmt.Sprintf("%+v", flt))
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sandbox.Sandbox
	for id, sb := range f.pods {
		if strings.HasPrefix(id, flt.ID) && (flt.State == "" || sb.State == flt.State) && labelsMatch(sb.Config.Labels, flt.LabelSelector) {
			out = append(out, *sb)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (f *fakeSandboxes) Stop(_ context.Context, id string) error {
	if err := f.rec.call("Sandboxes.Stop", id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.resolve(id)
	if err != nil {
		return err
	}
	sb.State = sandbox.StateNotReady
	return nil
}

func (f *fakeSandboxes) Remove(_ context.Context, id string) error {
	if err := f.rec.call("Sandboxes.Remove", id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.resolve(id)
	if err != nil {
		return err
	}
	delete(f.pods, sb.ID)
	return nil
}

func (f *fakeSandboxes) UpdateResources(_ context.Context, id string, res cgroups.Resources) error {
	if err := f.rec.call("Sandboxes.UpdateResources", id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.resolve(id)
	if err != nil {
		return err
	}
	f.updated[sb.ID] = res
	return nil
}

func (f *fakeSandboxes) SetPodCIDR(cidr string) error {
	if err := f.rec.call("Sandboxes.SetPodCIDR", cidr); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.podCIDR = cidr
	return nil
}

func (f *fakeSandboxes) UserNamespacesSupported() bool { return f.userns }

func (f *fakeSandboxes) PodCIDR() (string, error) {
	if err := f.rec.call("Sandboxes.PodCIDR"); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.podCIDR, nil
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// fakeContainers is container.Manager. Its events channel is the one the Server's event hub
// reads; send puts an event on it.
type fakeContainers struct {
	rec    *recorder
	pods   *fakeSandboxes
	events chan container.Event
	mu     sync.Mutex
	ctrs   map[string]*container.Container
	// updated is what UpdateResources last applied, by container.
	updated map[string]*cgroups.Resources
	// exec is what ExecSync answers.
	exec container.ExecSyncResult
}

func (f *fakeContainers) add(c container.Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctrs[c.ID] = &c
}

func (f *fakeContainers) resolve(id string) (*container.Container, error) {
	return idprefix.Lookup(f.ctrs, id, "container")
}

func (f *fakeContainers) Subscribe(int) (<-chan container.Event, func()) {
	var once sync.Once
	return f.events, func() { once.Do(func() { close(f.events) }) }
}

func (f *fakeContainers) Create(_ context.Context, podID string, cfg container.Config) (container.Container, error) {
	if err := f.rec.call("Containers.Create", podID, cfg.Metadata.Name); err != nil {
		return container.Container{}, err
	}
	pod, err := f.pods.Get(podID)
	if err != nil {
		return container.Container{}, err
	}
	if pod.State != sandbox.StateReady {
		return container.Container{}, fmt.Errorf("pod sandbox %s is not ready: %w", pod.ID, errdefs.ErrFailedPrecondition)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.ctrs {
		if c.PodID != pod.ID || c.Config.Metadata != cfg.Metadata {
			continue
		}
		if c.Config.Hash != cfg.Hash {
			return container.Container{}, fmt.Errorf("container name %s is reserved for %s: %w", cfg.Metadata.Name, c.ID, errdefs.ErrAlreadyExists)
		}
		return *c, nil
	}
	c := &container.Container{ID: fmt.Sprintf("ctr%d", len(f.ctrs)+1), PodID: pod.ID, Config: cfg,
		State: container.StateCreated, CreatedAt: time.Unix(2, 0)}
	f.ctrs[c.ID] = c
	return *c, nil
}

// change applies fn to the container id names, under the lock.
func (f *fakeContainers) change(method, id string, fn func(*container.Container) error, args ...any) error {
	if err := f.rec.call(method, append([]any{id}, args...)...); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.resolve(id)
	if err != nil {
		return err
	}
	return fn(c)
}

func (f *fakeContainers) Start(_ context.Context, id string) error {
	return f.change("Containers.Start", id, func(c *container.Container) error {
		if c.State != container.StateCreated {
			return fmt.Errorf("container %s is %s, not created: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
		}
		c.State = container.StateRunning
		return nil
	})
}

func (f *fakeContainers) Stop(_ context.Context, id string, timeout time.Duration) error {
	return f.change("Containers.Stop", id, func(c *container.Container) error {
		c.State = container.StateExited
		return nil
	}, timeout)
}

func (f *fakeContainers) Remove(_ context.Context, id string) error {
	return f.change("Containers.Remove", id, func(c *container.Container) error {
		delete(f.ctrs, c.ID)
		return nil
	})
}

func (f *fakeContainers) HoldPod(_ context.Context, podID string) (func(), error) {
	if err := f.rec.call("Containers.HoldPod", podID); err != nil {
		return nil, err
	}
	return func() { _ = f.rec.call("Containers.HoldPod.release", podID) }, nil
}

func (f *fakeContainers) StopPod(_ context.Context, podID string) error {
	if err := f.rec.call("Containers.StopPod", podID); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.ctrs {
		if c.PodID == podID {
			c.State = container.StateExited
		}
	}
	return nil
}

func (f *fakeContainers) RemovePod(_ context.Context, podID string) error {
	if err := f.rec.call("Containers.RemovePod", podID); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, c := range f.ctrs {
		if c.PodID == podID {
			delete(f.ctrs, id)
		}
	}
	return nil
}

func (f *fakeContainers) Get(id string) (container.Container, error) {
	var out container.Container
	err := f.change("Containers.Get", id, func(c *container.Container) error { out = *c; return nil })
	return out, err
}

func (f *fakeContainers) List(flt container.Filter) []container.Container {
	_ = f.rec.call("Containers.List", fmt.Sprintf("%+v", flt))
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []container.Container
	for id, c := range f.ctrs {
		if strings.HasPrefix(id, flt.ID) && strings.HasPrefix(c.PodID, flt.PodID) &&
			(flt.State == "" || c.State == flt.State) && labelsMatch(c.Config.Labels, flt.LabelSelector) {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (f *fakeContainers) Spec(id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := f.change("Containers.Spec", id, func(c *container.Container) error {
		out = json.RawMessage(`{"ociVersion":"1.2.1","hostname":"` + c.ID + `"}`)
		return nil
	})
	return out, err
}

func (f *fakeContainers) running(c *container.Container) error {
	if c.State != container.StateRunning {
		return fmt.Errorf("container %s is %s, not running: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func (f *fakeContainers) CheckRunning(id string) (container.Container, error) {
	var out container.Container
	err := f.change("Containers.CheckRunning", id, func(c *container.Container) error {
		out = *c
		return f.running(c)
	})
	if err != nil {
		return container.Container{}, err
	}
	return out, nil
}

func (f *fakeContainers) ExecSync(_ context.Context, id string, cmd []string, timeout time.Duration) (container.ExecSyncResult, error) {
	err := f.change("Containers.ExecSync", id, f.running, strings.Join(cmd, " "), timeout)
	if err != nil {
		return container.ExecSyncResult{}, err
	}
	return f.exec, nil
}

func (f *fakeContainers) ReopenLog(_ context.Context, id string) error {
	return f.change("Containers.ReopenLog", id, f.running)
}

func (f *fakeContainers) Checkpoint(_ context.Context, id, location string) error {
	return f.change("Containers.Checkpoint", id, f.running, location)
}

func (f *fakeContainers) UpdateResources(_ context.Context, id string, res *cgroups.Resources) error {
	return f.change("Containers.UpdateResources", id, func(c *container.Container) error {
		f.updated[c.ID] = res
		return nil
	})
}

// fakeImages is images.Service: images by reference; Pull stores the reference it is given.
type fakeImages struct {
	rec  *recorder
	mu   sync.Mutex
	imgs map[string]images.Image
	auth images.Auth
}

func (f *fakeImages) Pull(_ context.Context, ref string, auth images.Auth) (images.Image, error) {
	if err := f.rec.call("Images.Pull", ref); err != nil {
		return images.Image{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = auth
	img := images.Image{ID: "sha256:" + strings.Repeat("a", 64), RepoTags: []string{ref}, Size: 42}
	f.imgs[ref] = img
	return img, nil
}

func (f *fakeImages) Status(_ context.Context, ref string) (*images.Image, error) {
	if err := f.rec.call("Images.Status", ref); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.imgs[ref]
	if !ok {
		return nil, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	}
	return &img, nil
}

func (f *fakeImages) List(_ context.Context, filter string) ([]images.Image, error) {
	if err := f.rec.call("Images.List", filter); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var refs []string
	for ref := range f.imgs {
		if filter == "" || ref == filter {
			refs = append(refs, ref)
		}
	}
	sort.Strings(refs)
	var out []images.Image
	for _, ref := range refs {
		out = append(out, f.imgs[ref])
	}
	return out, nil
}

func (f *fakeImages) Remove(_ context.Context, ref string) error {
	if err := f.rec.call("Images.Remove", ref); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.imgs[ref]; !ok {
		return fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	}
	delete(f.imgs, ref)
	return nil
}

func (f *fakeImages) FsInfo(context.Context) (images.FsUsage, error) {
	if err := f.rec.call("Images.FsInfo"); err != nil {
		return images.FsUsage{}, err
	}
	return images.FsUsage{Mountpoint: "/var/lib/peapod/images", UsedBytes: 4096, InodesUsed: 7, Timestamp: time.Unix(3, 0)}, nil
}

// fakeStats is stats.Collector: samples by id.
type fakeStats struct {
	rec  *recorder
	pods map[string]stats.Pod
	ctrs map[string]stats.Container
}

func (f *fakeStats) Pod(id string) (stats.Pod, bool) {
	_ = f.rec.call("Stats.Pod", id)
	p, ok := f.pods[id]
	return p, ok
}

func (f *fakeStats) PodNow(sb sandbox.Sandbox) (stats.Pod, bool) {
	_ = f.rec.call("Stats.PodNow", sb.ID)
	p, ok := f.pods[sb.ID]
	return p, ok
}

func (f *fakeStats) ContainerNow(c container.Container) (stats.Container, bool) {
	_ = f.rec.call("Stats.ContainerNow", c.ID)
	s, ok := f.ctrs[c.ID]
	return s, ok
}

// fakeStreams is stream.Server: a URL naming what it was handed out for.
type fakeStreams struct {
	rec *recorder
}

func (f *fakeStreams) ExecURL(r stream.ExecRequest) (string, error) {
	if err := f.rec.call("Streams.ExecURL", r.ContainerID, strings.Join(r.Cmd, " "), r.Tty, r.Stdin, r.Stdout, r.Stderr); err != nil {
		return "", err
	}
	return "http://127.0.0.1:10010/exec/" + r.ContainerID, nil
}

func (f *fakeStreams) AttachURL(r stream.AttachRequest) (string, error) {
	if err := f.rec.call("Streams.AttachURL", r.ContainerID, r.Tty, r.Stdin, r.Stdout, r.Stderr); err != nil {
		return "", err
	}
	return "http://127.0.0.1:10010/attach/" + r.ContainerID, nil
}

func (f *fakeStreams) PortForwardURL(podID string, ports []int32) (string, error) {
	if err := f.rec.call("Streams.PortForwardURL", podID, ports); err != nil {
		return "", err
	}
	return "http://127.0.0.1:10010/portforward/" + podID, nil
}

// fakeNetwork is cni.Network's readiness.
type fakeNetwork struct{ err error }

func (f fakeNetwork) Status() error { return f.err }

// fixture is one Server over fakes, served on an in-memory listener through the same
// interceptors as the daemon's, with clients of both services.
type fixture struct {
	rec     *recorder
	pods    *fakeSandboxes
	ctrs    *fakeContainers
	imgs    *fakeImages
	stats   *fakeStats
	streams *fakeStreams
	// opts may be changed before start (a case's setup): a nil Stats or Streams, no Network.
	opts Options
	// chunks are the item counts of the messages of the last stream read (recvAll).
	chunks []int

	srv  *Server
	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
	img  runtimeapi.ImageServiceClient
}

func newFixture() *fixture {
	rec := &recorder{}
	pods := &fakeSandboxes{rec: rec, pods: map[string]*sandbox.Sandbox{}, updated: map[string]cgroups.Resources{}}
	f := &fixture{
		rec:  rec,
		pods: pods,
		ctrs: &fakeContainers{rec: rec, pods: pods, events: make(chan container.Event, 16),
			ctrs: map[string]*container.Container{}, updated: map[string]*cgroups.Resources{}},
		imgs:    &fakeImages{rec: rec, imgs: map[string]images.Image{}},
		stats:   &fakeStats{rec: rec, pods: map[string]stats.Pod{}, ctrs: map[string]stats.Container{}},
		streams: &fakeStreams{rec: rec},
	}
	f.opts = Options{Version: "0.2.0-test", Network: fakeNetwork{}, Sandboxes: f.pods, Containers: f.ctrs,
		Images: f.imgs, Stats: f.stats, Streams: f.streams}
	return f
}

// start serves f.opts; ready says whether recovery is over (SetReady).
func (f *fixture) start(t *testing.T, ready bool) {
	t.Helper()
	f.srv = New(f.opts)
	if ready {
		f.srv.SetReady()
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer(f.srv.ServerOptions()...)
	f.srv.Register(g)
	served := make(chan struct{})
	go func() { defer close(served); _ = g.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		f.srv.Close()
		g.Stop()
		<-served
	})
	f.conn = conn
	f.rt = runtimeapi.NewRuntimeServiceClient(conn)
	f.img = runtimeapi.NewImageServiceClient(conn)
}

// A pod and container the cases share: ready pod "pod1" with running "ctr1" and created
// "ctr2", and "pod1x", whose id has pod1's as a prefix, with "ctr9".
func (f *fixture) addPodWithContainers() {
	md := sandbox.Metadata{Name: "web", Namespace: "default", UID: "uid-1"}
	f.pods.add(sandbox.Sandbox{ID: "pod1", State: sandbox.StateReady, CreatedAt: time.Unix(1, 0),
		Config: sandbox.Config{Metadata: md, Labels: map[string]string{"app": "web"}}, IPs: []string{"10.89.0.5", "fd00::5"}})
	f.pods.add(sandbox.Sandbox{ID: "pod1x", State: sandbox.StateNotReady, CreatedAt: time.Unix(1, 0),
		Config: sandbox.Config{Metadata: sandbox.Metadata{Name: "db", Namespace: "default", UID: "uid-2"}}})
	f.ctrs.add(container.Container{ID: "ctr1", PodID: "pod1", State: container.StateRunning, CreatedAt: time.Unix(2, 0),
		Config: container.Config{Metadata: container.Metadata{Name: "app"}, Image: "busybox", Labels: map[string]string{"tier": "front"}}})
	f.ctrs.add(container.Container{ID: "ctr2", PodID: "pod1", State: container.StateCreated, CreatedAt: time.Unix(2, 0),
		Config: container.Config{Metadata: container.Metadata{Name: "side"}, Image: "busybox"}})
	f.ctrs.add(container.Container{ID: "ctr9", PodID: "pod1x", State: container.StateExited, CreatedAt: time.Unix(2, 0),
		Config: container.Config{Metadata: container.Metadata{Name: "db"}, Image: "busybox"}})
}
