package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// Density scenarios: a full node, as an operator runs one. Defaults: the kubelet's default
// maximum of pods, started as fast as the runtime allows with a bounded number in flight.
const (
	defaultDensityPods = 110
	densityInFlight    = 8
	defaultDensityIdle = 60 * time.Second
	// densitySettle passes between the last start and the idle window: the runtime's one-off
	// work after a start (first stats pass, log flushes) is not idle cost.
	densitySettle = 5 * time.Second
	// podPSSPods is how many pods the per-pod PSS scenarios run at once.
	podPSSPods = 20
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux).
	clockTicks = 100
)

// densityBench is the state of one density or per-pod PSS scenario.
type densityBench struct {
	name       string
	containers int // per pod
	pods       []string
	ctrs       []string
	uids       []string
	ports0     int // ports on the bridge before the pods
	metrics    map[string]float64
}

// startPods runs n pods of b.containers busybox containers each, inFlight at a time, and
// returns when every container was started.
func (b *densityBench) startPods(ctx context.Context, e *env, n int) error {
	if err := pullBusybox(ctx, e); err != nil {
		return err
	}
	b.ports0 = bridgePorts(e.bridge)
	type podResult struct {
		pod, uid string
		ctrs     []string
		err      error
	}
	results := make([]podResult, n)
	sem := make(chan struct{}, densityInFlight)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := &results[i]
			cfg := benchPodConfig(b.name, i)
			r.uid = cfg.Metadata.Uid
			r.pod, r.err = e.runtime.RunPodSandbox(ctx, cfg, "")
			if r.err != nil {
				return
			}
			for c := range b.containers {
				var id string
				id, r.err = e.runtime.CreateContainer(ctx, r.pod, benchContainer(fmt.Sprintf("c%d", c)), cfg)
				if r.err != nil {
					return
				}
				r.ctrs = append(r.ctrs, id)
				if r.err = e.runtime.StartContainer(ctx, id); r.err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	var errs []error
	for _, r := range results {
		if r.pod != "" {
			b.pods = append(b.pods, r.pod)
			b.uids = append(b.uids, r.uid)
		}
		b.ctrs = append(b.ctrs, r.ctrs...)
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%d of %d pods failed: %w", len(errs), n, errs[0])
	}
	return nil
}

// allRunning checks that every container started is running.
func (b *densityBench) allRunning(ctx context.Context, e *env) error {
	list, err := e.runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, c := range list {
		running[c.Id] = true
	}
	missing := 0
	for _, id := range b.ctrs {
		if !running[id] {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d containers not running", missing, len(b.ctrs))
	}
	return nil
}

// removePods stops and removes every pod, inFlight at a time.
func (b *densityBench) removePods(ctx context.Context, e *env) error {
	errs := make([]error, len(b.pods))
	sem := make(chan struct{}, densityInFlight)
	var wg sync.WaitGroup
	for i, id := range b.pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = errors.Join(e.runtime.StopPodSandbox(ctx, id), e.runtime.RemovePodSandbox(ctx, id))
		}()
	}
	wg.Wait()
	b.pods = nil
	return errors.Join(errs...)
}

// teardown removes whatever a failed scenario left.
func (b *densityBench) teardown(ctx context.Context, e *env) error {
	return b.removePods(ctx, e)
}

