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

	for _, dir := range []string{cfg.Root, cfg.State} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	lock, err := lockRoot(cfg.Root)
	if err != nil {
		return err
	}
	defer lock.release()

	// Metrics are built first: the managers below report into them through hooks. A nil
	// *metrics.Metrics (metrics off) records nothing.
	var mets *metrics.Metrics
	if cfg.Metrics.Address != "" {
		if mets, err = metrics.New(); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}

	db, err := store.Open(filepath.Join(cfg.Root, "meta.db"))
	if err != nil {
		return err
	}
	defer db.Close()

	network, err := cni.New(cni.Config{
		ConfDir:  cfg.Network.ConfDir,
		BinDirs:  cniBinDirs(cfg.Network.BinDirs),
		CacheDir: filepath.Join(cfg.State, "cni"),
		// Pod network namespaces are born with lo up (netns.NewPinned).
		SkipLoopback: true,
	}, logger.Named("cni"))
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	cgroupManager, err := cgroups.NewManager(cfg.CgroupDriver, logger.Named("cgroups"),
		cgroups.WithTolerateMissingHugetlb(cfg.Runtime.TolerateMissingHugetlbController))
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	sandboxes, err := sandbox.New(ctx, sandbox.Options{
		DB: db, Logger: logger, StateDir: cfg.State, Network: network, Cgroups: cgroupManager,
	})
	if err != nil {
		return fmt.Errorf("pods: %w", err)
	}

	registries := map[string]images.RegistryConfig{}
	for host, r := range cfg.Registries {
		registries[host] = images.RegistryConfig{Mirrors: r.Mirrors, Insecure: r.Insecure}
	}
	imageService, err := images.New(ctx, images.Config{
		Root: cfg.Root, Registries: registries, Pinned: cfg.PinnedImages, OnPull: mets.ImagePulled,
		MaxLayerSize: cfg.Images.MaxLayerSize, MaxImageSize: cfg.Images.MaxImageSize,
	}, db, logger.Named("images"))
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}

	host, err := spec.ProbeHost()
	if err != nil {
		return fmt.Errorf("probe host: %w", err)
	}
	if c := cfg.Runtime.ClampOOMScoreAdj; c != nil && !*c {
		host.OOMScoreAdjFloor = nil
	}
	host.CDISpecDirs = cfg.CDI.SpecDirs
	containers, err := container.New(ctx, container.Options{
		DB: db, Logger: logger, RootDir: cfg.Root, ShimBinary: shimBinary(cfg.Runtime.ShimBinary),
		Images: imageService, Sandboxes: sandboxes, Cgroups: cgroupManager, Host: host,
		PidsLimit: cfg.Runtime.PidsLimit,
		OnExit:    mets.ContainerExited, OnShimLost: mets.ShimLost,
		ShimTimeout: time.Duration(cfg.Runtime.ShimTimeoutSeconds) * time.Second,
	})
	if err != nil {
		return fmt.Errorf("containers: %w", err)
	}
	defer containers.Close()

	collector, err := stats.New(stats.Options{
		Containers: containers, Sandboxes: sandboxes, Cgroups: cgroupManager, Logger: logger.Named("stats"),
	})
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	go collector.Run(ctx)

	streams, err := stream.New(stream.Options{
		Addr:    cfg.Streaming.Address,
		Runtime: streamRuntime{containers: containers, sandboxes: sandboxes, metrics: mets},
		Logger:  logger.Named("stream"),
	})
	if err != nil {
		return err
	}
	defer streams.Close()
	srv := cri.New(cri.Options{
		Config: cfg, DB: db, Logger: logger, Version: version.String(),
		Network: network, Sandboxes: sandboxes, Images: imageService, Containers: containers,
		Stats: collector, Streams: streams,
	})
	defer srv.Close()
	go func() {
		if err := streams.Serve(); err != nil {
			logger.Error("streaming server stopped", zap.Error(err))
		}
	}()
	if cfg.Debug.Address != "" {
		stopDebug, err := serveDebug(cfg.Debug.Address, logger)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	// The metrics' interceptors come first: they count the codes the CRI server answers with.
	g := grpc.NewServer(append(mets.ServerOptions(), srv.ServerOptions()...)...)
	srv.Register(g)
	if mets != nil {
		mets.InitializeGRPC(g)
		if err := mets.Watch(metrics.Sources{
			Pods:         func() map[string]int { return podStates(sandboxes) },
			Containers:   func() map[string]int { return containerStates(containers) },
			ShimsRunning: containers.ShimsRunning,
		}); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		stopMetrics, err := serveMetrics(cfg.Metrics.Address, mets.Handler(), cfg.Debug.PprofOnMetrics, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	lis, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Listen)

	// Recover, then serve: until every shim is asked what happened meanwhile, RPCs answer
	// Unavailable. A shim that does not answer within runtime.shim_timeout_seconds holds
	// back only its own pod.
	go func() {
		if err := containers.Recover(ctx); err != nil {
			logger.Error("recover containers", zap.Error(err))
		}
		srv.SetReady()
		logger.Info("recovered: serving every RPC")
		notify(logger, daemon.SdNotifyReady)
	}()
	logger.Info("peapod serving", zap.String("listen", cfg.Listen), zap.String("root", cfg.Root),
		zap.String("state", cfg.State), zap.Stringer("streaming", streams.Addr()), zap.String("version", version.String()))

	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	notify(logger, daemon.SdNotifyStopping)
	logger.Info("stopping: finishing in-flight requests", zap.Duration("grace", gracePeriod))
	srv.Close() // ends the event streams, which would otherwise hold GracefulStop for the grace period
	streams.Close()
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(gracePeriod):
		logger.Warn("grace period over: cancelling in-flight requests")
		g.Stop()
	}
	logger.Info("peapod stopped")
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
