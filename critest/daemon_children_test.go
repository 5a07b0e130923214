package critest

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestSIGTERMLeavesContainersRunning: a daemon stopped with SIGTERM exits 0 without touching
// its pods: the container's process keeps running, and the next daemon reports it running.
func TestSIGTERMLeavesContainersRunning(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	ctx := framework.Context(t)
	c, podID, podCfg := nodeNetPod(t, d, "sigterm")
	id, err := c.Runtime.CreateContainer(ctx, podID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sleeper"},
		Image:    &runtimeapi.ImageSpec{Image: framework.ImageBusybox},
		Command:  []string{"sleep", "3600"},
	}, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if err := c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	st, err := c.Runtime.ContainerStatus(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("verbose info has no pid: %v %q", err, st.Info["info"])
	}

	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v", err)
	}
	if err := syscall.Kill(info.Pid, 0); err != nil {
		t.Fatalf("the container's process %d did not survive the daemon's SIGTERM: %v", info.Pid, err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	c = framework.MustConnect(t, d.Endpoint())
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = c.Runtime.ContainerStatus(ctx, id, false)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the daemon answers Unavailable until it recovered
	}
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("after restart: %+v, %v; want RUNNING", st.GetStatus(), err)
	}
	if err := c.Runtime.StopContainer(ctx, id, 0); err != nil {
		t.Fatalf("StopContainer after restart: %v", err)
	}
	if st, err = c.Runtime.ContainerStatus(ctx, id, false); err != nil || st.Status.ExitCode != 137 {
		t.Errorf("after kill: %+v, %v; want exit 137", st.GetStatus(), err)
	}
}