// densityScenarios measure a full node (Density) and what one pod of 1, 2 and 4 containers
// costs in PSS (PodPSS/N).
func densityScenarios() []scenario {
	d := &densityBench{name: "density", containers: 1}
	out := []scenario{{
		// The one timed run is until every container of every pod is running; the rest are
		// metrics: memory, idle cpu over the idle window, teardown time and leaks.
		name: "Density", runs: 1, noWarmup: true,
		setup:    func(ctx context.Context, e *env) error { d.metrics = map[string]float64{}; return pullBusybox(ctx, e) },
		teardown: d.teardown,
		run: func(ctx context.Context, e *env, _ int) error {
			busy0, all0 := nodeCPUTicks()
			if err := d.startPods(ctx, e, e.densityPods); err != nil {
				return err
			}
			// The whole node's CPU while the pods start (the runtime, its helpers, the CNI
			// plugins, the kernel's work for them, and this bench): what start-up costs when
			// the cores are the limit.
			busy1, all1 := nodeCPUTicks()
			if all1 > all0 && e.densityPods > 0 {
				d.metrics["start_node_cpu_ms_per_pod"] = float64(busy1-busy0) / clockTicks * 1000 / float64(e.densityPods)
				d.metrics["start_node_busy_pct"] = float64(busy1-busy0) / float64(all1-all0) * 100
			}
			return d.allRunning(ctx, e)
		},
		metrics: func(ctx context.Context, e *env) (map[string]float64, error) { return d.measure(ctx, e) },
	}}
	for _, n := range []int{1, 2, 4} {
		p := &densityBench{name: fmt.Sprintf("pss%d", n), containers: n}
		out = append(out, scenario{
			name: fmt.Sprintf("PodPSS/%dctr", n), runs: 1, noWarmup: true,
			setup:    func(ctx context.Context, e *env) error { p.metrics = map[string]float64{}; return pullBusybox(ctx, e) },
			teardown: p.teardown,
			run: func(ctx context.Context, e *env, _ int) error {
				if err := p.startPods(ctx, e, podPSSPods); err != nil {
					return err
				}
				return p.allRunning(ctx, e)
			},
			metrics: func(ctx context.Context, e *env) (map[string]float64, error) {
				// Let the monitors settle: a shim re-executes itself lean 1s after its last call
				// (shim/server's reexec_linux.go).
				time.Sleep(2 * time.Second)
				ps, err := runtimeProcesses(e.pid(), p.pods)
				if err != nil {
					return p.metrics, err
				}
				pss, rss, err := ps.perPod()
				if err != nil {
					return p.metrics, err
				}
				p.metrics["pss_per_pod_mib"] = mibf(pss)
				p.metrics["rss_per_pod_mib"] = mibf(rss)
				return p.metrics, nil
			},
		})
	}
	return out
}

