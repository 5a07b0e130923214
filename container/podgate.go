package container

import (
	"context"
	"fmt"
	"sync"
)

// podGates orders a pod's container creates against its stop and removal. A create holds
// its pod's gate shared from its readiness check until its record is in the table; a stop
// or removal holds it alone (HoldPod) across the list of the pod's containers and the
// change of the pod itself. So a create either lands before the list (and is stopped or
// removed with the others) or checks the pod after the change (and is refused): no
// container is left behind in a pod that was stopped or removed while it was being made.
type podGates struct {
	mu   sync.Mutex
	pods map[string]*podGate
}

// podGate is one pod's: an entry exists only while somebody holds or waits for it.
type podGate struct {
	creates int  // creates holding the gate
	held    bool // a stop or removal holds it, or waits for the creates to end
	waiters int
	// changed is closed, and replaced, at every release.
	changed chan struct{}
}

func newPodGates() *podGates { return &podGates{pods: map[string]*podGate{}} }

// gate returns the pod's gate, made if needed; g.mu is held.
func (g *podGates) gate(podID string) *podGate {
	p := g.pods[podID]
	if p == nil {
		p = &podGate{changed: make(chan struct{})}
		g.pods[podID] = p
	}
	return p
}

// create takes the pod's gate shared, waiting while a stop or removal holds it.
func (g *podGates) create(ctx context.Context, podID string) (release func(), err error) {
	return g.acquire(ctx, podID, func(p *podGate) bool {
		if p.held {
			return false
		}
		p.creates++
		return true
	}, func(p *podGate) { p.creates-- })
}

// hold takes the pod's gate alone: new creates wait from now on, and hold returns once the
// creates under way have ended.
func (g *podGates) hold(ctx context.Context, podID string) (release func(), err error) {
	mine := false
	release, err = g.acquire(ctx, podID, func(p *podGate) bool {
		if !mine {
			if p.held {
				return false // another stop or removal: wait for it
			}
			p.held, mine = true, true
		}
		return p.creates == 0
	}, func(p *podGate) { p.held = false })
	if err != nil && mine {
		g.release(podID, func(p *podGate) { p.held = false })
	}
	return release, err
}

// acquire waits until take, called with g.mu held, says the gate is taken, or ctx ends.
func (g *podGates) acquire(ctx context.Context, podID string, take func(*podGate) bool, undo func(*podGate)) (func(), error) {
	g.mu.Lock()
	p := g.gate(podID)
	p.waiters++
	for !take(p) {
		ch := p.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			g.mu.Lock()
			p.waiters--
			g.dropIfIdle(podID, p)
			g.mu.Unlock()
			return nil, fmt.Errorf("wait for pod %s's other changes: %w", podID, ctx.Err())
		}
		g.mu.Lock()
	}
	p.waiters--
	g.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { g.release(podID, undo) }) }, nil
}

// release undoes a holder's part and wakes the waiters.
func (g *podGates) release(podID string, undo func(*podGate)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pods[podID]
	undo(p)
	close(p.changed)
	p.changed = make(chan struct{})
	g.dropIfIdle(podID, p)
}

// dropIfIdle forgets a gate nobody holds or waits for; g.mu is held.
func (g *podGates) dropIfIdle(podID string, p *podGate) {
	if p.creates == 0 && !p.held && p.waiters == 0 {
		delete(g.pods, podID)
	}
}

// size is the number of pods with a gate, for tests.
func (g *podGates) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pods)
}
