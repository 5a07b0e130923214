package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// memoryPods is how many pods the memory scenario runs at once.
const memoryPods = 20

// ctrBench is the state of one container scenario: its pod and the container of the
// previous run, removed (untimed) before the next.
type ctrBench struct {
	name   string
	podID  string
	podCfg *runtimeapi.PodSandboxConfig
	prev   string
	// pods are the pods a scenario made per run (pod-to-running, memory).
	pods    []string
	metrics map[string]float64
}

func benchPodConfig(name string, i int) *runtimeapi.PodSandboxConfig {
	uid := fmt.Sprintf("bench-%s-%d-%d", name, i, time.Now().UnixNano())
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("%s-%d", strings.ToLower(name), i), Namespace: "bench", Uid: uid},
		Hostname: "bench",
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			// What a kubelet sends for a pod without shareProcessNamespace.
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
}

// benchContainer is busybox running args (sleep 3600 by default).
func benchContainer(name string, args ...string) *runtimeapi.ContainerConfig {
	if len(args) == 0 {
		args = []string{"sleep", "3600"}
	}
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: framework.ImageBusybox},
		Command:  args,
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

func pullBusybox(ctx context.Context, e *env) error {
	if e.image == nil {
		return fmt.Errorf("image service: %w", e.imageErr)
	}
	if st, err := e.image.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, false); err == nil && st.GetImage() != nil {
		return nil
	}
	_, err := e.image.PullImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil)
	return err
}

func (b *ctrBench) setup(ctx context.Context, e *env) error {
	if err := pullBusybox(ctx, e); err != nil {
		return err
	}
	b.podCfg = benchPodConfig(b.name, 0)
	id, err := e.runtime.RunPodSandbox(ctx, b.podCfg, "")
	b.podID = id
	return err
}

func (b *ctrBench) teardown(ctx context.Context, e *env) error {
	var errs []error
	for _, id := range append(b.pods, b.podID) {
		if id == "" {
			continue
		}
		errs = append(errs, e.runtime.StopPodSandbox(ctx, id), e.runtime.RemovePodSandbox(ctx, id))
	}
	b.pods, b.podID, b.prev = nil, "", ""
	return errors.Join(errs...)
}

// dropPrev removes the previous run's container.
func (b *ctrBench) dropPrev(ctx context.Context, e *env) error {
	if b.prev == "" {
		return nil
	}
	id := b.prev
	b.prev = ""
	return e.runtime.RemoveContainer(ctx, id)
}

func (b *ctrBench) create(ctx context.Context, e *env, i int, args ...string) (string, error) {
	cfg := benchContainer(fmt.Sprintf("c%d", i+1000), args...)
	id, err := e.runtime.CreateContainer(ctx, b.podID, cfg, b.podCfg)
	b.prev = id
	return id, err
}

