package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/netns"
)

// Network teardowns run after StopPodSandbox (or RemovePodSandbox) has answered: CNI DEL
// deletes the pod's veth, and the kernel's veth delete waits for RCU grace periods, about
// half of a pod's stop and remove. The pod is reported stopped (NotReady, network down) once a
// journal of the teardown is written; the DEL and, for a pod removed meanwhile, the removal of
// its namespace pins (which the DEL needs) happen in the background. A daemon that dies in
// between leaves the journal, and the next daemon runs the teardown again from it
// (recoverTeardowns): DEL is idempotent, and so is the removal of the pins.
//
// A pod with a hostPort is torn down before the answer: a new pod may want the same port at
// once, and the old pod's port rules must not shadow it.

// teardownDirName is the directory of the state dir that holds one journal per pod whose
// network teardown has not finished: <id>.json, the pod as Stop saw it.
const teardownDirName = "teardown"

// maxTeardowns bounds the CNI DELs running in the background at once.
const maxTeardowns = 4

// A background teardown yields to pod setups, whose latency a kubelet waits on: it starts
// teardownDelay after it was queued (a kubelet's burst of requests passes first), and then
// only while no setup runs, unless it has waited maxTeardownDelay already. Both contend for
// the same things (the IPAM's lock, the plugins' execs, the cpu).
const (
	teardownDelay    = 20 * time.Millisecond
	maxTeardownDelay = time.Second
)

// teardowns runs pods' network teardowns in the background.
type teardowns struct {
	k   *kernel
	dir string
	log *zap.Logger
	sem chan struct{}
	// setups are the pod setups in flight.
	setups setupGate

	mu      sync.Mutex
	pending map[string]*teardown // by pod id
	wg      sync.WaitGroup
}

// teardown is one pod's background teardown.
type teardown struct {
	done chan struct{}
	// removed is set (under teardowns.mu) when the pod was removed while its network was
	// being torn down: the teardown then removes the namespace pins too.
	removed bool
}

func newTeardowns(k *kernel, stateDir string, l *zap.Logger) *teardowns {
	return &teardowns{k: k, dir: filepath.Join(stateDir, teardownDirName), log: l,
		sem: make(chan struct{}, maxTeardowns), pending: map[string]*teardown{}}
}

// deferrable reports whether sb's network can be torn down after the answer: it is up, it is
// the pod's own, and no hostPort of the node points at it.
func (t *teardowns) deferrable(sb Sandbox) bool {
	if hostNetwork(sb.Config) || sb.NetworkDown || t.k.network == nil {
		return false
	}
	for _, pm := range sb.Config.PortMappings {
		if pm.HostPort > 0 {
			return false
		}
	}
	return true
}

func (t *teardowns) journalPath(id string) string { return filepath.Join(t.dir, id+".json") }

// journal records that sb's network is to be torn down, before the pod is reported stopped.
func (t *teardowns) journal(sb Sandbox) error {
	raw, err := json.Marshal(sb)
	if err != nil {
		return fmt.Errorf("encode pod teardown journal: %w", err)
	}
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return fmt.Errorf("create teardown journal dir: %w", err)
	}
	if err := os.WriteFile(t.journalPath(sb.ID), raw, 0o600); err != nil {
		return fmt.Errorf("write pod teardown journal: %w", err)
	}
	return nil
}

// start tears sb's network down in the background; removed says the pod is gone already.
func (t *teardowns) start(sb Sandbox, removed bool) {
	td := &teardown{done: make(chan struct{}), removed: removed}
	t.mu.Lock()
	if _, ok := t.pending[sb.ID]; ok {
		// A repeated Stop while the first one's teardown runs: that one does it.
		t.mu.Unlock()
		return
	}
	t.pending[sb.ID] = td
	t.mu.Unlock()
	t.wg.Add(1)
	go t.run(sb, td)
}

func (t *teardowns) run(sb Sandbox, td *teardown) {
	defer t.wg.Done()
	defer close(td.done)
	queued := time.Now()
	time.Sleep(teardownDelay)
	t.setups.waitIdle(maxTeardownDelay - time.Since(queued))
	t.sem <- struct{}{}
	defer func() { <-t.sem }()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	l := t.log.With(log.PodSandboxID(sb.ID))
	ctx = log.With(ctx, log.PodSandboxID(sb.ID))
	sb.NetworkDown = false
	err := t.k.stop(ctx, &sb)
	if err != nil {
		// The journal stays: the next daemon tries again.
		l.Error("background pod network teardown", zap.Error(err))
	}
	t.mu.Lock()
	removed := td.removed
	delete(t.pending, sb.ID)
	t.mu.Unlock()
	if removed {
		if perr := netns.RemoveAll(filepath.Join(t.k.nsDir, sb.ID)); perr != nil {
			l.Error("remove namespace pins of a removed pod", zap.Error(perr))
			err = errors.Join(err, perr)
		}
	}
	if err == nil {
		if rerr := os.Remove(t.journalPath(sb.ID)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			l.Error("remove pod teardown journal", zap.Error(rerr))
		}
	}
}

// setupGate counts the pod setups in flight, for teardowns to wait for none.
type setupGate struct {
	mu      sync.Mutex
	running int
	// idle is closed while no setup runs; a new one is made when one starts.
	idle chan struct{}
}

func (g *setupGate) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running == 0 {
		g.idle = make(chan struct{})
	}
	g.running++
}

func (g *setupGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.running == 0 {
		close(g.idle)
	}
}

// waitIdle returns once no setup runs, or after max.
func (g *setupGate) waitIdle(max time.Duration) {
	g.mu.Lock()
	idle := g.idle
	g.mu.Unlock()
	if idle == nil || max <= 0 {
		return
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

// markRemoved tells a running teardown of pod id that the pod is removed: it removes the
// namespace pins once its DEL is done. False when none runs: the caller removes them.
func (t *teardowns) markRemoved(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	td, ok := t.pending[id]
	if ok {
		td.removed = true
	}
	return ok
}

// wait returns once no teardown runs, or with ctx's error.
func (t *teardowns) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for pod network teardowns: %w", ctx.Err())
	}
}

// recoverTeardowns restarts every teardown a journal records: a daemon stopped before they
// finished. known says whether a pod still has a record (if not, its pins go too).
func (t *teardowns) recoverTeardowns(known func(id string) bool) {
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			t.log.Error("read teardown journals", zap.Error(err))
		}
		return
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || len(id) != IDLength || strings.Trim(id, "0123456789abcdef") != "" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(t.dir, e.Name()))
		if err != nil {
			t.log.Error("read pod teardown journal", log.PodSandboxID(id), zap.Error(err))
			continue
		}
		var sb Sandbox
		if err := json.Unmarshal(raw, &sb); err != nil || sb.ID != id {
			t.log.Error("decode pod teardown journal", log.PodSandboxID(id), zap.Error(err))
			continue
		}
		t.log.Warn("finish a pod network teardown a daemon stop cut off", log.PodSandboxID(id))
		t.start(sb, !known(id))
	}
}
