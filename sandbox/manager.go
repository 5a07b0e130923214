// Package sandbox runs pods: the shell a pod's containers share. It creates and pins the
// pod's namespaces, sets its hostname, writes its resolv.conf and hosts, gives it a /dev/shm,
// applies its sysctls, places its cgroup in the right QoS tier and connects it to the network
// through CNI. It keeps every pod in memory for cheap reads and persists each change before
// acknowledging it.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/internal/idprefix"
	"github.com/peapod-runtime/peapod/internal/inflight"
	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/store"
)

const (
	bucket   = "sandboxes"
	nameKind = "pod"
	// cleanupTimeout bounds a rollback that runs after the caller gave up.
	cleanupTimeout = 30 * time.Second
)

// Manager owns every pod of this daemon.
type Manager struct {
	db        *store.DB
	log       *zap.Logger
	kernel    *kernel
	teardowns *teardowns

	mu       sync.RWMutex
	pods     map[string]*entry // by id
	inflight inflight.Group[Sandbox]
}

// entry is one pod: its last persisted value and the lock that serialises changes to it.
// Readers take only Manager.mu, so Status and List never wait behind a slow Stop.
type entry struct {
	op      sync.Mutex
	sb      Sandbox
	removed bool // set under op when the pod is gone; waiters then answer NotFound
}

