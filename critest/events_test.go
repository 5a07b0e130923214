package critest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// eventSub is one GetContainerEvents stream, read the way the kubelet's evented PLEG reads it.
type eventSub struct {
	ch chan *runtimeapi.ContainerEventResponse
}

// subscribeEvents opens a stream on rt; it ends in cleanup.
func subscribeEvents(t *testing.T, rt internalapi.RuntimeService) *eventSub {
	t.Helper()
	ctx, cancel := context.WithCancel(framework.Quiet(context.Background()))
	s := &eventSub{ch: make(chan *runtimeapi.ContainerEventResponse, 1000)}
	established := make(chan struct{})
	// subscribed is closed when the server's headers arrive: peapod sends them once the
	// stream is subscribed.
	subscribed := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- rt.GetContainerEvents(ctx, s.ch, func(c runtimeapi.RuntimeService_GetContainerEventsClient) {
			close(established)
			go func() {
				if _, err := c.Header(); err == nil {
					close(subscribed)
				}
			}()
		})
	}()
	t.Cleanup(cancel)
	select {
	case <-established:
	case err := <-errc:
		t.Fatalf("GetContainerEvents: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("GetContainerEvents: no stream after 10s")
	}
	// The client has its stream once the request is sent; the test's first transition must
	// come after the server subscribed. Another runtime may send its headers only with its
	// first event: it gets a moment instead. A runtime without the RPC (it is optional: the
	// kubelet's EventedPLEG gate) fails the stream only now; peapod must have it.
	wait := time.After(10 * time.Second)
	if framework.External() {
		wait = time.After(300 * time.Millisecond)
	}
	select {
	case <-subscribed:
	case err := <-errc:
		if framework.External() && status.Code(err) == codes.Unimplemented {
			t.Skipf("SKIP-REASON: the runtime does not implement GetContainerEvents: %v", err)
		}
		t.Fatalf("GetContainerEvents ended at once: %v", err)
	case <-wait:
		if !framework.External() {
			t.Fatal("GetContainerEvents: no headers 10s after the stream opened (peapod sends them once subscribed)")
		}
	}
	return s
}

// next returns the next event about container id within timeout, nil if none came.
func (s *eventSub) next(id string, timeout time.Duration) *runtimeapi.ContainerEventResponse {
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-s.ch:
			if ev.GetContainerId() == id {
				return ev
			}
		case <-deadline:
			return nil
		}
	}
}

// expect reads the next events about id and fails t unless they are want, in order.
func (s *eventSub) expect(t *testing.T, who, id string, want ...runtimeapi.ContainerEventType) []*runtimeapi.ContainerEventResponse {
	t.Helper()
	var got []*runtimeapi.ContainerEventResponse
	for _, w := range want {
		ev := s.next(id, 10*time.Second)
		if ev == nil {
			t.Fatalf("%s: no %v event for %s within 10s (had %v)", who, w, id, eventTypes(got))
		}
		got = append(got, ev)
		if ev.GetContainerEventType() != w {
			t.Fatalf("%s: events %v, want %v", who, eventTypes(got), want)
		}
	}
	return got
}

func eventTypes(evs []*runtimeapi.ContainerEventResponse) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = strings.TrimSuffix(strings.TrimPrefix(ev.GetContainerEventType().String(), "CONTAINER_"), "_EVENT")
	}
	return out
}

// containerIn returns id's status in an event, nil if absent.
func containerIn(ev *runtimeapi.ContainerEventResponse, id string) *runtimeapi.ContainerStatus {
	for _, st := range ev.GetContainersStatuses() {
		if st.GetId() == id {
			return st
		}
	}
	return nil
}

// checkEventStatuses checks what each lifecycle event says about the pod and the container.
func checkEventStatuses(t *testing.T, who, podUID, id string, evs []*runtimeapi.ContainerEventResponse, exitCode int32) {
	t.Helper()
	wantState := map[runtimeapi.ContainerEventType]runtimeapi.ContainerState{
		runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT: runtimeapi.ContainerState_CONTAINER_CREATED,
		runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT: runtimeapi.ContainerState_CONTAINER_EXITED,
	}
	var last int64
	for _, ev := range evs {
		typ := ev.GetContainerEventType()
		if uid := ev.GetPodSandboxStatus().GetMetadata().GetUid(); uid != podUID {
			t.Errorf("%s: %v event's pod uid %q, want %q", who, typ, uid, podUID)
		}
		if ev.GetCreatedAt() < last {
			t.Errorf("%s: %v event's time %d is before the previous event's %d", who, typ, ev.GetCreatedAt(), last)
		}
		last = ev.GetCreatedAt()
		st := containerIn(ev, id)
		if typ == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT {
			if st != nil {
				t.Errorf("%s: DELETED event still lists the container", who)
			}
			continue
		}
		if st == nil {
			t.Errorf("%s: %v event has no status of the container", who, typ)
			continue
		}
		if want, ok := wantState[typ]; ok && st.GetState() != want {
			t.Errorf("%s: %v event: container state %v, want %v", who, typ, st.GetState(), want)
		}
		if typ == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT && st.GetExitCode() != exitCode {
			t.Errorf("%s: STOPPED event: exit code %d, want %d", who, st.GetExitCode(), exitCode)
		}
	}
}

