package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// ctrBench is the state of one container scenario: its pod and the container of the
// previous run, removed (untimed) before the next.
type ctrBench struct {
	name   string
	podID  string
	podCfg *runtimeapi.PodSandboxConfig
	prev   string
	// pods are the pods a scenario made per run (pod-to-running, memory).
	pods    []string
	metrics map[string]float64
}

func benchPodConfig(name string, i int) *runtimeapi.PodSandboxConfig {
	uid := fmt.Sprintf("bench-%s-%d-%d", name, i, time.Now().UnixNano())
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("%s-%d", strings.ToLower(name), i), Namespace: "bench", Uid: uid},
		Hostname: "bench",
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			// What a kubelet sends for a pod without shareProcessNamespace.
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
}

// benchContainer is busybox running args (sleep 3600 by default).
func benchContainer(name string, args ...string) *runtimeapi.ContainerConfig {
	if len(args) == 0 {
		args = []string{"sleep", "3600"}
	}
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: framework.ImageBusybox},
		Command:  args,
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

func pullBusybox(ctx context.Context, e *env) error {
	if e.image == nil {
		return fmt.Errorf("image service: %w", e.imageErr)
	}
	if st, err := e.image.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, false); err == nil && st.GetImage() != nil {
		return nil
	}
	_, err := e.image.PullImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil)
	return err
}

func (b *ctrBench) setup(ctx context.Context, e *env) error {
	if err := pullBusybox(ctx, e); err != nil {
		return err
	}
	b.podCfg = benchPodConfig(b.name, 0)
	id, err := e.runtime.RunPodSandbox(ctx, b.podCfg, "")
	b.podID = id
	return err
}

func (b *ctrBench) teardown(ctx context.Context, e *env) error {
	var errs []error
	for _, id := range append(b.pods, b.podID) {
		if id == "" {
			continue
		}
		errs = append(errs, e.runtime.StopPodSandbox(ctx, id), e.runtime.RemovePodSandbox(ctx, id))
	}
	b.pods, b.podID, b.prev = nil, "", ""
	return errors.Join(errs...)
}

// dropPrev removes the previous run's container.
func (b *ctrBench) dropPrev(ctx context.Context, e *env) error {
	if b.prev == "" {
		return nil
	}
	id := b.prev
	b.prev = ""
	return e.runtime.RemoveContainer(ctx, id)
}

func (b *ctrBench) create(ctx context.Context, e *env, i int, args ...string) (string, error) {
	cfg := benchContainer(fmt.Sprintf("c%d", i+1000), args...)
	id, err := e.runtime.CreateContainer(ctx, b.podID, cfg, b.podCfg)
	b.prev = id
	return id, err
}

// containerScenarios measure the container lifecycle RPCs and the memory a pod costs.
func containerScenarios() []scenario {
	return []scenario{
		firstCreateScenario(),
		createScenario(),
		startScenario(),
		stopScenario(),
		removeScenario(),
		podToRunningScenario(),
		execSyncScenario(),
		readsWhileStoppingScenario(),
		readsWhilePullingScenario(),
		stuckAttachScenario(),
		memoryScenario(),
	}
}

// firstCreateScenario: the pod's first container also starts the pod's shim, the part of
// pod-to-running that is neither RunPodSandbox nor a later create.
func firstCreateScenario() scenario {
	first := &ctrBench{name: "CreateContainer/first-in-pod"}
	return scenario{
		name: first.name, setup: pullBusybox, teardown: first.teardown,
		prepare: func(ctx context.Context, e *env, i int) error {
			if err := first.teardown(ctx, e); err != nil {
				return err
			}
			first.podCfg = benchPodConfig("first", i+1000)
			var err error
			first.podID, err = e.runtime.RunPodSandbox(ctx, first.podCfg, "")
			return err
		},
		run: func(ctx context.Context, e *env, i int) error {
			_, err := first.create(ctx, e, i)
			return err
		},
	}
}

func createScenario() scenario {
	create := &ctrBench{name: "CreateContainer"}
	return scenario{
		name: create.name, setup: create.setup, teardown: create.teardown,
		prepare: func(ctx context.Context, e *env, _ int) error { return create.dropPrev(ctx, e) },
		run: func(ctx context.Context, e *env, i int) error {
			_, err := create.create(ctx, e, i)
			return err
		},
	}
}

func startScenario() scenario {
	start := &ctrBench{name: "StartContainer"}
	var next string
	return scenario{
		name: start.name, setup: start.setup, teardown: start.teardown,
		prepare: func(ctx context.Context, e *env, i int) error {
			if err := start.dropPrev(ctx, e); err != nil {
				return err
			}
			var err error
			next, err = start.create(ctx, e, i)
			return err
		},
		run: func(ctx context.Context, e *env, _ int) error { return e.runtime.StartContainer(ctx, next) },
	}
}

