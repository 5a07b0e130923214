package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// memoryPods is how many pods the memory scenario runs at once.
const memoryPods = 20

// memoryScenario: each timed run is one more pod (RunPodSandbox+Create+Start, and one
// ExecSync, a path a real pod uses); the figures that matter are the memory metrics taken
// with memoryPods pods running. They are also what a peapod-shim costs per pod (the shim's
// own test once only logged them).
func memoryScenario() scenario {
	mem := &ctrBench{name: "Memory"}
	return scenario{
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
			id, err := mem.runPod(ctx, e, i)
			if err != nil {
				return err
			}
			_, _, err = e.runtime.ExecSync(ctx, id, []string{"true"}, 10*time.Second)
			return err
		},
		metrics: func(ctx context.Context, e *env) (map[string]float64, error) {
			if len(mem.pods) < memoryPods {
				return mem.metrics, fmt.Errorf("only %d of %d pods ran", len(mem.pods), memoryPods)
			}
			// Let the shims settle: each re-executes itself lean 1s after its last call.
			time.Sleep(2 * time.Second)
			if pid := e.pid(); pid > 0 {
				rss, _ := framework.ProcessRSS(pid)
				mem.metrics["daemon_rss_20_pods_mib"] = mibf(rss)
			}
			shims, err := shimMemory(mem.pods)
			if err != nil {
				return mem.metrics, err
			}
			for k, v := range shims {
				mem.metrics[k] = v
			}
			return mem.metrics, nil
		},
	}
}

// shimMemory is what the pods' shims (and PID namespace holders) cost, per pod.
func shimMemory(pods []string) (map[string]float64, error) {
	var rss, pss, holders int64
	// What RSS is made of: private memory (USS: the Go heap, stacks, runtime structures; all
	// of it counts in PSS) and mapped file pages (the binary and libc, shared by every shim,
	// a 1/n share each in PSS).
	var uss, anon, file, threads int64
	n := int64(len(pods))
	for _, pod := range pods {
		pid, _, err := framework.PeapodShim(pod)
		if err != nil {
			return nil, err
		}
		r, err1 := framework.ProcessRSS(pid)
		p, err2 := framework.ProcessPSS(pid)
		u, err3 := processUSS(pid)
		st, err4 := framework.ProcessStatus(pid)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, err
		}
		rss, pss, uss = rss+r, pss+p, uss+u
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
	return map[string]float64{
		"shim_rss_per_pod_mib":       mibf(rss / n),
		"shim_pss_per_pod_mib":       mibf(pss / n),
		"pid_holder_rss_per_pod_mib": mibf(holders / n),
		"shim_uss_per_pod_mib":       mibf(uss / n),
		"shim_rss_anon_per_pod_mib":  mibf(anon / n),
		"shim_rss_file_per_pod_mib":  mibf(file / n),
		"shim_threads_per_pod":       float64(threads*100/n) / 100,
	}, nil
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
