package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// Container names tell the checker what each container was told to do:
//
//	log-<n>        counterScript, for ever (never touched by the churn)
//	x<seq>-e<code> sleeps a moment, then exits with code
//	s<seq>         sleeps for ever
//	probe<seq>     exits 0 at once (the "can the pod still get a container" check)

// churnPod is a pod the test made (or may have made: a RunPodSandbox cut off by the kill).
type churnPod struct {
	id     string
	cfg    *runtimeapi.PodSandboxConfig
	logger bool // holds the counter containers: never stopped by the churn
	// stopAsked: StopPodSandbox or RemovePodSandbox was called (its containers may be
	// killed, the pod may be gone).
	stopAsked bool
}

// churnCtr is a container the test knows of.
type churnCtr struct {
	id, podID, name string
	// createAnswered: CreateContainer returned its id (not learnt from a list after a kill).
	createAnswered bool
	stopAsked      bool // StopContainer (or the pod's stop) was called
	removeAsked    bool // RemoveContainer was called
}

// churn runs concurrent lifecycle operations on a node and keeps what it did, so that the
// checker can tell right from wrong after every kill.
type churn struct {
	n   *node
	rnd *rand.Rand
	rmu sync.Mutex

	// gate: each operation holds it for reading; the checker holds it for writing, so that
	// it sees a node no operation is changing.
	gate sync.RWMutex

	mu   sync.Mutex
	pods map[string]*churnPod
	ctrs map[string]*churnCtr
	seq  int

	ops     atomic.Int64
	failed  sync.Map // gRPC code name -> *atomic.Int64
	stopped atomic.Bool
}

func (c *churn) intn(n int) int {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.rnd.IntN(n)
}

func (c *churn) next() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return c.seq
}

func (c *churn) fail(err error) {
	// A dead socket fails at once: do not spin on it.
	time.Sleep(10 * time.Millisecond)
	code := status.Code(err).String()
	v, _ := c.failed.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// randomPod picks a pod that is not being stopped (loggers only if withLoggers).
func (c *churn) randomPod(withLoggers bool) *churnPod {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []*churnPod
	for _, p := range c.pods {
		if !p.stopAsked && (withLoggers || !p.logger) {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].id < ps[j].id })
	return ps[c.intn(len(ps))]
}

// randomCtr picks a churn container (never a logger) matching keep.
func (c *churn) randomCtr(keep func(*churnCtr) bool) *churnCtr {
	c.mu.Lock()
	defer c.mu.Unlock()
	var cs []*churnCtr
	for _, x := range c.ctrs {
		if !strings.HasPrefix(x.name, "log-") && keep(x) {
			cs = append(cs, x)
		}
	}
	if len(cs) == 0 {
		return nil
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].id < cs[j].id })
	return cs[c.intn(len(cs))]
}

func (c *churn) podCount() (n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pods {
		if !p.logger {
			n++
		}
	}
	return n
}

func (c *churn) ctrCount(podID string) (n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.ctrs {
		if x.podID == podID {
			n++
		}
	}
	return n
}