// New loads every pod record and returns a Manager serving them.
func New(ctx context.Context, opts Options) (*Manager, error) {
	k, err := newKernel(opts)
	if err != nil {
		return nil, err
	}
	m := &Manager{db: opts.DB, log: opts.Logger, kernel: k, pods: map[string]*entry{}}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	err = m.db.ForEach(bucket, func(id string, raw []byte) error {
		var sb Sandbox
		if err := json.Unmarshal(raw, &sb); err != nil {
			return fmt.Errorf("decode pod %s: %w", id, err)
		}
		m.pods[id] = &entry{sb: sb}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load pods: %w", err)
	}
	known := func(id string) bool { _, ok := m.pods[id]; return ok }
	k.recoverUnfinished(ctx, known, m.log)
	m.teardowns = newTeardowns(k, opts.StateDir, m.log)
	m.teardowns.recoverTeardowns(known)
	return m, nil
}

// IDLength is the length of every pod id: the hex of 32 random bytes.
const IDLength = 64

func newID() string {
	var b [IDLength / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run creates a pod, or returns the pod an identical earlier request created (a kubelet
// retry). The work runs to completion even when the caller's context ends first, so that
// the retry finds a finished pod instead of a reserved name.
func (m *Manager) Run(ctx context.Context, cfg Config) (Sandbox, error) {
	if err := m.kernel.validate(cfg); err != nil {
		return Sandbox{}, err
	}
	existing := func() (inflight.Holder[Sandbox], bool) {
		holder, err := m.db.Holder(nameKind, cfg.Name())
		if err != nil {
			return inflight.Holder[Sandbox]{}, false
		}
		m.mu.RLock()
		defer m.mu.RUnlock()
		h := inflight.Holder[Sandbox]{ID: holder}
		if e := m.pods[holder]; e != nil {
			h.Hash, h.Val = e.sb.Config.Hash, e.sb
		}
		return h, true
	}
	return m.inflight.Do(ctx, "pod", cfg.Name(), cfg.Hash, existing, func(wctx context.Context) (Sandbox, error) {
		return m.run(wctx, cfg)
	})
}

func (m *Manager) run(ctx context.Context, cfg Config) (Sandbox, error) {
	sb := Sandbox{ID: newID(), Config: cfg, State: StateReady, CreatedAt: time.Now()}
	ctx = log.With(ctx, log.PodSandboxID(sb.ID), zap.String(log.KeyPodName, cfg.Metadata.Name),
		zap.String(log.KeyPodNamespace, cfg.Metadata.Namespace))
	m.teardowns.setups.enter()
	err := m.kernel.setup(ctx, &sb)
	m.teardowns.setups.leave()
	if err != nil {
		return Sandbox{}, err
	}
	// The name is reserved in the same transaction that stores the pod: one disk sync. Until
	// then the inflight entry keeps other requests for this name away.
	err = m.db.Update(func(tx *store.Tx) error {
		if err := tx.Reserve(nameKind, cfg.Name(), sb.ID); err != nil {
			return err
		}
		return tx.Put(bucket, sb.ID, sb)
	})
	if err != nil {
		cctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		defer cancel()
		m.kernel.undo(cctx, &sb)
		return Sandbox{}, fmt.Errorf("persist pod: %w", err)
	}
	_ = os.Remove(filepath.Join(sb.Dir, setupJournal))
	m.mu.Lock()
	m.pods[sb.ID] = &entry{sb: sb}
	m.mu.Unlock()
	log.From(ctx).Info("pod ready", zap.Strings("ips", sb.IPs), zap.String(log.KeyCgroup, sb.CgroupParent))
	return sb, nil
}

// resolve finds a pod by id or unique id prefix.
// lock resolves id and takes the entry's operation lock, for a change to it; an entry
// removed while the caller waited is NotFound. Call unlock when done.
func (m *Manager) lock(id string) (e *entry, unlock func(), err error) {
	if e, err = m.resolve(id); err != nil {
		return nil, nil, err
	}
	e.op.Lock()
	if e.removed {
		e.op.Unlock()
		return nil, nil, fmt.Errorf("pod sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	return e, e.op.Unlock, nil
}

func (m *Manager) resolve(id string) (*entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.resolveLocked(id)
}

func (m *Manager) resolveLocked(id string) (*entry, error) {
	return idprefix.Lookup(m.pods, id, "pod sandbox")
}

// Get returns a copy of the pod with this id or unique prefix.
func (m *Manager) Get(id string) (Sandbox, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, err := m.resolveLocked(id)
	if err != nil {
		return Sandbox{}, err
	}
	return e.sb, nil
}

// List returns copies of the pods that match f, oldest first.
func (m *Manager) List(f Filter) []Sandbox {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Sandbox
	for id, e := range m.pods {
		if f.ID != "" && !strings.HasPrefix(id, f.ID) {
			continue
		}
		if f.State != "" && e.sb.State != f.State {
			continue
		}
		if !matchLabels(e.sb.Config.Labels, f.LabelSelector) {
			continue
		}
		out = append(out, e.sb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// update persists a changed pod, then publishes it to readers. Call with e.op held.
func (m *Manager) update(e *entry, sb Sandbox) error {
	if err := m.db.Put(bucket, sb.ID, sb); err != nil {
		return fmt.Errorf("persist pod %s: %w", sb.ID, err)
	}
	m.mu.Lock()
	e.sb = sb
	m.mu.Unlock()
	return nil
}

// Stop tears the pod's network down and marks it NotReady. The caller stops its
// containers first. Stopping twice, or stopping an unknown pod (NotFound), is harmless.
func (m *Manager) Stop(ctx context.Context, id string) error {
	e, unlock, err := m.lock(id)
	if err != nil {
		return err
	}
	defer unlock()
	sb := e.sb
	ctx = log.With(ctx, log.PodSandboxID(sb.ID))
	deferred := m.teardowns.deferrable(sb)
	if deferred {
		// Journaled before the record says the network is down; torn down after the answer.
		if err := m.teardowns.journal(sb); err != nil {
			return err
		}
		sb.NetworkDown = true
	} else if err := m.kernel.stop(ctx, &sb); err != nil {
		// Keep what did succeed (e.g. the network is down) so a retry skips it.
		_ = m.update(e, sb)
		return err
	}
	sb.State = StateNotReady
	if err := m.update(e, sb); err != nil {
		return err
	}
	if deferred {
		m.teardowns.start(sb, false)
	}
	log.From(ctx).Info("pod stopped", zap.Bool("network_teardown_deferred", deferred))
	return nil
}

// WaitTeardowns returns once no pod network teardown runs in the background (or with ctx's
// error): for a daemon that stops, and for tests that look at the kernel after a removal.
func (m *Manager) WaitTeardowns(ctx context.Context) error { return m.teardowns.wait(ctx) }

// Remove stops the pod if needed and deletes everything it holds, then its record.
// The caller removes its containers first. Removing an unknown pod is NotFound.
func (m *Manager) Remove(ctx context.Context, id string) error {
	e, unlock, err := m.lock(id)
	if err != nil {
		return err
	}
	defer unlock()
	sb := e.sb
	ctx = log.With(ctx, log.PodSandboxID(sb.ID))
	if m.teardowns.deferrable(sb) {
		// Removed without a stop: the network goes after the answer, as for Stop.
		if err := m.teardowns.journal(sb); err != nil {
			return err
		}
		m.teardowns.start(sb, true)
		sb.NetworkDown = true
	} else if err := m.kernel.stop(ctx, &sb); err != nil {
		_ = m.update(e, sb)
		return err
	}
	// A teardown still running removes the namespace pins after its DEL, which needs them.
	pins := !m.teardowns.markRemoved(sb.ID)
	if err := m.kernel.remove(ctx, &sb, pins); err != nil {
		return err
	}
	err = m.db.Update(func(tx *store.Tx) error {
		if err := tx.Delete(bucket, sb.ID); err != nil {
			return err
		}
		return tx.Release(nameKind, sb.Config.Name(), sb.ID)
	})
	if err != nil {
		return fmt.Errorf("delete pod record: %w", err)
	}
	e.removed = true
	m.mu.Lock()
	delete(m.pods, sb.ID)
	m.mu.Unlock()
	log.From(ctx).Info("pod removed")
	return nil
}

// UpdateResources resizes a ready pod: res (the containers' totals plus overhead) is checked
// against the host, applied to the pod cgroup, and recorded as the pod's resources.
func (m *Manager) UpdateResources(ctx context.Context, id string, res cgroups.Resources) error {
	e, unlock, err := m.lock(id)
	if err != nil {
		return err
	}
	defer unlock()
	sb := e.sb
	if sb.State != StateReady || sb.CgroupParent == "" {
		return fmt.Errorf("pod %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	cg := m.kernel.cgroups
	ctx = log.With(ctx, log.PodSandboxID(sb.ID))
	applied, err := cg.CheckResources(ctx, res)
	if err != nil {
		return err
	}
	if err := cg.Update(ctx, sb.CgroupParent, applied.ToSpec(cg.IsV2())); err != nil {
		return fmt.Errorf("resize pod cgroup %s: %w", sb.CgroupParent, err)
	}
	sb.Config.Resources = &res
	return m.update(e, sb)
}