// measure takes the Density figures once every pod runs, then removes the pods.
func (b *densityBench) measure(ctx context.Context, e *env) (map[string]float64, error) {
	m := b.metrics
	m["pods"] = float64(len(b.pods))
	if pid := e.pid(); pid > 0 {
		rss, _ := framework.ProcessRSS(pid)
		m["daemon_rss_running_mib"] = mibf(rss)
	}
	select {
	case <-ctx.Done():
		return m, ctx.Err()
	case <-time.After(densitySettle):
	}
	ps, err := runtimeProcesses(e.pid(), b.pods)
	if err != nil {
		return m, err
	}
	before, err := ps.cpuTicks()
	if err != nil {
		return m, err
	}
	daemon0, _ := procSet{daemon: ps.daemon}.cpuTicks()
	wake0, daemonWake0 := ps.wakeups(), procSet{daemon: ps.daemon}.wakeups()
	load0 := loadAverage()
	start := time.Now()
	profiled := make(chan error, 1)
	if e.daemonProfile != "" && e.daemon != nil {
		go func() { profiled <- profileDaemon(ctx, e.daemon.DebugSocket(), e.densityIdle, e.daemonProfile) }()
	} else {
		profiled <- nil
	}
	select {
	case <-ctx.Done():
		return m, ctx.Err()
	case <-time.After(e.densityIdle):
	}
	after, err := ps.cpuTicks()
	if err != nil {
		return m, err
	}
	daemon1, _ := procSet{daemon: ps.daemon}.cpuTicks()
	wake1, daemonWake1 := ps.wakeups(), procSet{daemon: ps.daemon}.wakeups()
	idle := time.Since(start)
	// Context switches: how often the runtime's threads woke, whether or not for work.
	m["idle_wakeups_daemon_per_s"] = float64(daemonWake1-daemonWake0) / idle.Seconds()
	if n := len(ps.shims); n > 0 {
		m["idle_wakeups_per_pod_per_min"] = float64((wake1-wake0)-(daemonWake1-daemonWake0)) / float64(n) / idle.Minutes()
	}
	m["idle_s"] = idle.Seconds()
	m["idle_cpu_pct_of_core"] = float64(after-before) / clockTicks / idle.Seconds() * 100
	m["idle_cpu_daemon_pct_of_core"] = float64(daemon1-daemon0) / clockTicks / idle.Seconds() * 100
	if err := <-profiled; err != nil {
		return m, fmt.Errorf("profile the daemon: %w", err)
	}
	m["loadavg_1m_before_idle"], m["loadavg_1m_after_idle"] = load0, loadAverage()
	m["processes"] = float64(len(ps.all()))
	total, err := ps.totalPSS()
	if err != nil {
		return m, err
	}
	m["total_pss_mib"] = mibf(total)
	if ps.daemon > 0 {
		rss, _ := framework.ProcessRSS(ps.daemon)
		pss, _ := framework.ProcessPSS(ps.daemon)
		m["daemon_rss_idle_mib"], m["daemon_pss_idle_mib"] = mibf(rss), mibf(pss)
	}
	perPod, _, err := ps.perPod()
	if err != nil {
		return m, err
	}
	m["pss_per_pod_mib"] = mibf(perPod)

	ids := slices.Concat(b.pods, b.ctrs, b.uids)
	t0 := time.Now()
	if err := b.removePods(ctx, e); err != nil {
		return m, fmt.Errorf("remove pods: %w", err)
	}
	m["teardown_s"] = time.Since(t0).Seconds()
	// What the runtime finishes after answering (an asynchronous network teardown) counts
	// as left over only if it is still there after a while.
	var left leftovers
	deadline := time.Now().Add(30 * time.Second)
	for {
		left = findLeftovers(ids, e.bridge, b.ports0)
		if left.none() || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	m["teardown_settled_s"] = time.Since(t0).Seconds()
	m["left_processes"], m["left_mounts"] = float64(left.processes), float64(left.mounts)
	m["left_cgroups"], m["left_bridge_ports"] = float64(left.cgroups), float64(left.ports)
	if !left.none() {
		return m, fmt.Errorf("left after removing every pod: %+v", left)
	}
	return m, nil
}

// procSet is what a runtime runs for a set of pods: its daemon, each pod's monitor (a shim)
// and the processes the monitor runs that are not containers (a PID holder, a pause).
type procSet struct {
	daemon  int
	shims   map[string]int // by pod
	holders map[string][]int
}

func (ps procSet) all() []int {
	var out []int
	if ps.daemon > 0 {
		out = append(out, ps.daemon)
	}
	for pod, s := range ps.shims {
		out = append(out, s)
		out = append(out, ps.holders[pod]...)
	}
	return out
}

type procInfo struct {
	ppid int
	argv []string
}

// runtimeProcesses finds the shims of pods (the process whose arguments hold the pod's id:
// peapod-shim's --pod-id, containerd-shim's -id) and the holders among their children (a
// command line naming pause: peapod-shim pause, containerd's /pause).
func runtimeProcesses(daemon int, pods []string) (procSet, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return procSet{}, err
	}
	procs := map[int]procInfo{}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		ppid, err := statPPID(pid)
		if err != nil {
			continue
		}
		procs[pid] = procInfo{ppid: ppid, argv: strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")}
	}
	want := map[string]bool{}
	for _, p := range pods {
		want[p] = true
	}
	ps := procSet{daemon: daemon, shims: map[string]int{}, holders: map[string][]int{}}
	for pid, p := range procs {
		if pid == daemon {
			continue
		}
		for _, a := range p.argv {
			if want[a] {
				ps.shims[a] = pid
				break
			}
		}
	}
	for pid, p := range procs {
		for pod, shim := range ps.shims {
			if p.ppid == shim && slices.ContainsFunc(p.argv, func(a string) bool { return a == "pause" || filepath.Base(a) == "pause" }) {
				ps.holders[pod] = append(ps.holders[pod], pid)
			}
		}
	}
	if len(ps.shims) != len(pods) {
		return ps, fmt.Errorf("found the monitor of %d of %d pods", len(ps.shims), len(pods))
	}
	return ps, nil
}

// statFields are the fields of /proc/<pid>/stat after the command name: [0] is field 3
// (state), [1] the ppid, [11] utime, [12] stime.
func statFields(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return nil, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f, nil
}

