// Package sandbox runs pods: the shell a pod's containers share. It creates and pins the
// pod's namespaces, sets its hostname, writes its resolv.conf and hosts, gives it a /dev/shm,
// applies its sysctls, places its cgroup in the right QoS tier and connects it to the network
// through CNI. It keeps every pod in memory for cheap reads and persists each change before
// acknowledging it.
package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/internal/inflight"
	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/internal/table"
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

	// pods holds every pod by id; Status and List never wait behind a slow Stop.
	pods     *table.Table[Sandbox, struct{}]
	inflight inflight.Group[Sandbox]
}

// entry is one pod: its last persisted value and the lock that serialises changes to it.
type entry = table.Entry[Sandbox, struct{}]

// New loads every pod record and returns a Manager serving them.
func New(ctx context.Context, opts Options) (*Manager, error) {
	k, err := newKernel(opts)
	if err != nil {
		return nil, err
	}
	m := &Manager{db: opts.DB, log: opts.Logger, kernel: k}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	m.pods = table.New[Sandbox, struct{}]("pod sandbox", func(sb Sandbox) error {
		if err := m.db.Put(bucket, sb.ID, sb); err != nil {
			return fmt.Errorf("persist pod %s: %w", sb.ID, err)
		}
		return nil
	})
	err = store.Load(m.db, bucket, func(id string, sb Sandbox) error {
		m.pods.Add(id, sb, struct{}{})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load pods: %w", err)
	}
	k.recoverUnfinished(ctx, m.pods.Has, m.log)
	m.teardowns = newTeardowns(k, opts.StateDir, m.log)
	m.teardowns.recoverTeardowns(m.pods.Has)
	return m, nil
}

// UserNamespacesSupported reports whether pods may have user namespaces of their own here
// (Options.UserNamespaces).
func (m *Manager) UserNamespacesSupported() bool { return m.kernel.userns }

// IDLength is the length of every pod id.
const IDLength = table.IDLength

// Run creates a pod, or returns the pod an identical earlier request created (a kubelet
// retry). The work runs to completion even when the caller's context ends first, so that
// the retry finds a finished pod instead of a reserved name.
func (m *Manager) Run(ctx context.Context, cfg Config) (Sandbox, error) {
	if err := m.kernel.validate(cfg); err != nil {
		return Sandbox{}, err
	}
	existing := inflight.Existing(func() (string, error) { return m.db.Holder(nameKind, cfg.Name()) }, m.pods.Exact,
		func(sb Sandbox) string { return sb.Config.Hash })
	return m.inflight.Do(ctx, "pod", cfg.Name(), cfg.Hash, existing, func(wctx context.Context) (Sandbox, error) {
		return m.run(wctx, cfg)
	})
}

func (m *Manager) run(ctx context.Context, cfg Config) (Sandbox, error) {
	sb := Sandbox{ID: table.NewID(), Config: cfg, State: StateReady, CreatedAt: time.Now()}
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
	m.pods.Add(sb.ID, sb, struct{}{})
	log.From(ctx).Info("pod ready", zap.Strings("ips", sb.IPs), zap.String(log.KeyCgroup, sb.CgroupParent))
	return sb, nil
}

// Get returns a copy of the pod with this id or unique prefix.
func (m *Manager) Get(id string) (Sandbox, error) { return m.pods.Get(id) }

// List returns copies of the pods that match f, oldest first.
func (m *Manager) List(f Filter) []Sandbox {
	return m.pods.List(func(id string, sb Sandbox) bool {
		return (f.ID == "" || strings.HasPrefix(id, f.ID)) && (f.State == "" || sb.State == f.State) &&
			matchLabels(sb.Config.Labels, f.LabelSelector)
	}, func(a, b Sandbox) bool { return a.CreatedAt.Before(b.CreatedAt) })
}

func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// update persists a changed pod, then publishes it to readers. Call with the entry locked.
func update(e *entry, sb Sandbox) error {
	_, err := e.Update(func(r *Sandbox) { *r = sb })
	return err
}

// lock takes the lock of pod id (or unique prefix) for a change to it, and returns ctx with
// the pod's log fields. Call unlock when done.
func (m *Manager) lock(ctx context.Context, id string) (_ context.Context, _ *entry, unlock func(), _ error) {
	e, unlock, err := m.pods.Lock(id)
	if err != nil {
		return ctx, nil, nil, err
	}
	return log.With(ctx, log.PodSandboxID(e.Record().ID)), e, unlock, nil
}

// stopLocked tears the pod's network down, or, when that can wait (deferred), journals the
// teardown and marks the network down: the caller starts it after recording the pod. What
// did succeed (e.g. the network is down) is kept even when a later step fails, so that a
// retry skips it.
func (m *Manager) stopLocked(ctx context.Context, e *entry) (sb Sandbox, deferred bool, err error) {
	sb = e.Record()
	if m.teardowns.deferrable(sb) {
		// Journaled before the record says the network is down; torn down after the answer.
		if err := m.teardowns.journal(sb); err != nil {
			return sb, false, err
		}
		sb.NetworkDown = true
		return sb, true, nil
	}
	if err := m.kernel.stop(ctx, &sb); err != nil {
		_ = update(e, sb)
		return sb, false, err
	}
	return sb, false, nil
}

// withStopped takes pod id's lock, tears its network down (or defers that), and runs then
// with the pod.
func (m *Manager) withStopped(ctx context.Context, id string, then func(context.Context, *entry, Sandbox, bool) error) error {
	ctx, e, unlock, err := m.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, deferred, err := m.stopLocked(ctx, e)
	if err != nil {
		return err
	}
	return then(ctx, e, sb, deferred)
}

// Stop tears the pod's network down and marks it NotReady. The caller stops its
// containers first. Stopping twice, or stopping an unknown pod (NotFound), is harmless.
func (m *Manager) Stop(ctx context.Context, id string) error {
	return m.withStopped(ctx, id, func(ctx context.Context, e *entry, sb Sandbox, deferred bool) error {
		sb.State = StateNotReady
		if err := update(e, sb); err != nil {
			return err
		}
		if deferred {
			m.teardowns.start(sb, false)
		}
		log.From(ctx).Info("pod stopped", zap.Bool("network_teardown_deferred", deferred))
		return nil
	})
}

// WaitTeardowns returns once no pod network teardown runs in the background (or with ctx's
// error): for a daemon that stops, and for tests that look at the kernel after a removal.
func (m *Manager) WaitTeardowns(ctx context.Context) error { return m.teardowns.wait(ctx) }

// Remove stops the pod if needed and deletes everything it holds, then its record.
// The caller removes its containers first. Removing an unknown pod is NotFound.
func (m *Manager) Remove(ctx context.Context, id string) error {
	return m.withStopped(ctx, id, m.removeStopped)
}

func (m *Manager) removeStopped(ctx context.Context, e *entry, sb Sandbox, deferred bool) error {
	if deferred {
		// Removed without a stop: the network goes after the answer, as for Stop.
		m.teardowns.start(sb, true)
	}
	// A teardown still running removes the namespace pins after its DEL, which needs them.
	pins := !m.teardowns.markRemoved(sb.ID)
	if err := m.kernel.remove(ctx, &sb, pins); err != nil {
		return err
	}
	err := m.db.Update(func(tx *store.Tx) error {
		if err := tx.Delete(bucket, sb.ID); err != nil {
			return err
		}
		return tx.Release(nameKind, sb.Config.Name(), sb.ID)
	})
	if err != nil {
		return fmt.Errorf("delete pod record: %w", err)
	}
	e.Remove()
	log.From(ctx).Info("pod removed")
	return nil
}

// UpdateResources resizes a ready pod: res (the containers' totals plus overhead) is checked
// against the host, applied to the pod cgroup, and recorded as the pod's resources.
func (m *Manager) UpdateResources(ctx context.Context, id string, res cgroups.Resources) error {
	ctx, e, unlock, err := m.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb := e.Record()
	if sb.State != StateReady || sb.CgroupParent == "" {
		return fmt.Errorf("pod %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	cg := m.kernel.cgroups
	applied, err := cg.CheckResources(ctx, res)
	if err != nil {
		return err
	}
	if err := cg.Update(ctx, sb.CgroupParent, applied.ToSpec(cg.IsV2())); err != nil {
		return fmt.Errorf("resize pod cgroup %s: %w", sb.CgroupParent, err)
	}
	sb.Config.Resources = &res
	return update(e, sb)
}
