package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
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
	"github.com/peapod-runtime/peapod/netns/cni"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/stats"
	"github.com/peapod-runtime/peapod/store"
	"github.com/peapod-runtime/peapod/stream"
)

// gracePeriod bounds how long in-flight RPCs may run after SIGTERM.
const gracePeriod = 10 * time.Second

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// runDaemon serves CRI until ctx is cancelled (SIGTERM/SIGINT). Pods and containers are never
// touched on the way out: they belong to their shims and outlive the daemon.
func runDaemon(ctx context.Context, cfg config.Config, stderr io.Writer) error {
	logger, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	routeKlog(logger)

	if err := checkSocketPaths(cfg); err != nil {
		return err
	}
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
	imageService, err := images.New(ctx, images.Config{Root: cfg.Root, Registries: registries, Pinned: cfg.PinnedImages}, db, logger.Named("images"))
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
	containers, err := container.New(ctx, container.Options{
		DB: db, Logger: logger, RootDir: cfg.Root, ShimBinary: shimBinary(cfg.Runtime.ShimBinary),
		Images: imageService, Sandboxes: sandboxes, Cgroups: cgroupManager, Host: host,
		PidsLimit: cfg.Runtime.PidsLimit,
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
		Runtime: streamRuntime{containers: containers, sandboxes: sandboxes},
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
	g := grpc.NewServer(srv.ServerOptions()...)
	srv.Register(g)

	lis, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Listen)

	// Recover, then serve: until every shim is asked what happened meanwhile, RPCs answer
	// Unavailable.
	go func() {
		if err := containers.Recover(ctx); err != nil {
			logger.Error("recover containers", zap.Error(err))
		}
		srv.SetReady()
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

// checkSocketPaths refuses a configuration whose unix sockets would not fit sun_path: the
// CRI and debug sockets (config.Validate checks those) and the two sockets of every pod's
// shim, <state>/pods/<64-hex pod id>/{shim,stream}.sock, whose length grows with the state
// directory. Found only when a pod's shim first binds or is dialled, a too long path
// would break every pod; here it stops the daemon before anything is created.
func checkSocketPaths(cfg config.Config) error {
	if err := cfg.Validate(); err != nil { // the CRI and debug sockets among the rest
		return err
	}
	// The longest of a pod's sockets, for the longest pod id.
	pod := sandbox.PodDir(cfg.State, strings.Repeat("f", sandbox.IDLength))
	p := shim.SocketPath(pod)
	if s := shim.StreamSocketPath(pod); len(s) > len(p) {
		p = s
	}
	if over := len(p) - config.MaxSocketPath; over > 0 {
		return fmt.Errorf("key \"state\": state directory %s is too long: a pod's shim socket, such as %s, would be %d bytes, over the %d-byte limit of unix socket paths; choose a state directory of at most %d bytes: %w",
			cfg.State, p, len(p), config.MaxSocketPath, len(filepath.Clean(cfg.State))-over, errdefs.ErrInvalidArgument)
	}
	return nil
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

// cniBinDirs adds the plugins built with peapod (bin/cni beside the binary) after the
// configured directories.
func cniBinDirs(configured []string) []string {
	dirs := append([]string(nil), configured...)
	if exe, err := os.Executable(); err == nil {
		own := filepath.Join(filepath.Dir(exe), "cni")
		if fi, err := os.Stat(own); err == nil && fi.IsDir() {
			dirs = append(dirs, own)
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