// op runs one random lifecycle operation.
func (c *churn) op() {
	c.gate.RLock()
	defer c.gate.RUnlock()
	ctx, cancel := context.WithTimeout(framework.Quiet(context.Background()), 30*time.Second)
	defer cancel()
	rt := c.n.c.Runtime
	c.ops.Add(1)
	switch r := c.intn(100); {
	case r < 8:
		if c.podCount() >= 4 {
			return
		}
		cfg := c.n.podConfig(fmt.Sprintf("churn%d", c.next()), c.intn(2) == 0)
		id, err := rt.RunPodSandbox(ctx, cfg, "")
		if err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		c.pods[id] = &churnPod{id: id, cfg: cfg}
		c.mu.Unlock()
	case r < 50:
		p := c.randomPod(false)
		if p == nil || c.ctrCount(p.id) >= 8 {
			return
		}
		var cfg *runtimeapi.ContainerConfig
		if c.intn(3) == 0 {
			cfg = shellContainer(fmt.Sprintf("s%d", c.next()), "exec sleep 3600")
		} else {
			code := c.intn(100)
			cfg = shellContainer(fmt.Sprintf("x%d-e%d", c.next(), code), fmt.Sprintf("sleep 0.%d; exit %d", c.intn(10), code))
		}
		id, err := rt.CreateContainer(ctx, p.id, cfg, p.cfg)
		if err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		c.ctrs[id] = &churnCtr{id: id, podID: p.id, name: cfg.Metadata.Name, createAnswered: true}
		c.mu.Unlock()
		if c.intn(8) == 0 {
			return // left CREATED
		}
		if err := rt.StartContainer(ctx, id); err != nil {
			c.fail(err)
		}
	case r < 65:
		x := c.randomCtr(func(x *churnCtr) bool { return !x.stopAsked && !x.removeAsked })
		if x == nil {
			return
		}
		c.mu.Lock()
		x.stopAsked = true
		c.mu.Unlock()
		if err := rt.StopContainer(ctx, x.id, int64(c.intn(2))); err != nil {
			c.fail(err)
		}
	case r < 85:
		x := c.randomCtr(func(x *churnCtr) bool { return !x.removeAsked && (x.stopAsked || strings.HasPrefix(x.name, "x")) })
		if x == nil {
			return
		}
		c.mu.Lock()
		x.removeAsked = true
		c.mu.Unlock()
		if err := rt.RemoveContainer(ctx, x.id); err != nil {
			c.fail(err)
		}
	case r < 92:
		p := c.randomPod(false)
		if p == nil {
			return
		}
		c.mu.Lock()
		p.stopAsked = true
		for _, x := range c.ctrs {
			if x.podID == p.id {
				x.stopAsked, x.removeAsked = true, true
			}
		}
		c.mu.Unlock()
		if err := rt.StopPodSandbox(ctx, p.id); err != nil {
			c.fail(err)
			return
		}
		if err := rt.RemovePodSandbox(ctx, p.id); err != nil {
			c.fail(err)
		}
	default:
		if _, err := rt.ListContainers(ctx, nil); err != nil {
			c.fail(err)
		}
		if x := c.randomCtr(func(*churnCtr) bool { return true }); x != nil {
			if _, err := rt.ContainerStatus(ctx, x.id, true); err != nil {
				c.fail(err)
			}
		}
	}
}

// killStats are the figures of TestDaemonKills.
type killStats struct {
	kills, containersChecked, running, exited, created, podsProbed, logLines int
	lost, wrong                                                              int
}

