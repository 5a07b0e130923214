package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// logWindow is how long the stuck-attach scenario watches the log grow, with and without a
// stuck client.
const logWindow = 2 * time.Second

// stuckWriter blocks its first Write until release is closed.
type stuckWriter struct {
	stuck, release chan struct{}
	once           sync.Once
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.stuck)
		<-w.release
	})
	return len(p), nil
}

// stuckAttachScenario: a container writes its output as fast as it can; the rate its log
// grows at is measured with no client, then with an attached client that reads nothing. A
// client that does not read must not slow the container or its log (the shim's tests check
// that the log grows while such a client hangs; this is by how much).
func stuckAttachScenario() scenario {
	b := &ctrBench{name: "stuck-attach"} // names its pod: no "/"
	var logDir, logFile, id string
	var noClient, stuck float64
	var w *stuckWriter
	var cancel context.CancelFunc
	var attachDone chan error
	return scenario{
		name: "Log/while-attach-stuck", runs: 1, noWarmup: true,
		setup: func(ctx context.Context, e *env) error {
			if err := pullBusybox(ctx, e); err != nil {
				return err
			}
			var err error
			if logDir, err = os.MkdirTemp("", "bench-logs-"); err != nil {
				return err
			}
			b.podCfg = benchPodConfig(b.name, 0)
			b.podCfg.LogDirectory = logDir
			if b.podID, err = e.runtime.RunPodSandbox(ctx, b.podCfg, ""); err != nil {
				return err
			}
			cfg := benchContainer("fast", "sh", "-c", "while true; do head -c 100000 /dev/zero | tr '\\0' a; echo; sleep 0.02; done")
			cfg.LogPath = "fast.log"
			logFile = filepath.Join(logDir, cfg.LogPath)
			if id, err = e.runtime.CreateContainer(ctx, b.podID, cfg, b.podCfg); err != nil {
				return err
			}
			if err := e.runtime.StartContainer(ctx, id); err != nil {
				return err
			}
			noClient, err = logRate(logFile)
			return err
		},
		run: func(ctx context.Context, e *env, _ int) error {
			resp, err := e.runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdout: true})
			if err != nil {
				return err
			}
			u, err := url.Parse(resp.GetUrl())
			if err != nil {
				return err
			}
			ex, err := remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, u)
			if err != nil {
				return err
			}
			w = &stuckWriter{stuck: make(chan struct{}), release: make(chan struct{})}
			var actx context.Context
			actx, cancel = context.WithCancel(context.WithoutCancel(ctx))
			attachDone = make(chan error, 1)
			go func() { attachDone <- ex.StreamWithContext(actx, remotecommand.StreamOptions{Stdout: w}) }()
			select {
			case <-w.stuck:
			case err := <-attachDone:
				return fmt.Errorf("attach ended before its client got stuck: %w", err)
			case <-time.After(10 * time.Second):
				return errors.New("the attached client got no output in 10s")
			}
			stuck, err = logRate(logFile)
			return err
		},
		metrics: func(context.Context, *env) (map[string]float64, error) {
			return map[string]float64{"log_MB/s_no_client": noClient, "log_MB/s_client_stuck": stuck}, nil
		},
		teardown: func(ctx context.Context, e *env) error {
			if w != nil {
				close(w.release)
				cancel()
				<-attachDone
			}
			err := b.teardown(ctx, e)
			if logDir != "" {
				err = errors.Join(err, os.RemoveAll(logDir))
			}
			return err
		},
	}
}

// logRate is how fast the file at path grows over logWindow, in MB/s.
func logRate(path string) (float64, error) {
	before, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	time.Sleep(logWindow)
	after, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return float64(after.Size()-before.Size()) / 1e6 / logWindow.Seconds(), nil
}
