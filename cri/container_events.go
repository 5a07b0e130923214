package cri

import (
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/sandbox"
)

const (
	// eventSourceBuffer is how many container transitions may wait for the hub before the
	// container manager drops one (and logs it).
	eventSourceBuffer = 1024
	// eventSubscriberBuffer is how many events one GetContainerEvents stream may fall behind
	// before the hub drops events for it (and logs it): a slow client never slows others.
	eventSubscriberBuffer = 256
	// recoveredReplayFor is how long after the daemon became ready a new subscriber still
	// first receives the transitions Recover found (exits while the daemon was down). A
	// kubelet reconnects within seconds of a restart; its cache ignores an event older than
	// what it already knows, so a replay never misleads it.
	recoveredReplayFor = 2 * time.Minute
	// recoveredMax bounds that replay list.
	recoveredMax = 4096
)

// eventSource is what the hub reads of container.Manager.
type eventSource interface {
	Subscribe(buf int) (<-chan container.Event, func())
	List(container.Filter) []container.Container
}

// podSource is what the hub reads of sandbox.Manager.
type podSource interface {
	Get(id string) (sandbox.Sandbox, error)
}

// eventHub turns the container manager's transitions into CRI events, each built once with
// the pod's status and its containers' statuses as they were right after the transition, and
// fans them out to every GetContainerEvents stream.
//
// It subscribes when the Server is made, before the daemon recovers, so the STOPPED events of
// exits that happened while the daemon was down are seen too. No client can be connected
// then (RPCs answer Unavailable until ready), so those events are kept and replayed first to
// every stream that opens within recoveredReplayFor after the daemon became ready.
type eventHub struct {
	ctrs  eventSource
	pods  podSource
	log   *zap.Logger
	src   <-chan container.Event
	unsub func()
	done  chan struct{}

	mu        sync.Mutex
	readyAt   time.Time
	recovered []*runtimeapi.ContainerEventResponse
	subs      map[int]hubSub
	next      int
	// lastPod keeps each pod's last status, for events that arrive after the pod is gone.
	lastPod map[string]*runtimeapi.PodSandboxStatus
}

// hubSub is one stream's channel, and when it subscribed: a transition that happened before
// is not sent to it, though the hub builds it afterwards (a stream opened just after a
// CreateContainer answered must not get that container's CREATED).
type hubSub struct {
	ch    chan *runtimeapi.ContainerEventResponse
	since time.Time
}

// serverEventHub is the hub of a Server with these options.
func serverEventHub(opts Options) *eventHub {
	return newEventHub(opts.Containers, opts.Sandboxes, opts.Logger)
}

// newEventHub subscribes to ctrs at once; a nil ctrs makes a hub with no events.
func newEventHub(ctrs eventSource, pods podSource, l *zap.Logger) *eventHub {
	h := &eventHub{ctrs: ctrs, pods: pods, log: l, done: make(chan struct{}),
		subs: map[int]hubSub{}, lastPod: map[string]*runtimeapi.PodSandboxStatus{}}
	if ctrs == nil {
		close(h.done)
		return h
	}
	h.src, h.unsub = ctrs.Subscribe(eventSourceBuffer)
	go h.pump()
	return h
}

// ready marks the end of recovery: events from then on are not replayed.
func (h *eventHub) ready(at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readyAt.IsZero() {
		h.readyAt = at
	}
}

// close ends the hub and every stream.
func (h *eventHub) close() {
	if h.unsub != nil {
		h.unsub()
	}
	<-h.done
}

func (h *eventHub) pump() {
	defer close(h.done)
	for ev := range h.src {
		resp := h.build(ev)
		h.mu.Lock()
		recovered := h.readyAt.IsZero() || ev.At.Before(h.readyAt)
		if recovered && len(h.recovered) < recoveredMax {
			h.recovered = append(h.recovered, resp)
		}
		for id, sub := range h.subs {
			if !recovered && ev.At.Before(sub.since) {
				continue
			}
			select {
			case sub.ch <- resp:
			default:
				h.log.Warn("container events stream is too slow: event dropped", zap.Int("subscriber", id),
					log.ContainerID(ev.ContainerID), zap.String("type", resp.ContainerEventType.String()))
			}
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, sub := range h.subs {
		close(sub.ch)
		delete(h.subs, id)
	}
}

var criEventTypes = map[container.EventType]runtimeapi.ContainerEventType{
	container.EventCreated: runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
	container.EventStarted: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
	container.EventStopped: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
	container.EventDeleted: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
}

// build makes the CRI event with the pod's status and its containers' statuses now.
func (h *eventHub) build(ev container.Event) *runtimeapi.ContainerEventResponse {
	resp := &runtimeapi.ContainerEventResponse{
		ContainerId:        ev.ContainerID,
		ContainerEventType: criEventTypes[ev.Type],
		CreatedAt:          ev.At.UnixNano(),
	}
	for _, c := range h.ctrs.List(container.Filter{PodID: ev.PodID}) {
		if c.PodID != ev.PodID {
			continue // the filter matches prefixes
		}
		if st, err := criContainerStatus(c, false, nil); err == nil {
			resp.ContainersStatuses = append(resp.ContainersStatuses, st.GetStatus())
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if sb, err := h.pods.Get(ev.PodID); err == nil {
		if st, err := criSandboxStatus(sb, false); err == nil {
			h.lastPod[ev.PodID] = st.GetStatus()
		}
	} else if last := h.lastPod[ev.PodID]; last != nil {
		// The pod was removed before the event was built: it is not ready any more. A
		// copy, since earlier events share the old one.
		gone := proto.Clone(last).(*runtimeapi.PodSandboxStatus)
		gone.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		h.lastPod[ev.PodID] = gone
	}
	resp.PodSandboxStatus = h.lastPod[ev.PodID]
	if ev.Type == container.EventDeleted && len(resp.ContainersStatuses) == 0 {
		delete(h.lastPod, ev.PodID)
	}
	return resp
}

// subscribe opens a stream's channel, filled first with the recovered events still due.
func (h *eventHub) subscribe() (<-chan *runtimeapi.ContainerEventResponse, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan *runtimeapi.ContainerEventResponse, eventSubscriberBuffer+len(h.recovered))
	select {
	case <-h.done:
		close(ch)
		return ch, func() {}
	default:
	}
	if !h.readyAt.IsZero() && time.Since(h.readyAt) < recoveredReplayFor {
		for _, r := range h.recovered {
			ch <- r
		}
	} else if !h.readyAt.IsZero() {
		h.recovered = nil
	}
	id := h.next
	h.next++
	h.subs[id] = hubSub{ch: ch, since: time.Now()}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[id]; ok {
			delete(h.subs, id)
		}
	}
}

// GetContainerEvents streams every container transition from now on (and, right after a
// daemon restart, the exits recovery found): CREATED, STARTED, STOPPED, DELETED, each with
// the pod's status and all its containers' statuses. A stream that cannot keep up loses
// events rather than slowing the runtime; the kubelet's relist covers the gap.
func (s *Server) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	ch, cancel := s.events.subscribe()
	defer cancel()
	// The headers say the stream is subscribed: a client that waits for them misses no
	// transition it makes afterwards.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return fmt.Errorf("container events: %w", err)
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return fmt.Errorf("container events: the runtime is shutting down: %w", errdefs.ErrUnavailable)
			}
			if err := stream.Send(ev); err != nil {
				return fmt.Errorf("send container event: %w", err)
			}
		}
	}
}

// Close ends the container event streams and stops following the container manager.
func (s *Server) Close() { s.events.close() }