// TestContainerEvents: every step of a container's life reaches two subscribers, in order,
// each with the pod's and the containers' statuses.
func TestContainerEvents(t *testing.T) {
	env := framework.Shared(t)
	subs := []*eventSub{subscribeEvents(t, env.Runtime), subscribeEvents(t, env.Runtime)}
	p := newTestPod(t, "events", nil)
	ctx := framework.Context(t)
	id, err := p.create(t, statsShell("ev", "sleep 0.3; exit 3"))
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if err := p.rt.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	pollStats(t, 10*time.Second, func() (*runtimeapi.ContainerStatusResponse, error) { return p.rt.ContainerStatus(ctx, id, false) },
		func(st *runtimeapi.ContainerStatusResponse) error {
			if st.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
				return fmt.Errorf("container %v", st.GetStatus().GetState())
			}
			return nil
		})
	if err := p.rt.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	for i, s := range subs {
		who := fmt.Sprintf("subscriber %d", i+1)
		evs := s.expect(t, who, id,
			runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
			runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
		checkEventStatuses(t, who, p.cfg.Metadata.Uid, id, evs, 3)
		if extra := s.next(id, 300*time.Millisecond); extra != nil {
			t.Errorf("%s: extra %v event", who, extra.GetContainerEventType())
		}
	}

	t.Run("PodSandboxStatus", func(t *testing.T) {
		other := p.run(t, sleeper("status", framework.ImageBusybox, nil))
		before := time.Now().UnixNano()
		st, err := p.rt.PodSandboxStatus(ctx, p.id, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.GetTimestamp() < before {
			t.Errorf("timestamp %d, want at least %d", st.GetTimestamp(), before)
		}
		if len(st.GetContainersStatuses()) != 1 || st.GetContainersStatuses()[0].GetId() != other ||
			st.GetContainersStatuses()[0].GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("containers_statuses %v, want the running container %s only", st.GetContainersStatuses(), other)
		}
	})
}

// TestContainerEventsAfterRestart: a container that exits while the daemon is down yields one
// STOPPED event, with its exit, to every subscriber that connects after the restart; the
// kubelet reconnects at once and, its cache being newer than nothing, takes it.
func TestContainerEventsAfterRestart(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	ctx := framework.Context(t)
	c, podID, podCfg := nodeNetPod(t, d, "events-restart")
	// The container waits for a file the test makes once the daemon is dead, then exits 7.
	id, err := c.Runtime.CreateContainer(ctx, podID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "exits"},
		Image:    &runtimeapi.ImageSpec{Image: framework.ImageBusybox},
		Command:  []string{"sh", "-c", "until [ -e /tmp/go ]; do sleep 0.1; done; exit 7"},
	}, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	before := subscribeEvents(t, c.Runtime)
	if err := c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	before.expect(t, "subscriber before the restart", id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
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

	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := writeInContainer(info.Pid, "/tmp/go"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(info.Pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("container process %d still alive", info.Pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	c = framework.MustConnect(t, d.Endpoint())
	subs := []*eventSub{subscribeEvents(t, c.Runtime), subscribeEvents(t, c.Runtime)}
	for i, s := range subs {
		who := fmt.Sprintf("subscriber %d after the restart", i+1)
		evs := s.expect(t, who, id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
		checkEventStatuses(t, who, podCfg.Metadata.Uid, id, evs, 7)
	}
	// Open event streams must not hold a stopping daemon for its grace period.
	start := time.Now()
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("SIGTERM with two open event streams took %v to exit", took)
	}
	// A second restart finds nothing new: its subscribers get no second STOPPED, only
	// what happens next.
	if err := d.Start(ctx); err != nil {
		t.Fatalf("start after SIGTERM: %v", err)
	}
	c = framework.MustConnect(t, d.Endpoint())
	subs = []*eventSub{subscribeEvents(t, c.Runtime), subscribeEvents(t, c.Runtime)}
	if err := c.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	for i, s := range subs {
		who := fmt.Sprintf("subscriber %d after the second restart", i+1)
		s.expect(t, who, id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
		if extra := s.next(id, 300*time.Millisecond); extra != nil {
			t.Errorf("%s: extra %v event", who, extra.GetContainerEventType())
		}
	}
}

// writeInContainer creates an empty file at path inside the mount namespace of pid.
func writeInContainer(pid int, path string) error {
	f, err := os.Create(fmt.Sprintf("/proc/%d/root%s", pid, path))
	if err != nil {
		return fmt.Errorf("create %s in container %d: %w", path, pid, err)
	}
	return errors.Join(f.Close())
}
