// Package container runs a pod's containers: it builds each one's OCI spec, mounts its
// overlay rootfs, and drives it through the pod's shim (peapod-shim), which owns the
// processes and outlives the daemon. Records are persisted before each change is
// acknowledged and kept in memory, so status and list answers never wait for the kernel.
package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container/spec"
	"github.com/peapod-runtime/peapod/images"
	"github.com/peapod-runtime/peapod/internal/inflight"
	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/internal/table"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/shim"
	shimclient "github.com/peapod-runtime/peapod/shim/client"
	"github.com/peapod-runtime/peapod/store"
)

const (
	bucket         = "containers"
	nameKind       = "container"
	cleanupTimeout = 30 * time.Second
	// killWait bounds the wait for a SIGKILLed container's exit to be reported.
	killWait = 10 * time.Second
)

// Options are a Manager's dependencies.
type Options struct {
	DB     *store.DB
	Logger *zap.Logger
	// RootDir is the daemon's persistent root; containers' writable layers live below it.
	RootDir string
	// ShimBinary is the peapod-shim executable.
	ShimBinary string
	Images     *images.Service
	Sandboxes  *sandbox.Manager
	Cgroups    *cgroups.Manager
	// Host are the node facts every spec needs (spec.ProbeHost).
	Host spec.Host
	// PidsLimit is every container's pids.max (config runtime.pids_limit); 0 means none.
	PidsLimit int64
	// OnExit, if set, is told the reason (ReasonCompleted, ReasonError, ReasonOOMKilled,
	// ReasonStartError) of every exit this daemon records: the metrics' exits by reason.
	OnExit func(reason string)
	// OnShimLost, if set, is called once for each pod shim found gone while it still held
	// containers that had not exited (they are reported exited with the monitor lost).
	OnShimLost func()
	// ShimTimeout bounds each (re)connection to a pod's shim and its recovery at start
	// (config runtime.shim_timeout_seconds); 0 means 5 s.
	ShimTimeout time.Duration
}

// Manager owns every container of this daemon.
type Manager struct {
	opts Options
	db   *store.DB
	log  *zap.Logger
	dir  string
	// trash holds removed containers' dirs until they are unmounted and deleted.
	trash string
	// ctx ends when the daemon stops: exit watchers then stop without touching records.
	ctx    context.Context
	cancel context.CancelFunc

	// ctrs holds every container by id; status and list answers never wait behind a change.
	ctrs     *table.Table[Container, pending]
	inflight inflight.Group[Container]

	shims  *shims
	gates  *podGates
	events events
	warmer *cgroups.MigrationWarmer
}

// entry is one container. Its lock serialises the lifecycle calls on it; the exit watcher
// changes its record through Update only.
type entry = table.Entry[Container, pending]

// pending is what a container's lifecycle calls wait for.
type pending struct {
	// exited is closed once the container's exit is persisted.
	exited chan struct{}
	// created is closed once the shim has created the container (or failed to: createErr
	// then says why; it is written before the close and never after).
	created   chan struct{}
	createErr error
}

