package container

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/sandbox"
)

const (
	// defaultShimTimeout is Options.ShimTimeout when none is given.
	defaultShimTimeout = 5 * time.Second
	// recoverParallel is how many pods Recover asks at once.
	recoverParallel = 8
	// retryFirst and retryMax bound the waits between the background recoveries of a shim
	// that did not answer: the wait doubles from the first to the last.
	retryFirst = time.Second
	retryMax   = 30 * time.Second
)

// unknownMessage is the message of a container whose shim did not answer its recovery.
const unknownMessage = "the container's monitor (peapod-shim) does not answer; its state is unknown until it does"

// recoverPod recovers one pod's containers within the shim timeout. When the shim does not
// answer in time (a stopped or hung process, which still accepts connections), the pod does
// not hold back the daemon: the containers not yet recovered are reported Unknown (in
// memory: their records keep what was last persisted), calls that need the shim fail with
// notAnswering, and the recovery is retried in the background until the shim answers.
func (m *Manager) recoverPod(ctx context.Context, pod sandbox.Sandbox, items []recoverItem) error {
	rctx, cancel := context.WithTimeout(ctx, m.opts.ShimTimeout)
	left, err := m.recoverContainers(rctx, pod, items)
	timedOut := rctx.Err() != nil && ctx.Err() == nil
	cancel()
	if err == nil || !timedOut {
		return err
	}
	m.log.Warn("pod shim does not answer: its containers are reported unknown, retrying in the background",
		log.PodSandboxID(pod.ID), zap.Duration("timeout", m.opts.ShimTimeout), zap.Int("containers", len(left)), zap.Error(err))
	m.shims.setUnanswered(pod.ID, true)
	m.markUnknown(left)
	go m.retryRecover(pod, left)
	return nil
}

// markUnknown reports the items' containers as Unknown, in memory only.
func (m *Manager) markUnknown(items []recoverItem) {
	for _, it := range items {
		it.e.Publish(func(c *Container) { c.State, c.Message = StateUnknown, unknownMessage })
	}
}

// retryRecover retries the recovery of a pod whose shim did not answer, waiting longer each
// time, until the shim answers (its containers are then what it says) or the daemon stops.
// Until the shim answers, every call that needs it is refused.
func (m *Manager) retryRecover(pod sandbox.Sandbox, items []recoverItem) {
	l := m.log.With(log.PodSandboxID(pod.ID))
	wait := retryFirst
	for attempt := 1; ; attempt++ {
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
		// First the shim's answer, with the records still Unknown.
		if _, err := m.shims.reconnect(m.ctx, pod.ID); err != nil {
			l.Debug("pod shim still does not answer", zap.Int("attempt", attempt), zap.Error(err))
			continue
		}
		// The shim is reachable before any record leaves Unknown: a container reported
		// again as it was must take the calls its state allows (a kubelet execs into a
		// container it sees running), even while the others are still being asked.
		m.shims.setUnanswered(pod.ID, false)
		for _, it := range items {
			it.e.Publish(func(c *Container) { *c = it.c })
		}
		rctx, cancel := context.WithTimeout(m.ctx, m.opts.ShimTimeout)
		left, err := m.recoverContainers(rctx, pod, items)
		timedOut := rctx.Err() != nil
		cancel()
		if m.ctx.Err() != nil {
			return
		}
		if err != nil && timedOut {
			m.shims.setUnanswered(pod.ID, true)
			m.markUnknown(left)
			items = left
			continue
		}
		if err != nil {
			l.Error("recover the containers of a pod whose shim answers again", zap.Error(err))
			return
		}
		l.Info("pod shim answers again: its containers are recovered", zap.Int("attempts", attempt))
		return
	}
}

// unknown is notAnswering for a container whose shim did not answer its recovery: nothing
// can be done with it until the shim answers.
func (m *Manager) unknown(e *entry) error {
	if c := e.Record(); c.State == StateUnknown {
		return notAnswering(e.Record().PodID)
	}
	return nil
}

// holderExited is told that a pod's PID namespace holder exited when the daemon did not stop
// it: the pod's shared PID namespace is gone with every process in it, and the pod cannot
// run a container any more. It is reported NotReady, so that a kubelet makes a new one, as
// it does when a pause container dies.
func (m *Manager) holderExited(podID string, pid int) {
	if m.ctx.Err() != nil {
		return // the daemon stops: the next one finds the holder gone at start
	}
	why := fmt.Sprintf("its PID namespace holder (peapod-shim pause, pid %d) exited", pid)
	if err := m.opts.Sandboxes.MarkNotReady(m.ctx, podID, why); err != nil {
		m.log.Error("mark a pod whose PID namespace holder exited not ready", log.PodSandboxID(podID), zap.Error(err))
	}
}
