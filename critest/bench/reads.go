package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// stopWait is the stop timeout the reads scenario runs within: a second stop of the
// container (the pod's teardown) waits for it.
const stopWait = 15

// readsWhileStoppingScenario times ContainerStatus+ListContainers of a container whose stop
// is under way (its process ignores SIGTERM, the stop waits out its timeout): the reads a
// kubelet makes must not wait behind a slow stop. critest checks only that they answer
// before the stop does; this is how fast.
func readsWhileStoppingScenario() scenario {
	b := &ctrBench{name: "reads-while-stopping"} // names its pod: no "/"
	var id string
	var stopDone chan error
	return scenario{
		name: "ContainerStatus+List/while-stopping",
		setup: func(ctx context.Context, e *env) error {
			if err := b.setup(ctx, e); err != nil {
				return err
			}
			var err error
			if id, err = b.create(ctx, e, 0, "sh", "-c", "trap 'touch "+trapReady+"' TERM; touch "+trapArmed+"; while true; do sleep 0.05; done"); err != nil {
				return err
			}
			if err := e.runtime.StartContainer(ctx, id); err != nil {
				return err
			}
			// A TERM before the trap is set would be lost: the shell is PID 1 of its
			// namespace, which ignores signals it does not handle.
			if err := waitForFile(ctx, e, id, trapArmed); err != nil {
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

// stalledImage is the image the reads-while-pulling scenario's pull is stuck on.
const stalledImage = "registry.k8s.io/peapod-bench/stalled:1"

// readsWhilePullingScenario times ListImages+ImageStatus+ImageFsInfo while a pull is stuck
// mid-blob (the bench's registry holds it): image reads must not wait for pulls. The images
// tests check only that they answer before the pull ends; this is how fast.
func readsWhilePullingScenario() scenario {
	var release func()
	var pullDone chan error
	return scenario{
		name: "ListImages+ImageStatus/while-pulling",
		setup: func(ctx context.Context, e *env) error {
			if e.registry == nil {
				return errors.New("needs the bench's own registry (not available with -endpoint)")
			}
			if err := pullBusybox(ctx, e); err != nil {
				return err
			}
			layer, err := framework.NewLayer([]framework.TarEntry{framework.File("stalled", 0o644, time.Now().String())})
			if err != nil {
				return err
			}
			img, err := framework.BuildImage(framework.ImageSpec{Layers: []v1.Layer{layer}})
			if err != nil {
				return err
			}
			if err := e.registry.Push(ctx, stalledImage, img); err != nil {
				return err
			}
			release = e.registry.HoldBlobs()
			pullDone = make(chan error, 1)
			go func() {
				_, err := e.image.PullImage(context.WithoutCancel(ctx), &runtimeapi.ImageSpec{Image: stalledImage}, nil, nil)
				pullDone <- err
			}()
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return e.registry.WaitHeld(wctx, 1)
		},
		run: func(ctx context.Context, e *env, _ int) error {
			if _, err := e.image.ListImages(ctx, nil); err != nil {
				return err
			}
			if _, err := e.image.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, false); err != nil {
				return err
			}
			_, err := e.image.ImageFsInfo(ctx)
			return err
		},
		teardown: func(ctx context.Context, e *env) error {
			if release == nil {
				return nil
			}
			release()
			var err error
			select {
			case err = <-pullDone:
			case <-time.After(time.Minute):
				return errors.New("the held pull did not end once released")
			}
			if err != nil {
				return fmt.Errorf("the held pull: %w", err)
			}
			return e.image.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: stalledImage})
		},
	}
}