// trapReady is the file the stop scenario's container makes once its TERM trap is set; the
// reads-while-stopping scenario's container makes trapArmed then, and trapReady on TERM.
const (
	trapReady = "/tmp/trap-set"
	trapArmed = "/tmp/trap-armed"
)

// stopScenario: busybox sh as PID 1 of its namespace (the kernel drops signals PID 1 does
// not handle) traps TERM; the wait builtin returns at once when it comes.
func stopScenario() scenario {
	stop := &ctrBench{name: "StopContainer"}
	var next string
	return scenario{
		name: stop.name, setup: stop.setup, teardown: stop.teardown,
		prepare: func(ctx context.Context, e *env, i int) error {
			if err := stop.dropPrev(ctx, e); err != nil {
				return err
			}
			var err error
			if next, err = stop.create(ctx, e, i, "sh", "-c", "trap 'exit 0' TERM; touch "+trapReady+"; sleep 3600 & wait"); err != nil {
				return err
			}
			if err := e.runtime.StartContainer(ctx, next); err != nil {
				return err
			}
			// The trap must be set before the signal comes.
			return waitForFile(ctx, e, next, trapReady)
		},
		run: func(ctx context.Context, e *env, _ int) error {
			if err := e.runtime.StopContainer(ctx, next, 10); err != nil {
				return err
			}
			st, err := e.runtime.ContainerStatus(ctx, next, false)
			if err != nil {
				return err
			}
			if st.GetStatus().GetExitCode() != 0 {
				return fmt.Errorf("stopped with exit code %d: SIGTERM was not handled", st.GetStatus().GetExitCode())
			}
			return nil
		},
	}
}

// waitForFile returns once path exists in the container (asked with ExecSync).
func waitForFile(ctx context.Context, e *env, id, path string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err := e.runtime.ExecSync(ctx, id, []string{"test", "-e", path}, 5*time.Second)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s made no %s: %w", id, path, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func removeScenario() scenario {
	remove := &ctrBench{name: "RemoveContainer"}
	var next string
	return scenario{
		name: remove.name, setup: remove.setup, teardown: remove.teardown,
		prepare: func(ctx context.Context, e *env, i int) error {
			var err error
			if next, err = remove.create(ctx, e, i); err != nil {
				return err
			}
			remove.prev = ""
			if err := e.runtime.StartContainer(ctx, next); err != nil {
				return err
			}
			return e.runtime.StopContainer(ctx, next, 0)
		},
		run: func(ctx context.Context, e *env, _ int) error { return e.runtime.RemoveContainer(ctx, next) },
	}
}

// runPod is what a kubelet does to start a one-container pod: RunPodSandbox,
// CreateContainer, StartContainer. It appends the pod to b.pods.
func (b *ctrBench) runPod(ctx context.Context, e *env, i int) (ctrID string, err error) {
	cfg := benchPodConfig(b.name, i+1000)
	pod, err := e.runtime.RunPodSandbox(ctx, cfg, "")
	if err != nil {
		return "", err
	}
	b.pods = append(b.pods, pod)
	id, err := e.runtime.CreateContainer(ctx, pod, benchContainer("main"), cfg)
	if err != nil {
		return "", err
	}
	return id, e.runtime.StartContainer(ctx, id)
}

func podToRunningScenario() scenario {
	toRunning := &ctrBench{name: "PodToRunning"}
	return scenario{
		name:     toRunning.name,
		setup:    pullBusybox,
		teardown: toRunning.teardown,
		prepare: func(ctx context.Context, e *env, _ int) error {
			// Keep at most a few pods around, removing the oldest untimed.
			var errs []error
			for len(toRunning.pods) > 2 {
				id := toRunning.pods[0]
				toRunning.pods = toRunning.pods[1:]
				errs = append(errs, e.runtime.StopPodSandbox(ctx, id), e.runtime.RemovePodSandbox(ctx, id))
			}
			return errors.Join(errs...)
		},
		run: func(ctx context.Context, e *env, i int) error {
			_, err := toRunning.runPod(ctx, e, i)
			return err
		},
	}
}

func execSyncScenario() scenario {
	execSync := &ctrBench{name: "ExecSyncTrue"}
	var next string
	return scenario{
		name: execSync.name,
		setup: func(ctx context.Context, e *env) error {
			if err := execSync.setup(ctx, e); err != nil {
				return err
			}
			var err error
			if next, err = execSync.create(ctx, e, 0); err != nil {
				return err
			}
			return e.runtime.StartContainer(ctx, next)
		},
		teardown: execSync.teardown,
		run: func(ctx context.Context, e *env, _ int) error {
			_, _, err := e.runtime.ExecSync(ctx, next, []string{"true"}, 10*time.Second)
			return err
		},
	}
}
