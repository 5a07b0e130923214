package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/config"
	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/container/spec"
	"github.com/peapod-runtime/peapod/cri"
	"github.com/peapod-runtime/peapod/images"
	"github.com/peapod-runtime/peapod/internal/version"
	"github.com/peapod-runtime/peapod/metrics"
	"github.com/peapod-runtime/peapod/netns/cni"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/stats"
	"github.com/peapod-runtime/peapod/store"
	"github.com/peapod-runtime/peapod/stream"
)

// gracePeriod bounds how long in-flight RPCs may run after SIGTERM.
const gracePeriod = 10 * time.Second

func newLogger(level string, w io.Writer) (logging, error) {
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return logging{}, fmt.Errorf("log level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	out := zapcore.Lock(zapcore.AddSync(w))
	return logging{
		log:    zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), out, lvl)),
		level:  lvl,
		always: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), out, zapcore.DebugLevel)),
	}, nil
}

// runDaemon serves CRI until ctx is cancelled (SIGTERM/SIGINT). Pods and containers are never
// touched on the way out: they belong to their shims and outlive the daemon. configPath (may
// be empty) is the file SIGHUP reloads the log level from.
func runDaemon(ctx context.Context, cfg config.Config, configPath string, stderr io.Writer) error {
	lg, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	logger := lg.log
	defer func() { _ = logger.Sync() }()
	routeKlog(logger)
	handleSignals(ctx, lg, configPath)

	d := &wiring{cfg: cfg, log: logger}
	defer d.close()
	for _, step := range []func(context.Context) error{
		d.lockRoot, d.openState, d.startContainers, d.startServices, d.startEndpoints,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	d.recoverThenReady(ctx)
	return d.serve(ctx)
}

// wiring is what runDaemon builds, in the order of its steps; each step adds what it opened
// to closers, which close runs in reverse.
type wiring struct {
	cfg     config.Config
	log     *zap.Logger
	closers []func()

	mets       *metrics.Metrics
	db         *store.DB
	network    *cni.Network
	cgroups    *cgroups.Manager
	sandboxes  *sandbox.Manager
	images     *images.Service
	containers *container.Manager
	collector  *stats.Collector
	streams    *stream.Server
	cri        *cri.Server
	grpc       *grpc.Server
	listener   net.Listener
}

func (d *wiring) onClose(f func()) { d.closers = append(d.closers, f) }

// close undoes the steps, last first.
func (d *wiring) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// lockRoot makes the root and state directories and takes the root's lock: one daemon per
// root.
func (d *wiring) lockRoot(context.Context) error {
	for _, dir := range []string{d.cfg.Root, d.cfg.State} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	lock, err := lockRoot(d.cfg.Root)
	if err != nil {
		return err
	}
	d.onClose(lock.release)
	return nil
}

// openState opens the metadata store and the managers that load their records from it: pod
// network, cgroups, pods and images. Metrics are built first: the managers report into them
// through hooks. A nil *metrics.Metrics (metrics off) records nothing.
func (d *wiring) openState(ctx context.Context) error {
	cfg := d.cfg
	var err error
	if cfg.Metrics.Address != "" {
		if d.mets, err = metrics.New(); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	if d.db, err = store.Open(filepath.Join(cfg.Root, "meta.db")); err != nil {
		return err
	}
	d.onClose(func() { _ = d.db.Close() })
	d.network, err = cni.New(cni.Config{
		ConfDir:  cfg.Network.ConfDir,
		BinDirs:  cniBinDirs(cfg.Network.BinDirs),
		CacheDir: filepath.Join(cfg.State, "cni"),
		// Pod network namespaces are born with lo up (netns.NewPinned).
		SkipLoopback: true,
	}, d.log.Named("cni"))
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	d.cgroups, err = cgroups.NewManager(cfg.CgroupDriver, d.log.Named("cgroups"),
		cgroups.WithTolerateMissingHugetlb(cfg.Runtime.TolerateMissingHugetlbController))
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	// Once per start: whether pods may have user namespaces of their own (Status says so).
	userns := true
	if err := container.ProbeUserNamespaces(ctx, cfg.Root); err != nil {
		userns = false
		d.log.Warn("user namespaces are not available for pods", zap.Error(err))
	}
	d.sandboxes, err = sandbox.New(ctx, sandbox.Options{
		DB: d.db, Logger: d.log, StateDir: cfg.State, Network: d.network, Cgroups: d.cgroups,
		UserNamespaces: userns,
	})
	if err != nil {
		return fmt.Errorf("pods: %w", err)
	}
	return d.openImages(ctx)
}

// openImages opens the image store with the configured registries.
func (d *wiring) openImages(ctx context.Context) error {
	cfg := d.cfg
	registries := map[string]images.RegistryConfig{}
	for host, r := range cfg.Registries {
		registries[host] = images.RegistryConfig{Mirrors: r.Mirrors, Insecure: r.Insecure}
	}
	var err error
	d.images, err = images.New(ctx, images.Config{
		Root: cfg.Root, Registries: registries, Pinned: cfg.PinnedImages, OnPull: d.mets.ImagePulled,
		MaxLayerSize: cfg.Images.MaxLayerSize, MaxImageSize: cfg.Images.MaxImageSize,
	}, d.db, d.log.Named("images"))
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	return nil
}

// startContainers probes what the host allows and loads the container records.
func (d *wiring) startContainers(ctx context.Context) error {
	cfg := d.cfg
	host, err := spec.ProbeHost()
	if err != nil {
		return fmt.Errorf("probe host: %w", err)
	}
	if c := cfg.Runtime.ClampOOMScoreAdj; c != nil && !*c {
		host.OOMScoreAdjFloor = nil
	}
	host.CDISpecDirs = cfg.CDI.SpecDirs
	d.containers, err = container.New(ctx, container.Options{
		DB: d.db, Logger: d.log, RootDir: cfg.Root, ShimBinary: shimBinary(cfg.Runtime.ShimBinary),
		Images: d.images, Sandboxes: d.sandboxes, Cgroups: d.cgroups, Host: host,
		PidsLimit: cfg.Runtime.PidsLimit,
		OnExit:    d.mets.ContainerExited, OnShimLost: d.mets.ShimLost,
		ShimTimeout: time.Duration(cfg.Runtime.ShimTimeoutSeconds) * time.Second,
	})
	if err != nil {
		return fmt.Errorf("containers: %w", err)
	}
	d.onClose(d.containers.Close)
	return nil
}

// startServices starts the stats collector and the streaming server and makes the CRI
// server over everything so far.
func (d *wiring) startServices(ctx context.Context) error {
	var err error
	d.collector, err = stats.New(stats.Options{
		Containers: d.containers, Sandboxes: d.sandboxes, Cgroups: d.cgroups, Logger: d.log.Named("stats"),
	})
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	go d.collector.Run(ctx)

	d.streams, err = stream.New(stream.Options{
		Addr:    d.cfg.Streaming.Address,
		Runtime: streamRuntime{containers: d.containers, sandboxes: d.sandboxes, metrics: d.mets},
		Logger:  d.log.Named("stream"),
	})
	if err != nil {
		return err
	}
	d.onClose(func() { _ = d.streams.Close() })
	d.cri = cri.New(cri.Options{
		Config: d.cfg, Logger: d.log, Version: version.String(),
		Network: d.network, Sandboxes: d.sandboxes, Images: d.images, Containers: d.containers,
		Stats: d.collector, Streams: d.streams,
	})
	d.onClose(d.cri.Close)
	go func() {
		if err := d.streams.Serve(); err != nil {
			d.log.Error("streaming server stopped", zap.Error(err))
		}
	}()
	return nil
}

// startEndpoints opens the debug socket, the gRPC server with the metrics endpoint and
// binds the CRI socket; nothing is served on it yet.
func (d *wiring) startEndpoints(context.Context) error {
	cfg := d.cfg
	if cfg.Debug.Address != "" {
		stopDebug, err := serveDebug(cfg.Debug.Address, d.containers.ShimStats, d.log)
		if err != nil {
			return err
		}
		d.onClose(stopDebug)
	}
	// The metrics' interceptors come first: they count the codes the CRI server answers with.
	d.grpc = grpc.NewServer(append(d.mets.ServerOptions(), d.cri.ServerOptions()...)...)
	d.cri.Register(d.grpc)
	if d.mets != nil {
		if err := d.serveMetrics(); err != nil {
			return err
		}
	}
	lis, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	d.listener = lis
	d.onClose(func() { _ = os.Remove(cfg.Listen) })
	return nil
}

// serveMetrics has the metrics follow the managers and serves them.
func (d *wiring) serveMetrics() error {
	d.mets.InitializeGRPC(d.grpc)
	if err := d.mets.Watch(metrics.Sources{
		Pods:         func() map[string]int { return podStates(d.sandboxes) },
		Containers:   func() map[string]int { return containerStates(d.containers) },
		ShimsRunning: d.containers.ShimsRunning,
	}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	stopMetrics, err := serveMetrics(d.cfg.Metrics.Address, d.mets.Handler(), d.cfg.Debug.PprofOnMetrics, d.log)
	if err != nil {
		return err
	}
	d.onClose(stopMetrics)
	return nil
}

// recoverThenReady recovers in the background. Recover, then serve: until every shim is
// asked what happened meanwhile, RPCs answer Unavailable. A shim that does not answer within
// runtime.shim_timeout_seconds holds back only its own pod.
func (d *wiring) recoverThenReady(ctx context.Context) {
	go func() {
		if err := d.containers.Recover(ctx); err != nil {
			d.log.Error("recover containers", zap.Error(err))
		}
		d.cri.SetReady()
		d.log.Info("recovered: serving every RPC")
		notify(d.log, daemon.SdNotifyReady)
	}()
}

// serve answers CRI on the socket until ctx ends, then lets in-flight requests finish for
// up to gracePeriod.
func (d *wiring) serve(ctx context.Context) error {
	cfg := d.cfg
	d.log.Info("peapod serving", zap.String("listen", cfg.Listen), zap.String("root", cfg.Root),
		zap.String("state", cfg.State), zap.Stringer("streaming", d.streams.Addr()), zap.String("version", version.String()))

	served := make(chan error, 1)
	go func() { served <- d.grpc.Serve(d.listener) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	notify(d.log, daemon.SdNotifyStopping)
	d.log.Info("stopping: finishing in-flight requests", zap.Duration("grace", gracePeriod))
	d.cri.Close() // ends the event streams, which would otherwise hold GracefulStop for the grace period
	_ = d.streams.Close()
	stopped := make(chan struct{})
	go func() { d.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(gracePeriod):
		d.log.Warn("grace period over: cancelling in-flight requests")
		d.grpc.Stop()
	}
	// Pod networks torn down after their StopPodSandbox answered: finished now, or by the
	// next daemon from their journals.
	wctx, cancel := context.WithTimeout(context.Background(), gracePeriod)
	defer cancel()
	if err := d.sandboxes.WaitTeardowns(wctx); err != nil {
		d.log.Warn("pod network teardowns left to the next start", zap.Error(err))
	}
	d.log.Info("peapod stopped")
	return nil
}

// podStates counts the pods by state, for the metrics.
func podStates(m *sandbox.Manager) map[string]int {
	out := map[string]int{}
	for _, p := range m.List(sandbox.Filter{}) {
		out[string(p.State)]++
	}
	return out
}

// containerStates counts the containers by state, for the metrics.
func containerStates(m *container.Manager) map[string]int {
	out := map[string]int{}
	for _, c := range m.List(container.Filter{}) {
		out[string(c.State)]++
	}
	return out
}

// shimBinary is the configured peapod-shim, else the one beside the daemon's binary.
func shimBinary(configured string) string {
	if configured != "" {
		return configured
	}
	if exe, err := os.Executable(); err == nil {
		return filepath.Join(filepath.Dir(exe), "peapod-shim")
	}
	return "peapod-shim"
}

// cniBinDirs adds the plugins built with peapod after the configured directories: bin/cni
// beside the binary of a build, ../lib/peapod/cni beside an installed one (make install).
func cniBinDirs(configured []string) []string {
	dirs := append([]string(nil), configured...)
	if exe, err := os.Executable(); err == nil {
		for _, own := range []string{
			filepath.Join(filepath.Dir(exe), "cni"),
			filepath.Join(filepath.Dir(exe), "..", "lib", "peapod", "cni"),
		} {
			if fi, err := os.Stat(own); err == nil && fi.IsDir() {
				dirs = append(dirs, filepath.Clean(own))
			}
		}
	}
	return dirs
}

// listen binds the CRI socket, replacing a stale socket file but never a live daemon's.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is served by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("stat socket: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return lis, nil
}
