package critest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// A runtime may finish a container's create after CreateContainer has answered (peapod
// does: libcontainer's part runs in the background and StartContainer waits for it). These
// tests hold any runtime to what the kubelet sees meanwhile and when that part fails.

// TestContainerPendingCreate: right after CreateContainer the container is CREATED in
// ContainerStatus and ListContainers; StartContainer at once runs it; StopContainer or
// RemoveContainer at once work and leave nothing behind.
func TestContainerPendingCreate(t *testing.T) {
	pod := newTestPod(t, "pending", nil)
	ctx := framework.Context(t)
	pod.pull(t, framework.ImageBusybox)

	t.Run("status and list", func(t *testing.T) {
		id, err := pod.create(t, sleeper("listed", framework.ImageBusybox, nil))
		if err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		if st := pod.status(t, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_CREATED || st.GetCreatedAt() == 0 {
			t.Errorf("status right after create: %v created at %d, want CREATED", st.GetState(), st.GetCreatedAt())
		}
		ctrs, err := pod.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{Id: id})
		if err != nil || len(ctrs) != 1 || ctrs[0].GetState() != runtimeapi.ContainerState_CONTAINER_CREATED {
			t.Errorf("list right after create: %v, %v; want it CREATED", ctrs, err)
		}
		if err := pod.rt.StartContainer(ctx, id); err != nil {
			t.Fatalf("StartContainer right after create: %v", err)
		}
		if got := pod.sh(t, id, "echo up"); got != "up" {
			t.Errorf("exec after start: %q", got)
		}
		if err := pod.rt.RemoveContainer(ctx, id); err != nil {
			t.Fatalf("RemoveContainer: %v", err)
		}
	})
	t.Run("remove at once", func(t *testing.T) {
		before := pod.leftovers(t)
		for i := range 3 {
			id, err := pod.create(t, sleeper("removed-"+strconv.Itoa(i), framework.ImageBusybox, nil))
			if err != nil {
				t.Fatalf("CreateContainer: %v", err)
			}
			if err := pod.rt.RemoveContainer(ctx, id); err != nil {
				t.Fatalf("RemoveContainer right after create: %v", err)
			}
			if _, err := pod.rt.ContainerStatus(ctx, id, false); status.Code(err) != codes.NotFound {
				t.Errorf("status after remove: %v, want NotFound", err)
			}
		}
		if after := pod.leftovers(t); !after.equal(before) {
			t.Errorf("remove during create left something behind:\nbefore %+v\nafter  %+v", before, after)
		}
	})
	t.Run("stop at once", func(t *testing.T) {
		before := pod.leftovers(t)
		id, err := pod.create(t, sleeper("stopped", framework.ImageBusybox, nil))
		if err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		if err := pod.rt.StopContainer(ctx, id, 0); err != nil {
			t.Fatalf("StopContainer right after create: %v", err)
		}
		if st := pod.status(t, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Errorf("status after stop: %v, want EXITED", st.GetState())
		}
		if err := pod.rt.StartContainer(ctx, id); err == nil {
			t.Error("StartContainer of a stopped container succeeded")
		}
		if err := pod.rt.RemoveContainer(ctx, id); err != nil {
			t.Fatalf("RemoveContainer: %v", err)
		}
		if after := pod.leftovers(t); !after.equal(before) {
			t.Errorf("stop during create left something behind:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

// TestContainerStartError: a container that passes every check of CreateContainer but that
// the kernel refuses (a cpuset naming a CPU the node does not have) fails at StartContainer
// with the cause, is then EXITED with reason StartError, exit code 128 and the cause as its
// message, and is removed without leaving anything behind.
func TestContainerStartError(t *testing.T) {
	pod := newTestPod(t, "starterr", nil)
	ctx := framework.Context(t)
	pod.pull(t, framework.ImageBusybox)
	before := pod.leftovers(t)
	cfg := sleeper("no-such-cpu", framework.ImageBusybox, nil)
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpusetCpus: "1000"}
	id, err := pod.create(t, cfg)
	if err != nil {
		// A runtime may refuse it at once instead; then it must leave nothing behind.
		wantCode(t, "create with a cpuset of missing CPUs", err, codes.InvalidArgument)
		return
	}
	if st := pod.status(t, id).GetState(); st != runtimeapi.ContainerState_CONTAINER_CREATED && st != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("status after create: %v, want CREATED (or EXITED once the failure is known)", st)
	}
	for i := range 2 {
		err := pod.rt.StartContainer(ctx, id)
		if err == nil {
			t.Fatalf("StartContainer %d of a container the kernel refuses succeeded", i)
		}
		if !strings.Contains(err.Error(), "cpuset") {
			t.Errorf("StartContainer %d: %v, want the cause (cpuset)", i, err)
		}
	}
	st := pod.status(t, id)
	if st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetReason() != "StartError" ||
		st.GetExitCode() != 128 || !strings.Contains(st.GetMessage(), "cpuset") || st.GetFinishedAt() == 0 {
		t.Errorf("status after the failed start: %v reason %q exit %d finished %d message %q; want EXITED StartError 128 naming the cpuset",
			st.GetState(), st.GetReason(), st.GetExitCode(), st.GetFinishedAt(), st.GetMessage())
	}
	if err := pod.rt.StopContainer(ctx, id, 0); err != nil {
		t.Errorf("StopContainer: %v", err)
	}
	if err := pod.rt.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if after := pod.leftovers(t); !after.equal(before) {
		t.Errorf("failed create left something behind:\nbefore %+v\nafter  %+v", before, after)
	}
	// The pod is fine: the next container runs.
	ok := pod.run(t, sleeper("after", framework.ImageBusybox, nil))
	if got := pod.sh(t, ok, "echo fine"); got != "fine" {
		t.Errorf("exec in the next container: %q", got)
	}
}

// TestContainerRestartDuringCreate: a daemon killed (-9) right after CreateContainer
// answered, while the runtime's create may still run, comes back with the container
// CREATED; it starts, runs, and is removed without leaving anything behind.
func TestContainerRestartDuringCreate(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	pod := ownPod(t, d, "restart-create")
	ctx := framework.Context(t)
	pod.pull(t, framework.ImageBusybox)
	before := pod.leftovers(t)
	// The pod's shim is up: the kill lands during the container's own create.
	warm := pod.run(t, sleeper("warm", framework.ImageBusybox, nil))
	id, err := pod.create(t, sleeper("pending", framework.ImageBusybox, nil))
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	restartLog := killAndRestart(t, d, pod, id)
	// Which case this run hit depends on timing: the shim had the create, or the new
	// daemon had to resume it.
	t.Logf("create resumed by the restarted daemon: %v", strings.Contains(restartLog, "resuming the create"))
	// CreateContainer had answered: the container must still be startable.
	startableAfterRestart(t, pod, id)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, c := range []string{id, warm} {
		if err := pod.rt.RemoveContainer(rctx, c); err != nil {
			t.Fatalf("RemoveContainer %s: %v", c, err)
		}
	}
	if after := pod.leftovers(t); !after.equal(before) {
		t.Errorf("left behind:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestContainerRestartDuringFirstCreate: kill -9 right after a pod's first CreateContainer
// answered, while the pod's shim is not up yet (a shim binary that takes a second to start
// makes that window certain): the restarted daemon starts the pod's shim itself and finishes
// the create, and the container is CREATED and startable.
func TestContainerRestartDuringFirstCreate(t *testing.T) {
	framework.RequirePeapod(t)
	shimBin, err := filepath.Abs("../bin/peapod-shim")
	if err != nil {
		t.Fatal(err)
	}
	slowShim := filepath.Join(t.TempDir(), "slow-shim")
	if err := os.WriteFile(slowShim, []byte("#!/bin/sh\nsleep 1\nexec "+shimBin+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := framework.StartDaemon(t, framework.WithConfig(fmt.Sprintf("[runtime]\nshim_binary = %q\n", slowShim)))
	// A pod without a shared PID namespace: its first create does not wait for the shim.
	c := framework.MustConnect(t, d.Endpoint())
	pod := newTestPodOn(t, &testPod{env: framework.Shared(t), rt: c.Runtime, img: c.Image, daemon: d}, "restart-first", func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}
	})
	pod.pull(t, framework.ImageBusybox)
	id, err := pod.create(t, sleeper("first", framework.ImageBusybox, nil))
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	restartLog := killAndRestart(t, d, pod, id)
	if !strings.Contains(restartLog, "in a new shim") {
		t.Errorf("the restarted daemon did not resume the create in a new shim:\n%s", restartLog)
	}
	startableAfterRestart(t, pod, id)
}

// killAndRestart kills the daemon with SIGKILL right after id's CreateContainer answered,
// starts it again, and returns what the restarted daemon logged until it served id.
func killAndRestart(t *testing.T, d *framework.Daemon, pod *testPod, id string) string {
	t.Helper()
	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	offset := d.StderrLen()
	if err := d.Start(framework.Context(t)); err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitServing(t, pod, id)
	return d.StderrSince(offset)
}

// startableAfterRestart: CreateContainer had answered, so the container is CREATED after the
// restart, starts, and runs what is exec'd in it.
func startableAfterRestart(t *testing.T, pod *testPod, id string) {
	t.Helper()
	if st := pod.status(t, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("container after the restart: %v (%s: %s), want CREATED", st.GetState(), st.GetReason(), st.GetMessage())
	}
	if err := pod.rt.StartContainer(framework.Context(t), id); err != nil {
		t.Fatalf("StartContainer after the restart: %v", err)
	}
	if got := pod.sh(t, id, "echo recovered"); got != "recovered" {
		t.Errorf("exec after the restart: %q", got)
	}
}