// containerScenarios measure the container lifecycle RPCs and the memory a pod costs.
func containerScenarios() []scenario {
	create := &ctrBench{name: "CreateContainer"}
	start := &ctrBench{name: "StartContainer"}
	stop := &ctrBench{name: "StopContainer"}
	remove := &ctrBench{name: "RemoveContainer"}
	toRunning := &ctrBench{name: "PodToRunning"}
	execSync := &ctrBench{name: "ExecSyncTrue"}
	mem := &ctrBench{name: "Memory"}
	first := &ctrBench{name: "CreateContainer/first-in-pod"}
	var next string
	return []scenario{
		{
			// The pod's first container also starts the pod's shim: the part of
			// pod-to-running that is neither RunPodSandbox nor a later create.
			name: first.name, setup: pullBusybox, teardown: first.teardown,
			prepare: func(ctx context.Context, e *env, i int) error {
				if err := first.teardown(ctx, e); err != nil {
					return err
				}
				first.podCfg = benchPodConfig("first", i+1000)
				var err error
				first.podID, err = e.runtime.RunPodSandbox(ctx, first.podCfg, "")
				return err
			},
			run: func(ctx context.Context, e *env, i int) error {
				_, err := first.create(ctx, e, i)
				return err
			},
		},
		{
			name: create.name, setup: create.setup, teardown: create.teardown,
			prepare: func(ctx context.Context, e *env, _ int) error { return create.dropPrev(ctx, e) },
			run: func(ctx context.Context, e *env, i int) error {
				_, err := create.create(ctx, e, i)
				return err
			},
		},
		{
			name: start.name, setup: start.setup, teardown: start.teardown,
			prepare: func(ctx context.Context, e *env, i int) error {
				if err := start.dropPrev(ctx, e); err != nil {
					return err
				}
				var err error
				next, err = start.create(ctx, e, i)
				return err
			},
			run: func(ctx context.Context, e *env, _ int) error { return e.runtime.StartContainer(ctx, next) },
		},
		{
			// busybox sh as PID 1 of its namespace (the kernel drops signals PID 1 does not
			// handle) traps TERM; the wait builtin returns at once when it comes.
			name: stop.name, setup: stop.setup, teardown: stop.teardown,
			prepare: func(ctx context.Context, e *env, i int) error {
				if err := stop.dropPrev(ctx, e); err != nil {
					return err
				}
				var err error
				if next, err = stop.create(ctx, e, i, "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"); err != nil {
					return err
				}
				if err := e.runtime.StartContainer(ctx, next); err != nil {
					return err
				}
				// The trap must be set before the signal comes.
				time.Sleep(30 * time.Millisecond)
				return nil
			},
			run: func(ctx context.Context, e *env, _ int) error {
				if err := e.runtime.StopContainer(ctx, next, 10); err != nil {
					return err
				}
				st, err := e.runtime.ContainerStatus(ctx, next, false)
				if err != nil {
					return err
				}
				if st.GetStatus().GetExitCode() != 0 {
					return fmt.Errorf("stopped with exit code %d: SIGTERM was not handled", st.GetStatus().GetExitCode())
				}
				return nil
			},
		},
		{
			name: remove.name, setup: remove.setup, teardown: remove.teardown,
			prepare: func(ctx context.Context, e *env, i int) error {
				var err error
				if next, err = remove.create(ctx, e, i); err != nil {
					return err
				}
				remove.prev = ""
				if err := e.runtime.StartContainer(ctx, next); err != nil {
					return err
				}
				return e.runtime.StopContainer(ctx, next, 0)
			},
			run: func(ctx context.Context, e *env, _ int) error { return e.runtime.RemoveContainer(ctx, next) },
		},
		{
			name: toRunning.name,
			setup: func(ctx context.Context, e *env) error {
				return pullBusybox(ctx, e)
			},
			teardown: toRunning.teardown,
			prepare: func(ctx context.Context, e *env, _ int) error {
				// Keep at most a few pods around, removing the oldest untimed.
				var errs []error
				for len(toRunning.pods) > 2 {
					id := toRunning.pods[0]
					toRunning.pods = toRunning.pods[1:]
					errs = append(errs, e.runtime.StopPodSandbox(ctx, id), e.runtime.RemovePodSandbox(ctx, id))
				}
				return errors.Join(errs...)
			},
			run: func(ctx context.Context, e *env, i int) error {
				cfg := benchPodConfig(toRunning.name, i+1000)
				pod, err := e.runtime.RunPodSandbox(ctx, cfg, "")
				if err != nil {
					return err
				}
				toRunning.pods = append(toRunning.pods, pod)
				id, err := e.runtime.CreateContainer(ctx, pod, benchContainer("main"), cfg)
				if err != nil {
					return err
				}
				return e.runtime.StartContainer(ctx, id)
			},
		},
		{
			name: execSync.name,
			setup: func(ctx context.Context, e *env) error {
				if err := execSync.setup(ctx, e); err != nil {
					return err
				}
				var err error
				if next, err = execSync.create(ctx, e, 0); err != nil {
					return err
				}
				return e.runtime.StartContainer(ctx, next)
			},
			teardown: execSync.teardown,
			run: func(ctx context.Context, e *env, _ int) error {
				_, _, err := e.runtime.ExecSync(ctx, next, []string{"true"}, 10*time.Second)
				return err
			},
		},
		{
			// Each timed run is one more pod (RunPodSandbox+Create+Start); the figures that
			// matter are the memory metrics taken with memoryPods pods running.
			name: mem.name, runs: memoryPods, noWarmup: true,
			setup: func(ctx context.Context, e *env) error {
				if err := pullBusybox(ctx, e); err != nil {
					return err
				}
				mem.metrics = map[string]float64{}
				if pid := e.pid(); pid > 0 {
					rss, _ := framework.ProcessRSS(pid)
					mem.metrics["daemon_rss_before_mib"] = mibf(rss)
				}
				return nil
			},
			teardown: mem.teardown,
			run: func(ctx context.Context, e *env, i int) error {
				if len(mem.pods) >= memoryPods {
					return nil
				}
				cfg := benchPodConfig(mem.name, i+1000)
				pod, err := e.runtime.RunPodSandbox(ctx, cfg, "")
				if err != nil {
					return err
				}
				mem.pods = append(mem.pods, pod)
				id, err := e.runtime.CreateContainer(ctx, pod, benchContainer("main"), cfg)
				if err != nil {
					return err
				}
				return e.runtime.StartContainer(ctx, id)
			},
			metrics: func(ctx context.Context, e *env) (map[string]float64, error) {
				if len(mem.pods) < memoryPods {
					return mem.metrics, fmt.Errorf("only %d of %d pods ran", len(mem.pods), memoryPods)
				}
				time.Sleep(500 * time.Millisecond) // let the shims settle
				if pid := e.pid(); pid > 0 {
					rss, _ := framework.ProcessRSS(pid)
					mem.metrics["daemon_rss_20_pods_mib"] = mibf(rss)
				}
				var rss, pss, holders int64
				// What RSS is made of: private memory (USS: the Go heap, stacks, runtime
				// structures; all of it counts in PSS) and mapped file pages (the binary and
				// libc, shared by every shim, a 1/n share each in PSS).
				var uss, anon, file, threads int64
				n := 0
				for _, pod := range mem.pods {
					pid, err := shimPid(pod)
					if err != nil {
						return mem.metrics, err
					}
					r, err1 := framework.ProcessRSS(pid)
					p, err2 := framework.ProcessPSS(pid)
					if err := errors.Join(err1, err2); err != nil {
						return mem.metrics, err
					}
					rss, pss, n = rss+r, pss+p, n+1
					u, err := processUSS(pid)
					if err != nil {
						return mem.metrics, err
					}
					st, err := framework.ProcessStatus(pid)
					if err != nil {
						return mem.metrics, err
					}
					uss += u
					anon += statusBytes(st["RssAnon"])
					file += statusBytes(st["RssFile"])
					th, _ := strconv.ParseInt(st["Threads"], 10, 64)
					threads += th
					kids, _ := framework.ChildPIDs(pid)
					for _, k := range kids {
						if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", k)); bytes.Contains(b, []byte("pause")) {
							r, _ := framework.ProcessRSS(k)
							holders += r
						}
					}
				}
				mem.metrics["shim_rss_per_pod_mib"] = mibf(rss / int64(n))
				mem.metrics["shim_pss_per_pod_mib"] = mibf(pss / int64(n))
				mem.metrics["pid_holder_rss_per_pod_mib"] = mibf(holders / int64(n))
				mem.metrics["shim_uss_per_pod_mib"] = mibf(uss / int64(n))
				mem.metrics["shim_rss_anon_per_pod_mib"] = mibf(anon / int64(n))
				mem.metrics["shim_rss_file_per_pod_mib"] = mibf(file / int64(n))
				mem.metrics["shim_threads_per_pod"] = float64(threads*100/int64(n)) / 100
				return mem.metrics, nil
			},
		},
	}
}

// processUSS is the memory only pid maps (Private_Clean + Private_Dirty of smaps_rollup), in
// bytes: what stopping it would free.
func processUSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	var uss int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "Private_Clean" || k == "Private_Dirty") {
			uss += statusBytes(v)
		}
	}
	return uss, nil
}

// statusBytes parses a /proc size such as "1234 kB".
func statusBytes(v string) int64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n * 1024
}

func mibf(b int64) float64 { return float64(b*100/(1<<20)) / 100 }

// shimPid finds the peapod-shim of a pod: its command line is
// "peapod-shim serve --pod-id <id> ...".
func shimPid(podID string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	want := []byte("serve\x00--pod-id\x00" + podID + "\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(raw, want) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no peapod-shim serving pod %s on this machine", podID)
}