// doneChan is a closed channel, for entries with nothing pending.
func doneChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// New loads every container record. Call Recover before serving to learn what happened
// while the daemon was away.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.DB == nil || opts.Images == nil || opts.Sandboxes == nil || opts.Cgroups == nil || opts.RootDir == "" {
		return nil, fmt.Errorf("container manager: missing dependencies: %w", errdefs.ErrInvalidArgument)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ShimTimeout <= 0 {
		opts.ShimTimeout = defaultShimTimeout
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &Manager{
		opts: opts, db: opts.DB, log: opts.Logger, dir: filepath.Join(opts.RootDir, "containers"),
		ctx: mctx, cancel: cancel, gates: newPodGates(),
	}
	m.ctrs = table.New[Container, pending]("container", func(c Container) error {
		if err := m.db.Put(bucket, c.ID, c); err != nil {
			return fmt.Errorf("persist container %s: %w", c.ID, err)
		}
		return nil
	})
	m.shims = newShims(opts.ShimBinary, opts.Logger, opts.ShimTimeout, m.holderExited)
	m.shims.podReady = func(id string) bool {
		pod, err := m.opts.Sandboxes.Get(id)
		return err == nil && pod.State == sandbox.StateReady
	}
	m.warmer = cgroups.NewMigrationWarmer()
	m.trash = filepath.Join(opts.RootDir, "containers.trash")
	for d, mode := range map[string]os.FileMode{m.dir: 0o711, m.trash: 0o700} {
		if err := os.MkdirAll(d, mode); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	go m.emptyTrash()
	err := store.Load(m.db, bucket, func(id string, c Container) error {
		p := pending{exited: make(chan struct{}), created: doneChan()}
		if c.State == StateExited {
			close(p.exited)
		}
		m.ctrs.Add(id, c, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load containers: %w", err)
	}
	return m, nil
}

// ShimsRunning counts the pods' shims the daemon is connected to.
func (m *Manager) ShimsRunning() int { return m.shims.running() }

// Close stops the exit watchers and drops the shim connections; containers keep running.
func (m *Manager) Close() {
	m.cancel()
	m.shims.closeAll()
}

// lock resolves id, waits for the container's background create to end, and takes the
// entry's operation lock, for a change to it; an entry removed while the caller waited is
// NotFound. Call unlock when done.
func (m *Manager) lock(ctx context.Context, id string) (*entry, func(), error) {
	e, err := m.ctrs.Resolve(id)
	if err != nil {
		return nil, nil, err
	}
	select {
	case <-e.X.created:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("container %s is still being created: %w", id, ctx.Err())
	}
	unlock, err := e.Lock()
	if err != nil {
		return nil, nil, err
	}
	if err := m.unknown(e); err != nil {
		unlock()
		return nil, nil, err
	}
	return e, unlock, nil
}

// Get returns a copy of the container with this id or unique prefix.
func (m *Manager) Get(id string) (Container, error) { return m.ctrs.Get(id) }

// List returns copies of the containers that match f, oldest first.
func (m *Manager) List(f Filter) []Container {
	return m.ctrs.List(func(id string, c Container) bool {
		if f.ID != "" && !strings.HasPrefix(id, f.ID) ||
			f.PodID != "" && !strings.HasPrefix(c.PodID, f.PodID) ||
			f.State != "" && c.State != f.State {
			return false
		}
		for k, v := range f.LabelSelector {
			if got, ok := c.Config.Labels[k]; !ok || got != v {
				return false
			}
		}
		return true
	}, func(a, b Container) bool { return a.CreatedAt.Before(b.CreatedAt) })
}

func (m *Manager) containerName(podID string, md Metadata) string {
	return fmt.Sprintf("%s/%s/%d", podID, md.Name, md.Attempt)
}

// Create makes a container in a ready pod, or returns the container an identical earlier
// request made (a kubelet retry). The work finishes even if the caller gives up first.
//
// Create answers once every check is done and the container's rootfs, spec and record
// exist; the shim's part (libcontainer's create of the init, which then waits for Start)
// goes on in the background, the way containerd leaves `runc create` to Start. Start, Stop,
// Remove and UpdateResources wait for it; Get and List never do. When it fails, the
// container is recorded as exited (reason StartError, exit code 128, the cause as message)
// and Start returns the cause.
func (m *Manager) Create(ctx context.Context, podID string, cfg Config) (Container, error) {
	pod, err := m.readyPod(podID)
	if err != nil {
		return Container{}, err
	}
	name := m.containerName(pod.ID, cfg.Metadata)
	existing := inflight.Existing(func() (string, error) { return m.db.Holder(nameKind, name) }, m.ctrs.Exact,
		func(c Container) string { return c.Config.Hash })
	return m.inflight.Do(ctx, "container", name, cfg.Hash, existing, func(wctx context.Context) (Container, error) {
		// Until its record is in the table, the create keeps the pod from being stopped or
		// removed (HoldPod), and checks the pod again once it may go on.
		release, err := m.gates.create(wctx, pod.ID)
		if err != nil {
			return Container{}, err
		}
		defer release()
		pod, err := m.readyPod(pod.ID)
		if err != nil {
			return Container{}, err
		}
		return m.create(wctx, pod, name, cfg)
	})
}

// readyPod returns the pod if it is ready for a new container and its shim answers.
func (m *Manager) readyPod(podID string) (sandbox.Sandbox, error) {
	pod, err := m.opts.Sandboxes.Get(podID)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	if pod.State != sandbox.StateReady {
		why := ""
		if pod.Reason != "" {
			why = " (" + pod.Reason + ")"
		}
		return sandbox.Sandbox{}, fmt.Errorf("pod sandbox %s is not ready%s: %w", pod.ID, why, errdefs.ErrFailedPrecondition)
	}
	if err := m.shims.answering(pod.ID); err != nil {
		return sandbox.Sandbox{}, err
	}
	return pod, nil
}

// HoldPod keeps new containers out of a pod while the caller stops or removes it: creates
// under way end first (their containers are then listed with the others), and creates
// that come later wait, then find the pod changed. Call release once the pod's state is.
func (m *Manager) HoldPod(ctx context.Context, podID string) (release func(), err error) {
	return m.gates.hold(ctx, podID)
}

// undoList runs rollback steps in reverse order.
type undoList []func(context.Context)

func (u *undoList) add(f func(context.Context)) { *u = append(*u, f) }

func (u undoList) run(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for i := len(u) - 1; i >= 0; i-- {
		u[i](cctx)
	}
}

func (m *Manager) create(ctx context.Context, pod sandbox.Sandbox, name string, cfg Config) (_ Container, retErr error) {
	// The create's cgroup migration (in the shim) waits for an RCU grace period unless one
	// ran moments before: start one now, so that it overlaps the work below.
	m.warmer.Warm()
	c := Container{ID: table.NewID(), PodID: pod.ID, Config: cfg, State: StateCreated, CreatedAt: time.Now()}
	ctx = log.With(ctx, log.ContainerID(c.ID), log.PodSandboxID(pod.ID), zap.String(log.KeyContainerName, cfg.Metadata.Name))
	l := log.From(ctx)
	if err := checkUserNamespace(pod, cfg.UserNamespace); err != nil {
		return Container{}, err
	}
	var undo undoList
	defer func() {
		if retErr != nil {
			undo.run(ctx)
		}
	}()

	// The image must be here already: the kubelet pulls first.
	imageID, err := m.opts.Images.Resolve(ctx, cfg.Image)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return Container{}, fmt.Errorf("image %q is not present on this node (pull it first): %w", cfg.Image, errdefs.ErrNotFound)
		}
		return Container{}, fmt.Errorf("image %q: %w", cfg.Image, err)
	}
	img, err := m.opts.Images.Status(ctx, imageID)
	if err != nil {
		return Container{}, fmt.Errorf("image %q: %w", cfg.Image, err)
	}
	c.ImageID = img.ID
	c.Dir = filepath.Join(m.dir, c.ID)
	if c.ImageVolumes, err = m.resolveImageVolumes(ctx, cfg); err != nil {
		return Container{}, err
	}
	// The name and the record in one transaction. The record is persisted (not yet
	// published) from here on, so that a daemon killed mid-create finds it at restart and
	// cleans up after it instead of leaking a rootfs or a hold.
	if err := m.db.Update(func(tx *store.Tx) error {
		if err := tx.Reserve(nameKind, name, c.ID); err != nil {
			return err
		}
		return tx.Put(bucket, c.ID, c)
	}); err != nil {
		return Container{}, fmt.Errorf("reserve container name %q: %w", name, err)
	}
	undo.add(func(context.Context) {
		if err := m.db.Update(func(tx *store.Tx) error {
			if err := tx.Delete(bucket, c.ID); err != nil {
				return err
			}
			return tx.Release(nameKind, name, c.ID)
		}); err != nil {
			l.Error("delete container record", zap.Error(err))
		}
	})
	// The pod's shim (started with its first container) comes up while the rest is done.
	shimc := m.shims.getAsync(m.ctx, pod, createTimeout)
	if err := m.opts.Images.Use(ctx, img.ID, c.ID); err != nil {
		return Container{}, fmt.Errorf("hold image %s: %w", img.ID, err)
	}
	undo.add(func(uctx context.Context) {
		if err := m.opts.Images.Release(uctx, img.ID, c.ID); err != nil {
			l.Error("release image", zap.Error(err))
		}
	})
	layers, err := m.opts.Images.LayerPaths(ctx, img.ID)
	if err != nil {
		return Container{}, fmt.Errorf("image %s layers: %w", img.ID, err)
	}

	undo.add(func(context.Context) {
		if err := removeRootfs(c.Dir); err != nil {
			l.Error("remove rootfs", zap.Error(err))
		}
	})
	rootfs, err := podRootfs(pod, c.Dir, layers)
	if err != nil {
		return Container{}, err
	}
	undo.add(func(uctx context.Context) { _ = m.releaseImageVolumes(uctx, c) })
	mounts, err := m.mountImageVolumes(ctx, c, pod.UserNSPath)
	if err != nil {
		return Container{}, err
	}

	if cfg.LogPath != "" && pod.Config.LogDirectory != "" {
		if c.LogPath, err = logPath(pod.Config.LogDirectory, cfg.LogPath); err != nil {
			return Container{}, err
		}
		c.LogDirectory = pod.Config.LogDirectory
	}

	// Only a container in the pod's shared PID namespace needs the shim now: the shim holds
	// that namespace, and the spec names it.
	var podPidNS string
	if cfg.Spec.Namespaces.PID.Mode == spec.ModePod && pod.Config.Namespaces.PID == sandbox.ModePod {
		r := <-shimc
		if r.err != nil {
			return Container{}, r.err
		}
		podPidNS = r.info.PidNamespace
		shimc = readyShim(r)
	}
	in, err := m.specInput(ctx, pod, c, img, rootfs, podPidNS)
	if err != nil {
		return Container{}, err
	}
	in.Mounts = mounts
	s, resolved, err := spec.Generate(ctx, in)
	if err != nil {
		return Container{}, err
	}
	c.User = resolved.User
	c.StopSignal = stopSignal(cfg.StopSignal, img.Config.StopSignal)
	if c.CgroupPath, err = cgroups.ContainerCgroupPath(m.opts.Cgroups.Driver(), pod.CgroupParent, c.ID); err != nil {
		return Container{}, err
	}

	if err := writeSpec(c.Dir, s); err != nil {
		return Container{}, err
	}
	if err := m.db.Put(bucket, c.ID, c); err != nil {
		return Container{}, fmt.Errorf("persist container: %w", err)
	}
	e := m.ctrs.Add(c.ID, c, pending{exited: make(chan struct{}), created: make(chan struct{})})
	// Everything the kubelet needs answered at Create is answered: the runtime's own create
	// (libcontainer in the shim: the init, its namespaces, cgroups and mounts) goes on in
	// the background, and every later change of this container waits for it (lock).
	go m.finishCreate(e, shimc, shimCreateOptions(c, s, rootfs))
	m.emit(EventCreated, c)
	l.Info("container created", zap.String(log.KeyImage, img.ID))
	return c, nil
}

// createTimeout bounds a container's background create in its shim (and the start of the
// pod's shim).
const createTimeout = 2 * time.Minute

// finishCreate has the pod's shim create the container: it starts the container's init,
// which waits for Start. A failure is recorded as the container's exit (reason StartError)
// and returned by Start; when the daemon stops meanwhile, nothing is recorded and the next
// daemon's Recover asks the shim what became of the container.
func (m *Manager) finishCreate(e *entry, shimc <-chan shimResult, o shim.CreateOptions) {
	defer close(e.X.created)
	l := m.log.With(log.ContainerID(o.ID), log.PodSandboxID(e.Record().PodID))
	ctx, cancel := context.WithTimeout(m.ctx, createTimeout)
	defer cancel()
	r := <-shimc
	err := r.err
	var pid int
	if err == nil {
		var st *shim.ContainerState
		pid, st, err = shimCreate(ctx, r.client, o)
		if st != nil && st.Status == shim.StatusStopped {
			m.recordExit(e, exitFromShim(*st))
			return
		}
	}
	if err == nil {
		e.Publish(func(c *Container) { c.Pid = pid })
		l.Debug("container init created", zap.Int(log.KeyPID, pid))
		return
	}
	if m.ctx.Err() != nil {
		return
	}
	err = fmt.Errorf("create container %s: %w", o.ID, err)
	e.X.createErr = err
	l.Warn("container create failed", zap.Error(err))
	m.recordExit(e, exit{code: startErrorExitCode, reason: ReasonStartError, message: err.Error(), at: time.Now()})
}

// shimCreate has the shim create the container. A create of the same container that a
// previous daemon asked for may still be under way in the shim (AlreadyExists): then its
// outcome is taken, as the shim reports it once done (st).
func shimCreate(ctx context.Context, client *shimclient.Client, o shim.CreateOptions) (pid int, st *shim.ContainerState, err error) {
	for {
		pid, err = client.Create(ctx, o)
		if !errors.Is(err, errdefs.ErrAlreadyExists) {
			return pid, nil, err
		}
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("wait for the shim's earlier create: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
		s, serr := client.State(ctx, o.ID)
		switch {
		case errors.Is(serr, errdefs.ErrNotFound):
			continue // still under way, or it failed: ask again
		case serr != nil:
			return 0, nil, serr
		}
		return s.Pid, &s, nil
	}
}

// logPath joins the kubelet's relative log path onto the pod's log directory and creates
// the file there, refusing (InvalidArgument) any path that leaves the directory, through
// ".." or through a symlink found in it. The shim opens the file the same way.
func logPath(dir, rel string) (string, error) {
	rel = strings.TrimPrefix(rel, "/")
	f, err := shim.OpenLogFile(dir, rel)
	if err != nil {
		return "", fmt.Errorf("container log: %w", err)
	}
	p := f.Name()
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("container log %s: %w", p, err)
	}
	return p, nil
}

// Start runs a created container's process and starts watching for its exit.
func (m *Manager) Start(ctx context.Context, id string) error {
	e, unlock, err := m.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	c := e.Record()
	if e.X.createErr != nil {
		return fmt.Errorf("start container %s: %w", c.ID, e.X.createErr)
	}
	if c.State != StateCreated {
		return fmt.Errorf("container %s is %s, not created: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	ctx = log.With(ctx, log.ContainerID(c.ID), log.PodSandboxID(c.PodID))
	client, err := m.shims.client(ctx, c.PodID)
	if err != nil {
		return err
	}
	// Taken before the call: a process that exits at once must not finish before it started.
	startedAt := time.Now()
	pid, err := client.Start(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("start container %s: %w", c.ID, err)
	}
	started, err := e.Update(func(c *Container) {
		c.State, c.Pid, c.StartedAt = StateRunning, pid, startedAt
	})
	if err != nil {
		return err
	}
	m.emit(EventStarted, started)
	go m.watch(e, client)
	log.From(ctx).Info("container started", zap.Int(log.KeyPID, pid))
	return nil
}
