package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
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
	// firstStage is the peapod-shim-runc beside binary, which a pod's monitor starts as
	// (shim/serve); "" starts binary itself.
	firstStage string
	log        *zap.Logger
	// podReady, if set, says whether a pod may still get a shim: a create that passed its
	// pod's readiness check before the pod was stopped and removed must not start a shim
	// after the removal shut the pod's shim down (nobody would stop it).
	podReady func(podID string) bool
	// timeout bounds a (re)connection to a shim, its dial and its first answer: a stopped
	// or hung shim never holds a caller (or the pod's lock) longer.
	timeout time.Duration
	// holderExited is told of a pod whose PID namespace holder exited when nobody here
	// stopped it (killed from outside, or crashed).
	holderExited func(podID string, pid int)

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
	// unanswered is set while the shim did not answer the daemon's recovery in time: until
	// a background retry gets through, calls that need the shim fail at once (notAnswering)
	// rather than each waiting on it. Read without mu, which a retry may hold.
	unanswered atomic.Bool
	// holder watches the pod's PID namespace holder; nil when it has none, or once the
	// daemon stops it on purpose (it is closed before any kill of ours).
	holder *shim.HolderWatch
}

func newShims(binary string, l *zap.Logger, timeout time.Duration, holderExited func(podID string, pid int)) *shims {
	return &shims{binary: binary, firstStage: firstStageBeside(binary), log: l, timeout: timeout, holderExited: holderExited, pods: map[string]*podShim{}}
}

// firstStageBeside returns the peapod-shim-runc beside the peapod-shim binary, the helper
// binary the shim uses too, or "" when there is none.
func firstStageBeside(binary string) string {
	p, err := exec.LookPath(binary)
	if err != nil {
		return ""
	}
	fs, err := exec.LookPath(filepath.Join(filepath.Dir(p), "peapod-shim-runc"))
	if err != nil {
		return ""
	}
	return fs
}

// notAnswering is the error of a call that needs a shim which did not answer in time.
func notAnswering(podID string) error { return notAnsweringError{podID: podID} }

// notAnsweringError is Unavailable to a client (errdefs.IsUnavailable: it has the method
// errdefs looks for), but it is not errdefs.ErrUnavailable itself, which means here that the
// shim is gone: errors.Is(err, errdefs.ErrUnavailable) is false, and nothing below takes the
// shim's containers for lost.
type notAnsweringError struct{ podID string }

func (e notAnsweringError) Error() string {
	return "pod " + e.podID + ": its shim (peapod-shim) does not answer; the daemon retries in the background"
}

// Unavailable marks the error as errdefs' Unavailable class.
func (notAnsweringError) Unavailable() {}

// answering fails with notAnswering while the pod's shim does not answer.
func (s *shims) answering(podID string) error {
	p, ok := s.lookup(podID)
	if ok && p.unanswered.Load() {
		return notAnswering(podID)
	}
	return nil
}

// setUnanswered marks the pod's shim as not answering, or answering again.
func (s *shims) setUnanswered(podID string, v bool) {
	p, ok := s.lookup(podID)
	if ok {
		p.unanswered.Store(v)
	}
}

// watchHolder watches the pod's PID namespace holder, as its state dir records it: want is
// the holder's pid as the shim told it, 0 to take the record's. A watch of that holder is
// kept. Call with p.mu held.
func (s *shims) watchHolder(podID string, p *podShim, want int) {
	if p.holder != nil && (want == 0 || p.holder.Pid == want) {
		return
	}
	s.dropHolder(p)
	w, err := shim.WatchHolder(p.stateDir, func(w *shim.HolderWatch) { s.holderGone(podID, p, w) })
	if err != nil {
		s.log.Warn("watch the pod's PID namespace holder", log.PodSandboxID(podID), zap.Error(err))
		return
	}
	p.holder = w
}

// dropHolder ends the watch of the pod's holder, before the daemon stops it (or a new shim
// replaces it): an exit the daemon asked for is not news. Call with p.mu held.
func (s *shims) dropHolder(p *podShim) {
	p.holder.Close()
	p.holder = nil
}

// holderGone is the watch's report of the holder's exit: unless the watch was dropped
// meanwhile (under p.mu, before a kill of ours), the pod is told.
func (s *shims) holderGone(podID string, p *podShim, w *shim.HolderWatch) {
	p.mu.Lock()
	mine := p.holder == w
	if mine {
		p.holder = nil
	}
	p.mu.Unlock()
	w.Close()
	if mine && s.holderExited != nil {
		s.holderExited(podID, w.Pid)
	}
}

// lookup returns the pod's entry, if the daemon knows of a shim for it.
func (s *shims) lookup(podID string) (*podShim, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pods[podID]
	return p, ok
}

