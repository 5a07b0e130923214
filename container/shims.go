package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/shim"
	shimclient "github.com/peapod-runtime/peapod/shim/client"
)

// shims holds one connection per pod to the pod's peapod-shim, started with the pod's first
// container (a pod with no containers costs no process).
type shims struct {
	binary string
	log    *zap.Logger

	mu   sync.Mutex
	pods map[string]*podShim
}

type podShim struct {
	mu       sync.Mutex // held while starting or connecting
	stateDir string
	client   *shimclient.Client
	info     shim.Info
	// lost is set once the shim was found gone with containers still running (counted once);
	// a shim started for the pod afterwards clears it.
	lost bool
}

func newShims(binary string, l *zap.Logger) *shims {
	return &shims{binary: binary, log: l, pods: map[string]*podShim{}}
}

func (s *shims) entry(podID, stateDir string) *podShim {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pods[podID]
	if !ok {
		p = &podShim{stateDir: stateDir}
		s.pods[podID] = p
	}
	if p.stateDir == "" {
		p.stateDir = stateDir
	}
	return p
}

// stateDir is where the pod's shim keeps its socket and records.
func (s *shims) stateDir(podID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pods[podID]; ok && p.stateDir != "" {
		return p.stateDir, nil
	}
	return "", fmt.Errorf("no shim known for pod %s: %w", podID, errdefs.ErrNotFound)
}

// register tells where a pod's shim lives, for pods known from records (after a restart).
func (s *shims) register(pod sandbox.Sandbox) { s.entry(pod.ID, pod.Dir) }

func alive(c *shimclient.Client) bool {
	if c == nil {
		return false
	}
	select {
	case <-c.Done():
		return false
	default:
		return true
	}
}

