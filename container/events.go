package container

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
)

// EventType is a container transition a kubelet's evented PLEG wants to hear about.
type EventType int

// The transitions, in the order a container goes through them.
const (
	EventCreated EventType = iota
	EventStarted
	EventStopped
	EventDeleted
)

// Event is one transition of one container.
type Event struct {
	Type        EventType
	ContainerID string
	PodID       string
	At          time.Time
}

// events fans transitions out to subscribers. A slow subscriber loses events (and the log
// says so) rather than slowing the runtime down.
type events struct {
	log  *zap.Logger
	mu   sync.Mutex
	next int
	subs map[int]chan Event
}

// Subscribe returns a channel of every transition from now on, buffered to buf events, and
// a function that ends the subscription.
func (m *Manager) Subscribe(buf int) (<-chan Event, func()) {
	ev := &m.events
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.subs == nil {
		ev.subs = map[int]chan Event{}
	}
	id := ev.next
	ev.next++
	ch := make(chan Event, buf)
	ev.subs[id] = ch
	return ch, func() {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		if c, ok := ev.subs[id]; ok {
			delete(ev.subs, id)
			close(c)
		}
	}
}

func (m *Manager) emit(t EventType, c Container) {
	e := Event{Type: t, ContainerID: c.ID, PodID: c.PodID, At: time.Now()}
	ev := &m.events
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for id, ch := range ev.subs {
		select {
		case ch <- e:
		default:
			m.log.Warn("event subscriber is too slow: event dropped", zap.Int("subscriber", id),
				log.ContainerID(c.ID), zap.Int("type", int(t)))
		}
	}
}
