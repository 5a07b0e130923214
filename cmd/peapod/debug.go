package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/container"
)

// serveDebug serves Go's pprof handlers on the unix socket at path (0600): goroutine and
// heap profiles of a live daemon, for operators and for the leak tests; and at
// /debug/shims/<pod-id> the figures of a pod's shim (shimStats), so that those tests need
// not speak the shim's protocol. stop closes it.
func serveDebug(path string, shimStats func(context.Context, string) (container.ShimStats, error), l *zap.Logger) (stop func(), err error) {
	lis, err := listen(path)
	if err != nil {
		return nil, fmt.Errorf("debug endpoint: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("debug endpoint: %w", err)
	}
	mux := http.NewServeMux()
	handlePprof(mux)
	mux.HandleFunc("/debug/shims/{pod}", func(w http.ResponseWriter, r *http.Request) {
		st, err := shimStats(r.Context(), r.PathValue("pod"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.Warn("debug endpoint stopped", zap.Error(err))
		}
	}()
	l.Info("debug endpoint serving", zap.String("socket", path))
	return func() {
		srv.Close()
		os.Remove(path)
	}, nil
}

// handlePprof adds Go's pprof handlers under /debug/pprof/.
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// serveMetrics serves Prometheus text at /metrics on the TCP address addr (config
// metrics.address), and pprof under /debug/pprof/ when withPprof (debug.pprof_on_metrics).
// stop closes it.
func serveMetrics(addr string, metrics http.Handler, withPprof bool, l *zap.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	if withPprof {
		handlePprof(mux)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.Warn("metrics endpoint stopped", zap.Error(err))
		}
	}()
	l.Info("metrics endpoint serving", zap.Stringer("address", lis.Addr()), zap.Bool("pprof", withPprof))
	return func() { srv.Close() }, nil
}
