package critest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestRemovePodRacingCreate: containers created while their pod is stopped and removed (a
// kubelet's retried create racing a pod deletion; found by the chaos suite) never keep the
// pod from being removed, and leave no shim, mount or cgroup behind. The shim may hold a
// container the daemon has no record of by the time the pod goes: it goes with the pod. A
// removal that succeeds leaves none of the pod's containers listed.
func TestRemovePodRacingCreate(t *testing.T) {
	framework.RequirePeapod(t)
	const rounds = 8
	for round := range rounds {
		p := &testPod{env: framework.Shared(t)}
		p.rt, p.img, p.daemon = p.env.Runtime, p.env.Image(t), p.env.Daemon
		ctx := framework.Context(t)
		cfg := &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("race-%d", round), Namespace: "critest",
				Uid: fmt.Sprintf("race-%d-%d", round, time.Now().UnixNano())},
			LogDirectory: t.TempDir(),
			Linux:        &runtimeapi.LinuxPodSandboxConfig{},
		}
		id, err := p.rt.RunPodSandbox(ctx, cfg, "")
		if err != nil {
			t.Fatalf("RunPodSandbox: %v", err)
		}
		p.id, p.cfg = id, cfg
		cgroup := p.info(t).CgroupParent
		p.pull(t, framework.ImageBusybox)

		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				c := sleeper(fmt.Sprintf("c%d", i), framework.ImageBusybox, nil)
				if cid, err := p.rt.CreateContainer(framework.Quiet(ctx), id, c, cfg); err == nil {
					_ = p.rt.StartContainer(framework.Quiet(ctx), cid)
				}
			})
		}
		// Stop and remove as the creates go on: from at once to a few ms later.
		time.Sleep(time.Duration(round) * time.Millisecond)
		_ = p.rt.StopPodSandbox(framework.Quiet(ctx), id)
		removeErr := p.rt.RemovePodSandbox(framework.Quiet(ctx), id)
		wg.Wait()
		// A removal that succeeded took every container of the pod with it: a create either
		// landed before it (and was removed) or came after (and was refused).
		if removeErr == nil {
			left, err := p.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: id})
			if err != nil {
				t.Fatalf("ListContainers: %v", err)
			}
			for _, c := range left {
				t.Errorf("round %d: pod removed, yet its container %s is listed (%v)", round, c.GetMetadata().GetName(), c.GetState())
			}
		}
		// A kubelet retries the removal until it succeeds; it must, at the latest now that
		// every create has returned.
		if err := p.rt.StopPodSandbox(ctx, id); err != nil {
			t.Errorf("round %d: StopPodSandbox after the creates: %v", round, err)
		}
		if err := p.rt.RemovePodSandbox(ctx, id); err != nil {
			t.Fatalf("round %d: RemovePodSandbox after the creates: %v", round, err)
		}
		requirePodGone(t, p.daemon, id, cgroup)
	}
}

// requirePodGone checks that nothing of pod id is left on the node: no process naming it
// (shim, holder), no mount below the daemon's state, no pod cgroup.
func requirePodGone(t *testing.T, d *framework.Daemon, id, cgroup string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range procs {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), id) {
				left = append(left, "process "+f+": "+strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
		if d != nil {
			mounts, err := framework.MountsUnder(d.State())
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range mounts {
				if strings.Contains(m, id) {
					left = append(left, "mount "+m)
				}
			}
		}
		if cgroup != "" {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", cgroup)); err == nil {
				left = append(left, "cgroup "+cgroup)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s removed, but left behind:\n%s", id, strings.Join(left, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
