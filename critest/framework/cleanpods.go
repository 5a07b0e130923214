package framework

import (
	"context"
	"errors"
	"fmt"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemoveAllPods stops and removes every pod sandbox of the runtime, the running containers
// of each first with no grace, and returns how many pods it removed. The runtime then takes
// down what each pod held (cgroups, network namespace, mounts), which killing its processes
// from outside would leave behind.
func RemoveAllPods(ctx context.Context, rs internalapi.RuntimeService) (int, error) {
	pods, err := rs.ListPodSandbox(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("list pod sandboxes: %w", err)
	}
	var errs []error
	removed := 0
	for _, p := range pods {
		ctrs, err := rs.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: p.Id})
		if err != nil {
			errs = append(errs, fmt.Errorf("list containers of pod %s: %w", p.Id, err))
		}
		for _, c := range ctrs {
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				_ = rs.StopContainer(ctx, c.Id, 0)
			}
		}
		if err := rs.StopPodSandbox(ctx, p.Id); err != nil {
			errs = append(errs, fmt.Errorf("stop pod %s (%s/%s): %w", p.Id, p.Metadata.GetNamespace(), p.Metadata.GetName(), err))
			continue
		}
		if err := rs.RemovePodSandbox(ctx, p.Id); err != nil {
			errs = append(errs, fmt.Errorf("remove pod %s (%s/%s): %w", p.Id, p.Metadata.GetNamespace(), p.Metadata.GetName(), err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}