// get returns the pod's shim, connecting to a running one or (start) starting it.
func (s *shims) get(ctx context.Context, pod sandbox.Sandbox, start bool) (*shimclient.Client, shim.Info, error) {
	p := s.entry(pod.ID, pod.Dir)
	p.mu.Lock()
	defer p.mu.Unlock()
	if alive(p.client) {
		if p.info.PidNamespace == "" || pathExists(p.info.PidNamespace) {
			return p.client, p.info, nil
		}
		// The holder died (its namespace with it): the shim says so in a fresh Info.
		info, err := p.client.Info(ctx)
		if err != nil {
			return nil, shim.Info{}, fmt.Errorf("pod %s shim info: %w", pod.ID, err)
		}
		p.info = info
		return p.client, p.info, nil
	}
	c, err := shimclient.Connect(ctx, shim.SocketPath(p.stateDir))
	if err != nil && errors.Is(err, errdefs.ErrUnavailable) && start {
		c, err = shimclient.Start(ctx, shimclient.StartOptions{
			Binary: s.binary, PodID: pod.ID, StateDir: p.stateDir,
			PidNamespace: pod.Config.Namespaces.PID == sandbox.ModePod,
			HolderUser:   pod.Config.HolderUser(),
			HolderUserNS: pod.UserNSPath,
			Logger:       s.log,
		})
		switch {
		case err == nil:
			log.From(ctx).Info("pod shim started", log.PodSandboxID(pod.ID))
		case errors.Is(err, errdefs.ErrAlreadyExists):
			// Another start of the pod's shim holds its state dir: one that a daemon killed
			// meanwhile began. It serves in a moment: use it.
			wctx, cancel := context.WithTimeout(ctx, shimServeTimeout)
			c, err = connectWhenServing(wctx, shim.SocketPath(p.stateDir))
			cancel()
		}
	}
	if err != nil {
		return nil, shim.Info{}, fmt.Errorf("pod %s shim: %w", pod.ID, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		c.Close()
		return nil, shim.Info{}, fmt.Errorf("pod %s shim info: %w", pod.ID, err)
	}
	p.client, p.info, p.lost = c, info, false
	return c, info, nil
}

// markLost records that the pod's shim was found gone with containers still running; it
// reports true the first time for that shim.
func (s *shims) markLost(podID string) bool {
	s.mu.Lock()
	p, ok := s.pods[podID]
	s.mu.Unlock()
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lost {
		return false
	}
	p.lost = true
	return true
}

// running counts the pod shims this daemon holds a live connection to.
func (s *shims) running() int {
	s.mu.Lock()
	pods := make([]*podShim, 0, len(s.pods))
	for _, p := range s.pods {
		pods = append(pods, p)
	}
	s.mu.Unlock()
	n := 0
	for _, p := range pods {
		// TryLock: a shim being started or connected is counted at the next scrape rather
		// than making the scrape wait for it.
		if p.mu.TryLock() {
			if alive(p.client) {
				n++
			}
			p.mu.Unlock()
		}
	}
	return n
}

func pathExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// lost is called when a container's watch or Recover found the pod's shim gone. The PID
// namespace holder that shim may have left would hold the pod's PID namespace (and any
// process left in it) with nobody to watch it: it is killed, and with it whatever the
// namespace still holds. A shim that serves again (one this daemon started since) keeps its
// holder.
func (s *shims) lost(ctx context.Context, podID string) {
	s.mu.Lock()
	p, ok := s.pods[podID]
	s.mu.Unlock()
	if !ok || p.stateDir == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if alive(p.client) {
		return
	}
	c, err := shimclient.Connect(ctx, shim.SocketPath(p.stateDir))
	if err == nil {
		c.Close()
		return
	}
	if errors.Is(err, errdefs.ErrUnavailable) {
		shim.KillStaleHolder(p.stateDir, s.log.With(log.PodSandboxID(podID)))
	}
}

// shimServeTimeout bounds the wait for a shim that another start brought up.
const shimServeTimeout = 10 * time.Second

// connectWhenServing connects to the shim at socket, waiting for it to serve until ctx ends.
func connectWhenServing(ctx context.Context, socket string) (*shimclient.Client, error) {
	for {
		c, err := shimclient.Connect(ctx, socket)
		if err == nil || !errors.Is(err, errdefs.ErrUnavailable) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the shim at %s: %w", socket, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// shimResult is the outcome of getAsync.
type shimResult struct {
	client *shimclient.Client
	info   shim.Info
	err    error
}

// getAsync starts or connects to the pod's shim in the background (as get with start) and
// delivers the outcome on the returned channel. ctx bounds it, not a request's context:
// the container's create goes on after CreateContainer has answered.
func (s *shims) getAsync(ctx context.Context, pod sandbox.Sandbox, timeout time.Duration) <-chan shimResult {
	ch := make(chan shimResult, 1)
	go func() {
		gctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		c, info, err := s.get(gctx, pod, true)
		ch <- shimResult{client: c, info: info, err: err}
	}()
	return ch
}

// readyShim is a getAsync channel for a result already in hand.
func readyShim(r shimResult) <-chan shimResult {
	ch := make(chan shimResult, 1)
	ch <- r
	return ch
}

// client returns a connection to the pod's running shim; ErrUnavailable when it is gone.
func (s *shims) client(ctx context.Context, podID string) (*shimclient.Client, error) {
	s.mu.Lock()
	p, ok := s.pods[podID]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("pod %s has no shim: %w", podID, errdefs.ErrUnavailable)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if alive(p.client) {
		return p.client, nil
	}
	c, err := shimclient.Connect(ctx, shim.SocketPath(p.stateDir))
	if err != nil {
		return nil, fmt.Errorf("pod %s shim: %w", podID, err)
	}
	// get hands out the cached connection with its info (the pod's PID namespace): a
	// connection is cached only together with the info of the shim behind it.
	info, err := c.Info(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("pod %s shim info: %w", podID, err)
	}
	p.client, p.info = c, info
	return c, nil
}

// shutdown stops the pod's shim. The caller has removed every container of the pod it
// knows. With leftovers, whatever the shim still holds goes with the pod: it was made by a
// call this daemon lost track of (a create cut off by a daemon kill); without, such a shim
// refuses with errdefs.ErrFailedPrecondition. A shim that is gone is fine, but the PID namespace holder it may have left is killed. Pods
// this daemon never connected to (a shim from before a restart) are found through their
// state dir. The pod's entry is dropped only once its shim is gone, so that a failed
// shutdown can be retried through the same connection.
func (s *shims) shutdown(ctx context.Context, pod sandbox.Sandbox, leftovers bool) error {
	p := s.entry(pod.ID, pod.Dir)
	forget := func() {
		s.mu.Lock()
		if s.pods[pod.ID] == p {
			delete(s.pods, pod.ID)
		}
		s.mu.Unlock()
	}
	if p.stateDir == "" {
		forget()
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.client
	if !alive(c) {
		var err error
		if c, err = shimclient.Connect(ctx, shim.SocketPath(p.stateDir)); err != nil {
			if errors.Is(err, errdefs.ErrUnavailable) {
				shim.KillStaleHolder(p.stateDir, s.log)
				forget()
				return nil
			}
			return fmt.Errorf("pod %s shim: %w", pod.ID, err)
		}
		defer c.Close()
	}
	pid := 0
	if info, err := c.Info(ctx); err == nil {
		pid = info.Pid
	}
	err := c.Shutdown(ctx)
	if leftovers && errors.Is(err, errdefs.ErrFailedPrecondition) {
		err = s.removeLeftovers(ctx, c, pod.ID)
	}
	if err != nil && !errors.Is(err, errdefs.ErrUnavailable) {
		return fmt.Errorf("stop pod %s shim: %w", pod.ID, err)
	}
	p.client = nil
	forget()
	// The shim closes its connections a moment before its process ends: the pod is removed
	// only once its monitor is gone.
	waitExit(ctx, pid, shimExitWait)
	return nil
}

// leftoverWait bounds how long shutdown waits for a create still under way in the shim (it
// holds a name the shim lists only once the create ends) before giving up for this call.
const leftoverWait = 5 * time.Second

// removeLeftovers deletes (killing if need be) every container the pod's shim still holds,
// then asks it to shut down again, until it agrees or leftoverWait has passed.
func (s *shims) removeLeftovers(ctx context.Context, c *shimclient.Client, podID string) error {
	l := s.log.With(log.PodSandboxID(podID))
	deadline := time.Now().Add(leftoverWait)
	for {
		left, err := c.List(ctx)
		if err != nil {
			return err
		}
		for _, st := range left {
			l.Warn("remove a container the pod's shim held without a record in the daemon", log.ContainerID(st.ID))
			if err := c.Delete(ctx, st.ID); err != nil {
				return fmt.Errorf("remove leftover container %s: %w", st.ID, err)
			}
		}
		err = c.Shutdown(ctx)
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// shimExitWait bounds the wait for a stopped shim's process to end.
const shimExitWait = 3 * time.Second

// waitExit waits until process pid has ended (gone, or a zombie waiting for its parent),
// at most limit.
func waitExit(ctx context.Context, pid int, limit time.Duration) {
	if pid <= 0 {
		return
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (s *shims) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pods {
		if p.client != nil {
			p.client.Close()
		}
	}
}