// TestDaemonKills kills the daemon with SIGKILL at random points of a concurrent lifecycle
// churn (-chaos.kills times) and after each restart checks every container against the
// kernel and what it was told to do, and that every ready pod still gets a new container.
// Counter containers run through all the kills: their logs must hold every line exactly
// once, in order. After the teardown nothing may be left on the node.
func TestDaemonKills(t *testing.T) {
	framework.RequirePeapod(t)
	start := time.Now()
	rnd := rand.New(rand.NewPCG(seed(t), 1))
	n := startNode(t)
	before := snapshot(t, n.d)
	c := &churn{n: n, rnd: rnd, pods: map[string]*churnPod{}, ctrs: map[string]*churnCtr{}}

	// The loggers: one pod with a shared PID namespace, one without, two counters each.
	ctx := framework.Context(t)
	var loggers []*churnCtr
	for i, shared := range []bool{true, false} {
		cfg := n.podConfig(fmt.Sprintf("logger%d", i), shared)
		id, err := n.c.Runtime.RunPodSandbox(ctx, cfg, "")
		if err != nil {
			t.Fatalf("RunPodSandbox: %v", err)
		}
		c.pods[id] = &churnPod{id: id, cfg: cfg, logger: true}
		for j := range 2 {
			name := fmt.Sprintf("log-%d%d", i, j)
			cid, err := n.runContainer(ctx, id, cfg, shellContainer(name, counterScript))
			if err != nil {
				t.Fatal(err)
			}
			x := &churnCtr{id: cid, podID: id, name: name, createAnswered: true}
			c.ctrs[cid] = x
			loggers = append(loggers, x)
		}
	}

	var st killStats
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for !c.stopped.Load() {
				c.op()
				time.Sleep(time.Duration(c.intn(20)) * time.Millisecond)
			}
		})
	}
	for k := range *flagKills {
		time.Sleep(time.Duration(200+c.intn(1500)) * time.Millisecond)
		if err := n.d.Kill(); err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		// The churn runs on against a dead socket for a moment.
		time.Sleep(time.Duration(c.intn(300)) * time.Millisecond)
		c.gate.Lock()
		if err := n.d.Start(framework.Context(t)); err != nil {
			c.gate.Unlock()
			c.stopped.Store(true)
			t.Fatalf("restart %d: %v", k, err)
		}
		st.kills++
		c.check(t, &st, false)
		c.gate.Unlock()
	}
	c.stopped.Store(true)
	wg.Wait()
	c.gate.Lock()
	c.check(t, &st, true)
	c.gate.Unlock()

	// The counters ran through every kill: each log must have every line exactly once.
	for _, x := range loggers {
		if err := n.c.Runtime.StopContainer(ctx, x.id, 0); err != nil {
			t.Errorf("stop logger %s: %v", x.name, err)
		}
		p := c.pods[x.podID]
		lines, err := checkCounterLog(filepath.Join(p.cfg.LogDirectory, x.name+".log"))
		st.logLines += lines
		if err != nil {
			st.wrong++
			t.Errorf("logger %s: %v", x.name, err)
		}
		if lines == 0 {
			t.Errorf("logger %s wrote nothing", x.name)
		}
	}
	n.removeAllPods(t, true)
	leakKinds := checkNoLeak(t, n.d, before)
	var codes []string
	c.failed.Range(func(k, v any) bool {
		codes = append(codes, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	sort.Strings(codes)
	t.Logf("CHAOS-FIGURES daemon-kills: kills survived %d, containers checked %d (running %d, exited %d, created %d), pods probed with a new container %d, counter log lines checked %d, containers lost %d, wrong states/exit codes/log lines %d, churn operations %d (failed by code: %s), leak kinds checked %d, took %v",
		st.kills, st.containersChecked, st.running, st.exited, st.created, st.podsProbed, st.logLines, st.lost, st.wrong, c.ops.Load(), strings.Join(codes, " "), leakKinds, time.Since(start).Round(time.Second))
}

// check compares the daemon's view with the kernel and with what the churn did. It runs with
// the churn held.
func (c *churn) check(t *testing.T, st *killStats, final bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(framework.Quiet(context.Background()), 2*time.Minute)
	defer cancel()
	rt := c.n.c.Runtime
	// Until it has recovered, the daemon answers Unavailable.
	pods, err := rt.ListPodSandbox(ctx, nil)
	for deadline := time.Now().Add(20 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		pods, err = rt.ListPodSandbox(ctx, nil)
	}
	if err != nil {
		t.Fatalf("ListPodSandbox after restart %d: %v", st.kills, err)
	}
	ctrs, err := rt.ListContainers(ctx, nil)
	if err != nil {
		t.Fatalf("ListContainers after restart %d: %v", st.kills, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()

	// Pods: every pod listed is one the churn made (a RunPodSandbox cut off by the kill may
	// have made one it never learnt of: adopt it); every pod the churn knows and did not
	// remove is listed.
	listed := map[string]*runtimeapi.PodSandbox{}
	for _, p := range pods {
		listed[p.Id] = p
		if _, ok := c.pods[p.Id]; !ok {
			if !strings.HasPrefix(p.GetMetadata().GetName(), "churn") {
				st.wrong++
				t.Errorf("after kill %d: unknown pod %s (%s)", st.kills, p.Id, p.GetMetadata().GetName())
			}
			// Its config is not known: it only gets stopped and removed.
			c.pods[p.Id] = &churnPod{id: p.Id, stopAsked: true}
		}
	}
	for id, p := range c.pods {
		if _, ok := listed[id]; ok {
			continue
		}
		if !p.stopAsked {
			st.lost++
			t.Errorf("after kill %d: pod %s was lost", st.kills, id)
		}
		delete(c.pods, id)
	}

	seen := map[string]bool{}
	for _, lc := range ctrs {
		seen[lc.Id] = true
		x, ok := c.ctrs[lc.Id]
		if !ok {
			// A CreateContainer cut off by the kill.
			x = &churnCtr{id: lc.Id, podID: lc.PodSandboxId, name: lc.GetMetadata().GetName()}
			if p := c.pods[lc.PodSandboxId]; p != nil && p.stopAsked {
				x.stopAsked, x.removeAsked = true, true
			}
			c.ctrs[lc.Id] = x
		}
		cst, info, err := c.n.status(ctx, lc.Id)
		if err != nil {
			if x.removeAsked {
				continue // removed meanwhile by a pod removal that went on after the restart
			}
			st.wrong++
			t.Errorf("after kill %d: status of listed container %s (%s): %v", st.kills, lc.Id, x.name, err)
			continue
		}
		st.containersChecked++
		err = judge(x, cst, info, final)
		if err != nil && cst.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			// A container may exit on its own between its status and the look at its
			// process (the x ones do): the runtime reports the exit a moment later, and a
			// runtime that keeps reporting a dead process RUNNING still fails.
			cst, info, err = c.settle(ctx, x, lc.Id, final, err)
		}
		if err != nil {
			st.wrong++
			t.Errorf("after kill %d: container %s (%s, create answered %v, stop asked %v, remove asked %v): %v\nwhat its pod's shim logged of it:\n%s\nwhat the daemon logged of it:\n%s",
				st.kills, x.name, lc.Id[:12], x.createAnswered, x.stopAsked, x.removeAsked, err, shimLogOf(c.n.d, x.podID, x.id), linesNaming(c.n.d.Stderr(), x.id))
		}
		switch cst.GetState() {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			st.running++
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			st.exited++
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			st.created++
		}
	}
	for id, x := range c.ctrs {
		if seen[id] {
			continue
		}
		if !x.removeAsked {
			st.lost++
			t.Errorf("after kill %d: container %s (%s) was lost", st.kills, x.name, id)
		}
		delete(c.ctrs, id)
	}

	// Every ready pod still gets a new container (the kubelet's restart of a crashed one).
	for _, p := range pods {
		cp := c.pods[p.Id]
		if p.State != runtimeapi.PodSandboxState_SANDBOX_READY || cp == nil || cp.cfg == nil || cp.stopAsked {
			continue
		}
		c.seq++
		name := fmt.Sprintf("probe%d", c.seq)
		id, err := c.n.runContainer(ctx, p.Id, cp.cfg, shellContainer(name, "exit 0"))
		if err == nil {
			var pst *runtimeapi.ContainerStatus
			pst, err = c.n.waitExited(ctx, id, 20*time.Second)
			if err == nil && pst.GetExitCode() != 0 {
				err = fmt.Errorf("exited %d (%s: %s)", pst.GetExitCode(), pst.GetReason(), pst.GetMessage())
			}
		}
		st.podsProbed++
		if err != nil {
			st.wrong++
			t.Errorf("after kill %d: pod %s (%s) cannot get a new container: %v", st.kills, p.Id[:12], p.GetMetadata().GetName(), err)
		}
		if id != "" {
			if err := c.n.c.Runtime.RemoveContainer(ctx, id); err != nil {
				t.Errorf("remove probe %s: %v", name, err)
			}
		}
	}
}

// judge says whether a container's reported state fits what it was told to do.
// settle looks again at a RUNNING container whose judgement failed, for up to 2s, until it is
// judged fine or is no longer RUNNING; it returns the last status and judgement.
func (c *churn) settle(ctx context.Context, x *churnCtr, id string, final bool, err error) (*runtimeapi.ContainerStatus, ctrInfo, error) {
	var cst *runtimeapi.ContainerStatus
	var info ctrInfo
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		var serr error
		if cst, info, serr = c.n.status(ctx, id); serr != nil {
			return cst, info, serr
		}
		if err = judge(x, cst, info, final); err == nil || cst.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			return cst, info, err
		}
	}
	return cst, info, err
}

func judge(x *churnCtr, st *runtimeapi.ContainerStatus, info ctrInfo, final bool) error {
	switch st.GetState() {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return checkRunning(info)
	case runtimeapi.ContainerState_CONTAINER_CREATED, runtimeapi.ContainerState_CONTAINER_UNKNOWN:
		if strings.HasPrefix(x.name, "log-") {
			return fmt.Errorf("a counter is %v", st.GetState())
		}
		if st.GetState() == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
			return fmt.Errorf("state UNKNOWN (%s: %s)", st.GetReason(), st.GetMessage())
		}
		return nil
	}
	code, reason, msg := st.GetExitCode(), st.GetReason(), st.GetMessage()
	if st.GetFinishedAt() == 0 {
		return fmt.Errorf("EXITED %d with no finish time", code)
	}
	// A CreateContainer the kill cut off before it answered is cleaned up as never created.
	if !x.createAnswered && code == 255 && strings.Contains(msg, "never created") {
		return nil
	}
	// A StopContainer before the container ran: it never started. A RemoveContainer stops a
	// created container the same way first, and one cut off by the kill may have done that much.
	if (x.stopAsked || x.removeAsked) && code == 0 && reason == "Completed" && strings.Contains(msg, "before it started") {
		return nil
	}
	// A RemoveContainer kills a running container first; one cut off by the kill may have
	// done that much, leaving the container EXITED.
	killed := (x.stopAsked || x.removeAsked) && (code == 137 || code == 143)
	switch {
	case strings.HasPrefix(x.name, "log-"):
		if !final || code != 137 {
			return fmt.Errorf("a counter EXITED %d (%s: %s)", code, reason, msg)
		}
	case strings.HasPrefix(x.name, "s"):
		if !killed {
			return fmt.Errorf("a sleeper EXITED %d (%s: %s) with stop asked %v, remove asked %v", code, reason, msg, x.stopAsked, x.removeAsked)
		}
	case strings.HasPrefix(x.name, "x"):
		_, want, _ := strings.Cut(x.name, "-e")
		w, err := strconv.Atoi(want)
		if err != nil {
			return fmt.Errorf("bad name %q", x.name)
		}
		if int(code) != w && !killed {
			return fmt.Errorf("EXITED %d (%s: %s), told to exit %d", code, reason, msg, w)
		}
		if code == 0 && reason != "Completed" || code != 0 && reason != "Error" {
			return fmt.Errorf("EXITED %d with reason %q", code, reason)
		}
	default:
		return fmt.Errorf("unexpected container %q", x.name)
	}
	return nil
}

// shimLogOf is what the pod's shim logged about the container (its lines naming it, and
// every warning and error), for the report of a container found in a wrong state.
func shimLogOf(d *framework.Daemon, podID, ctrID string) string {
	raw, err := os.ReadFile(filepath.Join(d.State(), "pods", podID, "shim.log"))
	if err != nil {
		return err.Error()
	}
	return linesNaming(string(raw), ctrID)
}

// linesNaming is the lines of a JSON log that name id, or are warnings or errors (the last
// 60 of them).
func linesNaming(log, id string) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, id) || strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	if len(out) > 60 {
		out = out[len(out)-60:]
	}
	return strings.Join(out, "\n")
}
