package cri

import (
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/sandbox"
)

// fakeEvents is a container manager's event side: tests push events through ch.
type fakeEvents struct {
	ch   chan container.Event
	mu   sync.Mutex
	ctrs []container.Container
}

func (f *fakeEvents) Subscribe(int) (<-chan container.Event, func()) {
	var once sync.Once
	return f.ch, func() { once.Do(func() { close(f.ch) }) }
}

func (f *fakeEvents) List(container.Filter) []container.Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]container.Container(nil), f.ctrs...)
}

type fakePods struct {
	mu   sync.Mutex
	pods map[string]sandbox.Sandbox
}

func (f *fakePods) Get(id string) (sandbox.Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.pods[id]
	if !ok {
		return sandbox.Sandbox{}, errdefs.ErrNotFound
	}
	return sb, nil
}

func newTestHub(t *testing.T) (*eventHub, *fakeEvents, *fakePods) {
	src := &fakeEvents{ch: make(chan container.Event, 16),
		ctrs: []container.Container{{ID: "c1", PodID: "p1", State: container.StateRunning}}}
	pods := &fakePods{pods: map[string]sandbox.Sandbox{"p1": {ID: "p1", State: sandbox.StateReady,
		Config: sandbox.Config{Metadata: sandbox.Metadata{Name: "pod", Namespace: "ns", UID: "uid-1"}}}}}
	h := newEventHub(src, pods, zap.NewNop())
	t.Cleanup(h.close)
	return h, src, pods
}

func recv(t *testing.T, ch <-chan *runtimeapi.ContainerEventResponse) *runtimeapi.ContainerEventResponse {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return nil
	}
}

func TestEventHubFanOutAndStatuses(t *testing.T) {
	h, src, pods := newTestHub(t)
	h.ready(time.Now())
	a, cancelA := h.subscribe()
	defer cancelA()
	b, cancelB := h.subscribe()
	defer cancelB()
	src.ch <- container.Event{Type: container.EventStarted, ContainerID: "c1", PodID: "p1", At: time.Now()}
	for _, ch := range []<-chan *runtimeapi.ContainerEventResponse{a, b} {
		ev := recv(t, ch)
		if ev.GetContainerEventType() != runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT ||
			ev.GetPodSandboxStatus().GetMetadata().GetUid() != "uid-1" ||
			len(ev.GetContainersStatuses()) != 1 || ev.GetContainersStatuses()[0].GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("event %v", ev)
		}
	}
	// The pod is gone by the time the last container's DELETED event is built: the pod's last
	// status, not ready, still goes with it.
	pods.mu.Lock()
	delete(pods.pods, "p1")
	pods.mu.Unlock()
	src.mu.Lock()
	src.ctrs = nil
	src.mu.Unlock()
	src.ch <- container.Event{Type: container.EventDeleted, ContainerID: "c1", PodID: "p1", At: time.Now()}
	ev := recv(t, a)
	if ev.GetPodSandboxStatus().GetMetadata().GetUid() != "uid-1" || ev.GetPodSandboxStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("DELETED after the pod is gone: pod status %v", ev.GetPodSandboxStatus())
	}
	if len(h.lastPod) != 0 {
		t.Errorf("pod status kept after its last container was deleted: %v", h.lastPod)
	}
}

// TestEventHubSkipsEarlierTransitions: a transition that happened before a stream subscribed
// is not sent to it, even when the hub builds it afterwards (the container manager hands
// transitions over asynchronously); one after it is.
func TestEventHubSkipsEarlierTransitions(t *testing.T) {
	h, src, _ := newTestHub(t)
	h.ready(time.Now())
	old, cancelOld := h.subscribe()
	defer cancelOld()
	created := time.Now()
	late, cancelLate := h.subscribe()
	defer cancelLate()
	src.ch <- container.Event{Type: container.EventCreated, ContainerID: "c1", PodID: "p1", At: created}
	src.ch <- container.Event{Type: container.EventStarted, ContainerID: "c1", PodID: "p1", At: time.Now()}
	if ev := recv(t, old); ev.GetContainerEventType() != runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT {
		t.Errorf("earlier subscriber's first event: %v, want CREATED", ev.GetContainerEventType())
	}
	if ev := recv(t, late); ev.GetContainerEventType() != runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT {
		t.Errorf("later subscriber's first event: %v, want STARTED (CREATED happened before it subscribed)", ev.GetContainerEventType())
	}
}

func TestEventHubSlowSubscriber(t *testing.T) {
	h, src, _ := newTestHub(t)
	h.ready(time.Now())
	slow, cancelSlow := h.subscribe() // never read
	defer cancelSlow()
	fast, cancelFast := h.subscribe()
	defer cancelFast()
	// Two rounds, each within the fast subscriber's buffer, so only the slow one can fall
	// behind: the fast subscriber gets every event although the slow one stopped reading.
	for _, n := range []int{eventSubscriberBuffer, 50} {
		go func() {
			for i := range n {
				src.ch <- container.Event{Type: container.EventStarted, ContainerID: "c1", PodID: "p1", At: time.Now().Add(time.Duration(i))}
			}
		}()
		for range n {
			recv(t, fast)
		}
	}
	if got := len(slow); got != eventSubscriberBuffer {
		t.Errorf("slow subscriber holds %d events, want its buffer (%d) full and the rest dropped", got, eventSubscriberBuffer)
	}
}

func TestEventHubReplaysRecovery(t *testing.T) {
	h, src, _ := newTestHub(t)
	// Recover reports an exit before the daemon is ready: nobody can be subscribed yet.
	src.ch <- container.Event{Type: container.EventStopped, ContainerID: "c1", PodID: "p1", At: time.Now()}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.recovered)
		h.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("recovered event not kept")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.ready(time.Now())
	for i := range 2 {
		ch, cancel := h.subscribe()
		if ev := recv(t, ch); ev.GetContainerEventType() != runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
			t.Errorf("subscriber %d: first event %v, want the recovered STOPPED", i, ev.GetContainerEventType())
		}
		cancel()
	}
	// Live events after ready are never replayed.
	probe, cancelProbe := h.subscribe()
	defer cancelProbe()
	recv(t, probe) // the recovered STOPPED
	src.ch <- container.Event{Type: container.EventDeleted, ContainerID: "c1", PodID: "p1", At: time.Now()}
	recv(t, probe) // the hub has handled DELETED
	ch, cancel := h.subscribe()
	defer cancel()
	recv(t, ch) // the recovered STOPPED
	select {
	case ev := <-ch:
		t.Errorf("late subscriber got a live event from before it subscribed: %v", ev.GetContainerEventType())
	case <-time.After(100 * time.Millisecond):
	}
	// Once the window is over the replay is dropped.
	h.mu.Lock()
	h.readyAt = time.Now().Add(-recoveredReplayFor - time.Second)
	h.mu.Unlock()
	ch2, cancel2 := h.subscribe()
	defer cancel2()
	select {
	case ev := <-ch2:
		t.Errorf("subscriber after the replay window got %v", ev.GetContainerEventType())
	case <-time.After(100 * time.Millisecond):
	}
}
