package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// stopWait is the stop timeout the reads scenario runs within: a second stop of the
// container (the pod's teardown) waits for it.
const stopWait = 15

// readsWhileStoppingScenario times ContainerStatus+ListContainers of a container whose stop
// is under way (its process ignores SIGTERM, the stop waits out its timeout): the reads a
// kubelet makes must not wait behind a slow stop. critest checks only that they answer
// before the stop does; this is how fast.
func readsWhileStoppingScenario() scenario {
	b := &ctrBench{name: "ContainerStatus+List/while-stopping"}
	var id string
	var stopDone chan error
	return scenario{
		name: b.name,
		setup: func(ctx context.Context, e *env) error {
			if err := b.setup(ctx, e); err != nil {
				return err
			}
			var err error
			if id, err = b.create(ctx, e, 0, "sh", "-c", "trap 'touch "+trapReady+"' TERM; while true; do sleep 0.05; done"); err != nil {
				return err
			}
			if err := e.runtime.StartContainer(ctx, id); err != nil {
				return err
			}
			stopDone = make(chan error, 1)
			go func() { stopDone <- e.runtime.StopContainer(context.WithoutCancel(ctx), id, stopWait) }()
			// The stop is under way once its signal has come.
			return waitForFile(ctx, e, id, trapReady)
		},
		run: func(ctx context.Context, e *env, _ int) error {
			select {
			case err := <-stopDone:
				stopDone <- err
				return fmt.Errorf("the stop ended (%v) before the reads did: raise stopWait", err)
			default:
			}
			st, err := e.runtime.ContainerStatus(ctx, id, false)
			if err != nil {
				return err
			}
			if got := st.GetStatus().GetState(); got != runtimeapi.ContainerState_CONTAINER_RUNNING {
				return fmt.Errorf("container is %v while its stop waits", got)
			}
			_, err = e.runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: b.podID})
			return err
		},
		teardown: func(ctx context.Context, e *env) error {
			// The stop kills the container once its timeout is over.
			var err error
			if stopDone != nil {
				select {
				case err = <-stopDone:
				case <-time.After(stopWait*time.Second + 30*time.Second):
					err = errors.New("the stop did not return after its timeout")
				}
			}
			return errors.Join(err, b.teardown(ctx, e))
		},
	}
}
