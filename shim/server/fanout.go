package server

import (
	"io"
	"sync"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// maxAttachBacklog is how much of a container's output may wait for one attached client.
// A client further behind is dropped: the container's output, and so its log, never waits
// for an attached client.
const maxAttachBacklog = 1 << 20

// outputChunk is a piece of a container's output, shared read-only by every queue it is in.
type outputChunk struct {
	stream wire.FrameType // wire.FrameStdout or wire.FrameStderr
	data   []byte
}

// outputHub fans a container's output out to the queues of attached sessions. The output
// copiers publish every read into it; with nobody attached that costs a lock and nothing else.
type outputHub struct {
	limit int

	mu     sync.Mutex
	queues map[*outputQueue]struct{}
	ended  bool
}

func newOutputHub(limit int) *outputHub {
	return &outputHub{limit: limit, queues: make(map[*outputQueue]struct{})}
}

// outputQueue is one attached session's backlog, bounded by the hub's limit in bytes.
type outputQueue struct {
	stdout, stderr bool
	// ready has a token whenever something was queued, or the queue ended or was dropped.
	ready chan struct{}

	mu      sync.Mutex
	chunks  []outputChunk
	size    int
	ended   bool
	dropped bool
}

// subscribe returns a queue that gets the streams asked for from now on. After the output
// has ended, the queue is ended at once.
func (h *outputHub) subscribe(stdout, stderr bool) *outputQueue {
	q := &outputQueue{stdout: stdout, stderr: stderr, ready: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		q.ended = true
		q.notify()
		return q
	}
	h.queues[q] = struct{}{}
	return q
}

// unsubscribe forgets q; it gets nothing more.
func (h *outputHub) unsubscribe(q *outputQueue) {
	h.mu.Lock()
	delete(h.queues, q)
	h.mu.Unlock()
}

// publish queues a copy of p for every queue that wants stream, and drops (and forgets) the
// queues that would go over the limit. It never blocks on a session; it returns how many
// queues it dropped.
func (h *outputHub) publish(stream wire.FrameType, p []byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queues) == 0 || len(p) == 0 {
		return 0
	}
	var chunk outputChunk
	dropped := 0
	for q := range h.queues {
		if stream == wire.FrameStdout && !q.stdout || stream == wire.FrameStderr && !q.stderr {
			continue
		}
		if chunk.data == nil {
			chunk = outputChunk{stream: stream, data: append([]byte(nil), p...)}
		}
		if !q.push(chunk, h.limit) {
			delete(h.queues, q)
			dropped++
		}
	}
	return dropped
}

// end says the output is over: every queue ends once drained, and later ones start ended.
func (h *outputHub) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = true
	for q := range h.queues {
		q.mu.Lock()
		q.ended = true
		q.mu.Unlock()
		q.notify()
	}
	clear(h.queues)
}

func (q *outputQueue) notify() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push queues c unless that would put more than limit bytes in the queue; then the queue is
// dropped, its backlog freed, and push returns false.
func (q *outputQueue) push(c outputChunk, limit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.size+len(c.data) > limit {
		q.dropped = true
		q.chunks, q.size = nil, 0
		q.notify()
		return false
	}
	q.chunks = append(q.chunks, c)
	q.size += len(c.data)
	q.notify()
	return true
}

// take returns what is queued and empties the queue. ended says the output is over and
// nothing more will come; dropped says the session fell behind and lost output.
func (q *outputQueue) take() (chunks []outputChunk, ended, dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	chunks = q.chunks
	q.chunks, q.size = nil, 0
	return chunks, q.ended, q.dropped
}

// teeToHub publishes everything read through it, for the copier that writes the log.
type teeToHub struct {
	r      io.Reader
	hub    *outputHub
	stream wire.FrameType
	log    *corelog.Logger
}

func (t *teeToHub) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		if d := t.hub.publish(t.stream, p[:n]); d > 0 {
			t.log.Warn("attached session fell behind the container's output; dropped it",
				corelog.Int("sessions", d), corelog.Int("backlog_limit", t.hub.limit))
		}
	}
	return n, err
}
