package chaos

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// sample is the daemon's footprint after one soak cycle.
type sample struct {
	rss                      int64
	fds, threads, goroutines int
}

// Soak bounds: over the second half of the run the daemon's RSS may grow by at most
// soakRSSFraction of its mid-run value or soakRSSBytes, whichever is larger; its fds and
// threads stay within ±soakSlack, its goroutines within ±soakGoroutineSlack. Each figure
// is the median (RSS) or minimum (counts) of a window of samples, so that a call still
// finishing does not count.
const (
	soakRSSFraction    = 0.10
	soakRSSBytes       = 4 << 20
	soakSlack          = 2
	soakGoroutineSlack = 5
	soakWindow         = 5
	soakPodEvery       = 5 // every that many cycles a pod is run and removed as well
)

// TestSoak runs -chaos.cycles cycles of create/start/exec/stop/remove of a container (and
// every soakPodEvery cycles of a pod) and samples the daemon's RSS, fds, threads and
// goroutines after each: they must be flat (see the bounds above).
func TestSoak(t *testing.T) {
	framework.RequirePeapod(t)
	start := time.Now()
	n := startNode(t)
	before := snapshot(t, n.d)
	ctx := framework.Context(t)
	rt := n.c.Runtime
	podCfg := n.podConfig("soak", false)
	podID, err := rt.RunPodSandbox(ctx, podCfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	// The leak check must see what a live pod holds, or it could not see it leak.
	live := snapshot(t, n.d)
	for what, objs := range map[string][]string{"veth": added(before.veths, live.veths), "cgroup": added(before.cgroups, live.cgroups),
		"IPAM lease": added(before.leaseIPs, live.leaseIPs), "namespace pin": added(before.netns, live.netns)} {
		if len(objs) == 0 {
			t.Errorf("the leak check sees no %s of a live pod", what)
		}
	}
	var samples []sample
	execs := 0
	for i := range *flagCycles {
		name := fmt.Sprintf("soak%d", i)
		id, err := n.runContainer(ctx, podID, podCfg, shellContainer(name, "exec sleep 3600"))
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		stdout, _, err := rt.ExecSync(ctx, id, []string{"echo", name}, 10*time.Second)
		if err != nil || string(stdout) != name+"\n" {
			t.Fatalf("cycle %d: exec: %q, %v", i, stdout, err)
		}
		execs++
		if err := rt.StopContainer(ctx, id, 0); err != nil {
			t.Fatalf("cycle %d: stop: %v", i, err)
		}
		if err := rt.RemoveContainer(ctx, id); err != nil {
			t.Fatalf("cycle %d: remove: %v", i, err)
		}
		if i%soakPodEvery == 0 {
			cfg := n.podConfig(fmt.Sprintf("soakpod%d", i), i%2 == 0)
			pid, err := rt.RunPodSandbox(ctx, cfg, "")
			if err == nil {
				_, err = n.runContainer(ctx, pid, cfg, shellContainer("c", "exec sleep 3600"))
			}
			if err == nil {
				err = rt.StopPodSandbox(ctx, pid)
			}
			if err == nil {
				err = rt.RemovePodSandbox(ctx, pid)
			}
			if err != nil {
				t.Fatalf("cycle %d: pod: %v", i, err)
			}
		}
		s, err := footprint(t, n.d)
		if err != nil {
			t.Fatalf("cycle %d: sample: %v", i, err)
		}
		samples = append(samples, s)
	}
	if err := rt.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	leakKinds := checkNoLeak(t, n.d, before)

	mid, end := window(samples, len(samples)/2), window(samples, len(samples))
	growth := end.rss - mid.rss
	limit := max(int64(float64(mid.rss)*soakRSSFraction), soakRSSBytes)
	if growth > limit {
		t.Errorf("daemon RSS grew by %.1f MiB over the second half (%.1f -> %.1f MiB), limit %.1f MiB", mib(growth), mib(mid.rss), mib(end.rss), mib(limit))
	}
	for _, c := range []struct {
		what     string
		mid, end int
		slack    int
	}{
		{"fds", mid.fds, end.fds, soakSlack},
		{"threads", mid.threads, end.threads, soakSlack},
		{"goroutines", mid.goroutines, end.goroutines, soakGoroutineSlack},
	} {
		if d := c.end - c.mid; d > c.slack || d < -c.slack {
			t.Errorf("daemon %s went from %d to %d over the second half (allowed ±%d)", c.what, c.mid, c.end, c.slack)
		}
	}
	first := samples[0]
	t.Logf("CHAOS-FIGURES soak: cycles %d (execs %d, pods %d), daemon RSS first/mid/end %.1f/%.1f/%.1f MiB (growth over the second half %.2f MiB, limit %.1f MiB), fds %d/%d/%d, threads %d/%d/%d, goroutines %d/%d/%d, leak kinds checked %d, took %v",
		len(samples), execs, (len(samples)+soakPodEvery-1)/soakPodEvery, mib(first.rss), mib(mid.rss), mib(end.rss), mib(growth), mib(limit),
		first.fds, mid.fds, end.fds, first.threads, mid.threads, end.threads, first.goroutines, mid.goroutines, end.goroutines, leakKinds, time.Since(start).Round(time.Second))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// footprint samples the daemon after a garbage collection.
func footprint(t *testing.T, d *framework.Daemon) (sample, error) {
	ctx := framework.Context(t)
	if err := d.GC(ctx); err != nil {
		return sample{}, err
	}
	pid := d.PID()
	var s sample
	var err error
	if s.rss, err = framework.ProcessRSS(pid); err != nil {
		return s, err
	}
	fds, err := framework.ProcessFDs(pid)
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	if s.threads, err = framework.ProcessThreads(pid); err != nil {
		return s, err
	}
	if s.goroutines, err = d.Goroutines(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// window summarizes the soakWindow samples before index end: the median RSS and the
// smallest counts.
func window(samples []sample, end int) sample {
	lo := max(end-soakWindow, 0)
	w := samples[lo:end]
	if len(w) == 0 {
		w = samples[:1]
	}
	var rss []int64
	out := w[0]
	for _, s := range w {
		rss = append(rss, s.rss)
		out.fds, out.threads, out.goroutines = min(out.fds, s.fds), min(out.threads, s.threads), min(out.goroutines, s.goroutines)
	}
	slices.Sort(rss)
	out.rss = rss[len(rss)/2]
	return out
}
