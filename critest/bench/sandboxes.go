package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// coldPullRuns is how many cold pulls PullImage/busybox-cold times.
const coldPullRuns = 20

// sandboxBenchConfig is a kubelet-like pod config, unique per call; hostNetwork puts the pod
// in the node's network namespace (no CNI).
func sandboxBenchConfig(kind string, i int, hostNetwork bool) *runtimeapi.PodSandboxConfig {
	ns := &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}
	if hostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: fmt.Sprintf("%s-%d", kind, i), Namespace: "bench",
			Uid: fmt.Sprintf("bench-%s-%d-%d", kind, i, time.Now().UnixNano()),
		},
		Hostname: "bench",
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns},
		},
	}
}

// podBench holds the pod a scenario made last, removed (untimed) before the next run.
type podBench struct{ last string }

func (b *podBench) drop(ctx context.Context, e *env) error {
	if b.last == "" {
		return nil
	}
	id := b.last
	b.last = ""
	return errors.Join(e.runtime.StopPodSandbox(ctx, id), e.runtime.RemovePodSandbox(ctx, id))
}

// runPodScenario times RunPodSandbox; the previous run's pod is removed untimed.
func runPodScenario(name, kind string, hostNetwork bool) scenario {
	b := &podBench{}
	return scenario{
		name:     name,
		prepare:  func(ctx context.Context, e *env, _ int) error { return b.drop(ctx, e) },
		teardown: b.drop,
		run: func(ctx context.Context, e *env, i int) error {
			id, err := e.runtime.RunPodSandbox(ctx, sandboxBenchConfig(kind, i, hostNetwork), "")
			b.last = id
			return err
		},
	}
}

// sandboxScenarios measure the pod sandbox RPCs and image pulls.
func sandboxScenarios() []scenario {
	stopRemove := &podBench{}
	var pulled string
	var hadBusybox bool
	return []scenario{
		runPodScenario("RunPodSandbox/cni", "cni", false),
		runPodScenario("RunPodSandbox/hostNetwork", "hostnet", true),
		{
			// A kubelet deleting a pod: StopPodSandbox then RemovePodSandbox, one timing.
			name:     "StopPodSandbox+RemovePodSandbox",
			teardown: stopRemove.drop,
			prepare: func(ctx context.Context, e *env, i int) error {
				id, err := e.runtime.RunPodSandbox(ctx, sandboxBenchConfig("stop", i, false), "")
				stopRemove.last = id
				return err
			},
			run: func(ctx context.Context, e *env, _ int) error { return stopRemove.drop(ctx, e) },
		},
		{
			// busybox (~1 MB) through the mirror on 127.0.0.1; removed untimed before each pull,
			// so every pull fetches and unpacks everything.
			name: "PullImage/busybox-cold",
			runs: coldPullRuns,
			setup: func(ctx context.Context, e *env) error {
				if e.image == nil {
					return fmt.Errorf("image service: %w", e.imageErr)
				}
				st, err := e.image.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, false)
				hadBusybox = err == nil && st.GetImage() != nil
				return err
			},
			prepare: func(ctx context.Context, e *env, _ int) error {
				return e.image.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox})
			},
			run: func(ctx context.Context, e *env, _ int) error {
				var err error
				pulled, err = e.image.PullImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil)
				return err
			},
			// Leave the runtime as found: busybox stays if it was there before.
			teardown: func(ctx context.Context, e *env) error {
				if pulled == "" || hadBusybox {
					return nil
				}
				return e.image.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: pulled})
			},
		},
		syntheticPullScenario(),
	}
}
