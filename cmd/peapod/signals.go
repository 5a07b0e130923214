package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/peapod-runtime/peapod/config"
)

// logging is the daemon's logger with what its signals change: the level SIGHUP reloads,
// and a logger below any level for the stacks SIGUSR1 asks for.
type logging struct {
	log   *zap.Logger
	level zap.AtomicLevel
	// always writes to the same output whatever the level: an operator who sends SIGUSR1
	// wants the stacks even at log_level = "error".
	always *zap.Logger
}

// handleSignals serves SIGUSR1 (every goroutine's stack to the log, what containerd and
// CRI-O operators reach for when a node hangs) and SIGHUP (re-read log_level from the config
// file) until ctx ends. The signals are caught from the moment it returns (their default
// action would end the daemon).
func handleSignals(ctx context.Context, lg logging, configPath string) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGHUP)
	go serveSignals(ctx, ch, lg, configPath)
}

func serveSignals(ctx context.Context, ch chan os.Signal, lg logging, configPath string) {
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-ch:
			switch sig {
			case syscall.SIGUSR1:
				dumpStacks(lg.always)
			case syscall.SIGHUP:
				reloadLevel(lg, configPath)
			}
		}
	}
}

// dumpStacks logs every goroutine's stack as one entry.
func dumpStacks(l *zap.Logger) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	l.Info("goroutine stacks (SIGUSR1)", zap.Int("goroutines", runtime.NumGoroutine()), zap.ByteString("stacks", buf))
}

// reloadLevel applies the config file's log_level; a file with problems changes nothing.
func reloadLevel(lg logging, configPath string) {
	if configPath == "" {
		lg.log.Warn("SIGHUP: no config file to reload the log level from (start with --config)")
		return
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		lg.log.Error("SIGHUP: config not reloaded", zap.String("config", configPath), zap.Error(err))
		return
	}
	lvl, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		lg.log.Error("SIGHUP: config not reloaded", zap.String("config", configPath), zap.Error(err))
		return
	}
	old := lg.level.Level()
	lg.level.SetLevel(lvl)
	lg.always.Info("SIGHUP: log level reloaded", zap.String("config", configPath),
		zap.Stringer("from", old), zap.Stringer("to", lvl))
}

// notify tells systemd (Type=notify) about the daemon's state: READY=1 once recovered,
// STOPPING=1 when it begins to stop. Without NOTIFY_SOCKET it does nothing.
func notify(l *zap.Logger, state string) {
	sent, err := daemon.SdNotify(false, state)
	switch {
	case err != nil:
		l.Warn("sd_notify", zap.String("state", state), zap.Error(err))
	case sent:
		l.Debug("sd_notify sent", zap.String("state", state))
	}
}