// connected says whether the daemon is connected to the pod's shim.
func (s *shims) connected(podID string) bool {
	p, ok := s.lookup(podID)
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return alive(p.client)
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
	if p.unanswered.Load() {
		return nil, shim.Info{}, notAnswering(pod.ID)
	}
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
		if s.podReady != nil && !s.podReady(pod.ID) {
			return nil, shim.Info{}, fmt.Errorf("pod sandbox %s is not ready: no shim is started for it: %w", pod.ID, errdefs.ErrFailedPrecondition)
		}
		// A new shim kills the holder a dead one left: that exit is expected.
		s.dropHolder(p)
		c, err = shimclient.Start(ctx, shimclient.StartOptions{
			Binary: s.binary, FirstStage: s.firstStage, PodID: pod.ID, StateDir: p.stateDir,
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
	if info.PidHolderPid != 0 {
		s.watchHolder(pod.ID, p, info.PidHolderPid)
	}
	return c, info, nil
}

// markLost records that the pod's shim was found gone with containers still running; it
// reports true the first time for that shim.
func (s *shims) markLost(podID string) bool {
	p, ok := s.lookup(podID)
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
	p, ok := s.lookup(podID)
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
		s.dropHolder(p)
		killStaleHolder(s.log.With(log.PodSandboxID(podID)), p.stateDir)
	}
}

// killStaleHolder kills the PID namespace holder a dead shim left in stateDir, if any.
func killStaleHolder(l *zap.Logger, stateDir string) {
	if pid := shim.KillStaleHolder(stateDir); pid > 0 {
		l.Warn("killed stale pod pid namespace holder", zap.Int(log.KeyPID, pid))
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

// getAsync starts or connects to the pod's shim in the background (as get with start), tells
// it that a create follows (Prepare), and delivers the outcome on the returned channel. ctx
// bounds it, not a request's context: the container's create goes on after CreateContainer
// has answered.
func (s *shims) getAsync(ctx context.Context, pod sandbox.Sandbox, timeout time.Duration) <-chan shimResult {
	ch := make(chan shimResult, 1)
	go func() {
		gctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		running := s.connected(pod.ID)
		c, info, err := s.get(gctx, pod, true)
		if err == nil && running {
			// A create follows: the shim starts its libcontainer helper now, while the
			// daemon prepares the rootfs and spec, rather than when the create arrives (a
			// shim started here has one ready already). A hint: whatever goes wrong with it
			// shows in the create.
			pctx, pcancel := context.WithTimeout(gctx, prepareTimeout)
			if perr := c.Prepare(pctx); perr != nil {
				s.log.Debug("prepare shim for a create", log.PodSandboxID(pod.ID), zap.Error(perr))
			}
			pcancel()
		}
		ch <- shimResult{client: c, info: info, err: err}
	}()
	return ch
}

// prepareTimeout bounds the Prepare hint of getAsync (a spawn in the shim).
const prepareTimeout = time.Second

// readyShim is a getAsync channel for a result already in hand.
func readyShim(r shimResult) <-chan shimResult {
	ch := make(chan shimResult, 1)
	ch <- r
	return ch
}

// client returns a connection to the pod's running shim; ErrUnavailable when it is gone,
// notAnswering (Unavailable to a client, not gone) while it does not answer.
func (s *shims) client(ctx context.Context, podID string) (*shimclient.Client, error) {
	if err := s.answering(podID); err != nil {
		return nil, err
	}
	return s.reconnect(ctx, podID)
}

// reconnect is client without the not-answering check: the recovery that retries such a
// shim uses it. Connecting (the dial and the shim's Info) is bounded by the shim timeout.
func (s *shims) reconnect(ctx context.Context, podID string) (*shimclient.Client, error) {
	p, ok := s.lookup(podID)
	if !ok {
		return nil, fmt.Errorf("pod %s has no shim: %w", podID, errdefs.ErrUnavailable)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if alive(p.client) {
		return p.client, nil
	}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
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
	if info.PidHolderPid != 0 {
		s.watchHolder(podID, p, info.PidHolderPid)
	}
	return c, nil
}

// watchRecordedHolder watches the PID namespace holder the pod's state dir records, for a
// pod known from its record (after a restart): the shim need not answer for it.
func (s *shims) watchRecordedHolder(podID string) {
	p, ok := s.lookup(podID)
	if !ok || p.stateDir == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s.watchHolder(podID, p, 0)
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
	if p.unanswered.Load() {
		return notAnswering(pod.ID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.client
	if !alive(c) {
		var err error
		if c, err = shimclient.Connect(ctx, shim.SocketPath(p.stateDir)); err != nil {
			if errors.Is(err, errdefs.ErrUnavailable) {
				s.dropHolder(p)
				killStaleHolder(s.log.With(log.PodSandboxID(pod.ID)), p.stateDir)
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
	// The shim stopped its holder: the watch, whose report waits for p.mu, is dropped
	// before that report is read.
	s.dropHolder(p)
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
		// A pod busy starting its shim keeps its watch: the manager's context has ended,
		// and the next daemon finds a holder that died meanwhile.
		if p.mu.TryLock() {
			s.dropHolder(p)
			p.mu.Unlock()
		}
	}
}
