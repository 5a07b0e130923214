package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// Stats scenarios: the kubelet lists every container's and pod's stats every few seconds,
// so these are measured with statsContainers running containers spread over statsPods pods.
const (
	statsPods       = 10
	statsContainers = 50
)

// statsFixture is the pods and containers one stats scenario measures against.
type statsFixture struct {
	pods []string
}

func (f *statsFixture) setup(ctx context.Context, e *env) error {
	if e.image == nil {
		return fmt.Errorf("image service: %w", e.imageErr)
	}
	if _, err := e.image.PullImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil); err != nil {
		return fmt.Errorf("pull busybox: %w", err)
	}
	for p := range statsPods {
		cfg := &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("stats-%d", p), Namespace: "bench",
				Uid: fmt.Sprintf("bench-stats-%d-%d", p, time.Now().UnixNano())},
			Linux: &runtimeapi.LinuxPodSandboxConfig{},
		}
		id, err := e.runtime.RunPodSandbox(ctx, cfg, "")
		if err != nil {
			return fmt.Errorf("run pod %d: %w", p, err)
		}
		f.pods = append(f.pods, id)
		for c := range statsContainers / statsPods {
			ctr, err := e.runtime.CreateContainer(ctx, id, &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: fmt.Sprintf("c%d", c)},
				Image:    &runtimeapi.ImageSpec{Image: framework.ImageBusybox},
				Command:  []string{"sleep", "3600"},
				Linux:    &runtimeapi.LinuxContainerConfig{},
			}, cfg)
			if err != nil {
				return fmt.Errorf("create container %d of pod %d: %w", c, p, err)
			}
			if err := e.runtime.StartContainer(ctx, ctr); err != nil {
				return fmt.Errorf("start container %d of pod %d: %w", c, p, err)
			}
		}
	}
	// Wait until every container has a cpu rate: what a kubelet sees in steady state.
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := e.runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
		if err != nil {
			return fmt.Errorf("list container stats: %w", err)
		}
		rated := 0
		for _, s := range list {
			if s.GetCpu().GetUsageNanoCores() != nil {
				rated++
			}
		}
		if rated >= statsContainers {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d containers have a cpu rate after 30s", rated, statsContainers)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (f *statsFixture) teardown(ctx context.Context, e *env) error {
	var errs []error
	for _, id := range f.pods {
		errs = append(errs, e.runtime.StopPodSandbox(ctx, id), e.runtime.RemovePodSandbox(ctx, id))
	}
	f.pods = nil
	return errors.Join(errs...)
}

// statsScenarios time ListContainerStats and ListPodSandboxStats over 50 running containers.
func statsScenarios() []scenario {
	ctrs, pods := &statsFixture{}, &statsFixture{}
	return []scenario{
		{
			name: "ListContainerStats50", setup: ctrs.setup, teardown: ctrs.teardown,
			run: func(ctx context.Context, e *env, _ int) error {
				list, err := e.runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
				if err == nil && len(list) < statsContainers {
					err = fmt.Errorf("%d container stats, want at least %d", len(list), statsContainers)
				}
				return err
			},
		},
		{
			name: "ListPodSandboxStats50", setup: pods.setup, teardown: pods.teardown,
			run: func(ctx context.Context, e *env, _ int) error {
				list, err := e.runtime.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{})
				if err == nil && len(list) < statsPods {
					err = fmt.Errorf("%d pod stats, want at least %d", len(list), statsPods)
				}
				return err
			},
		},
	}
}