func statPPID(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// cpuTicks is the cpu time (utime+stime, clock ticks) used so far by every process of ps.
func (ps procSet) cpuTicks() (int64, error) {
	var sum int64
	for _, pid := range ps.all() {
		f, err := statFields(pid)
		if err != nil {
			return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		sum += u + s
	}
	return sum, nil
}

// wakeups is how many times the threads of ps's processes were switched out so far
// (voluntary and not): each is a wake-up that preceded it.
func (ps procSet) wakeups() int64 {
	var sum int64
	for _, pid := range ps.all() {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, t := range tasks {
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
			if err != nil {
				continue
			}
			for line := range strings.Lines(string(raw)) {
				if k, v, ok := strings.Cut(line, ":"); ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					sum += n
				}
			}
		}
	}
	return sum
}

func (ps procSet) totalPSS() (int64, error) {
	var sum int64
	for _, pid := range ps.all() {
		p, err := framework.ProcessPSS(pid)
		if err != nil {
			return 0, err
		}
		sum += p
	}
	return sum, nil
}

// perPod is the PSS and RSS of each pod's own processes (monitor and holders), averaged.
func (ps procSet) perPod() (pss, rss int64, err error) {
	if len(ps.shims) == 0 {
		return 0, 0, errors.New("no pods")
	}
	for pod, s := range ps.shims {
		for _, pid := range append([]int{s}, ps.holders[pod]...) {
			p, err1 := framework.ProcessPSS(pid)
			r, err2 := framework.ProcessRSS(pid)
			if err := errors.Join(err1, err2); err != nil {
				return 0, 0, err
			}
			pss, rss = pss+p, rss+r
		}
	}
	n := int64(len(ps.shims))
	return pss / n, rss / n, nil
}

// leftovers counts what is left of removed pods on the node.
type leftovers struct {
	processes, mounts, cgroups, ports int
}

func (l leftovers) none() bool { return l == leftovers{} }

// findLeftovers looks for processes, mounts and cgroups naming any of ids (pod and container
// ids, pod uids), and for more ports on bridge than ports0.
func findLeftovers(ids []string, bridge string, ports0 int) leftovers {
	var l leftovers
	mentions := func(s string) bool {
		for _, id := range ids {
			if strings.Contains(s, id) {
				return true
			}
		}
		return false
	}
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		if raw, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline")); err == nil && mentions(string(raw)) {
			l.processes++
		}
	}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if mentions(sc.Text()) {
				l.mounts++
			}
		}
		f.Close()
	}
	for _, root := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids"} {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.Count(strings.TrimPrefix(p, root), "/") > 5 {
				return fs.SkipDir
			}
			if mentions(d.Name()) {
				l.cgroups++
				return fs.SkipDir
			}
			return nil
		})
	}
	if bridge != "" {
		l.ports = max(bridgePorts(bridge)-ports0, 0)
	}
	return l
}

// bridgePorts counts the interfaces attached to bridge (0 when there is no such bridge).
func bridgePorts(bridge string) int {
	if bridge == "" {
		return 0
	}
	ports, _ := filepath.Glob(filepath.Join("/sys/class/net", bridge, "brif", "*"))
	return len(ports)
}

// nodeCPUTicks returns the node's busy and total CPU time from /proc/stat (clock ticks, all
// cores); zeros when it cannot be read.
func nodeCPUTicks() (busy, total uint64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	busy, total, _ = parseCPULine(line)
	return busy, total
}

// parseCPULine reads /proc/stat's first line ("cpu user nice system idle iowait irq softirq
// steal ..."): busy is everything but idle and iowait, total is the sum of every field.
func parseCPULine(line string) (busy, total uint64, err error) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("not /proc/stat's cpu line: %q", line)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat cpu field %d: %w", i+1, err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// loadAverage is the node's one-minute load average (0 when unreadable).
func loadAverage() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// profileDaemon writes a cpu profile of a peapod over d from its debug socket to path.
func profileDaemon(ctx context.Context, socket string, d time.Duration, path string) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://peapod/debug/pprof/profile?seconds=%d", int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("debug endpoint: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// listenerPID is the process holding the unix socket bound at path (0 when not found): the
// runtime behind an -endpoint given without -pid.
func listenerPID(path string) int {
	raw, err := os.ReadFile("/proc/net/unix")
	if err != nil || path == "" {
		return 0
	}
	inode := ""
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) >= 8 && f[7] == path {
			inode = f[6]
			break
		}
	}
	if inode == "" {
		return 0
	}
	target := "socket:[" + inode + "]"
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", ent.Name(), "fd"))
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", ent.Name(), "fd", fd.Name())); err == nil && l == target {
				return pid
			}
		}
	}
	return 0
}
