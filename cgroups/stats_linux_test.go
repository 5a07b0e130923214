package cgroups

import (
	"errors"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

// TestManagerStatsThrottled: a busy loop under a 10 ms per 100 ms quota is throttled, and its
// cpu time splits into user and system; the reader cached for the cgroup answers NotFound
// once the cgroup is gone, and reads a new cgroup at the same path again.
func TestManagerStatsThrottled(t *testing.T) {
	testutil.RequireRoot(t)
	sh := testutil.RequireBinary(t, "sh")
	ctx := t.Context()
	m := newTestManager(t, testTierRoot(t))
	p, err := m.PodCgroupParent("", randHex(t), Burstable)
	if err != nil {
		t.Fatal(err)
	}
	quota := Resources{CPUQuota: 10000, CPUPeriod: 100000}
	if err := m.CreatePod(ctx, p, Burstable, quota.ToSpec(m.IsV2())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.RemovePod(ctx, p) })
	cmd := exec.Command(sh, "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	t.Cleanup(stop)
	enter(t, p, cmd.Process.Pid)
	time.Sleep(450 * time.Millisecond)

	st, err := m.Stats(p, ExtraProcs|ExtraEvents|ExtraIO)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cpu %d ns (user %d, system %d), periods %d, throttled %d for %d ns",
		st.CPUUsageNanos, st.CPUUserNanos, st.CPUSystemNanos, st.CPUPeriods, st.CPUThrottledPeriods, st.CPUThrottledNanos)
	if st.CPUPeriods < 2 || st.CPUThrottledPeriods < 1 || st.CPUThrottledNanos == 0 {
		t.Errorf("periods %d, throttled %d for %d ns: want a throttled busy loop", st.CPUPeriods, st.CPUThrottledPeriods, st.CPUThrottledNanos)
	}
	// 10 ms of every 100 ms for 450 ms: about 50 ms, never the whole 450 ms.
	if st.CPUUsageNanos < 20e6 || st.CPUUsageNanos > 150e6 {
		t.Errorf("cpu %d ns under a 10%% quota for 450 ms", st.CPUUsageNanos)
	}
	if st.CPUUserNanos+st.CPUSystemNanos == 0 {
		t.Error("no user or system cpu time")
	}
	if !slices.Equal(st.Procs, []int{cmd.Process.Pid}) || st.Pids != 1 {
		t.Errorf("procs %v, pids %d; want the loop alone", st.Procs, st.Pids)
	}

	stop()
	// With nothing running, CPUUsage's one file says what Stats says.
	full, err := m.Stats(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := m.CPUUsage(p); err != nil || u != full.CPUUsageNanos || u == 0 {
		t.Errorf("CPUUsage = %d, %v; want Stats' %d", u, err, full.CPUUsageNanos)
	}
	if err := m.RemovePod(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stats(p, 0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Stats of the removed cgroup: %v, want NotFound", err)
	}
	if _, err := m.CPUUsage(p); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("CPUUsage of the removed cgroup: %v, want NotFound", err)
	}
	if err := m.CreatePod(ctx, p, Burstable, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Stats(p, ExtraProcs); err != nil || st.CPUUsageNanos != 0 || len(st.Procs) != 0 {
		t.Errorf("Stats of the new cgroup at the same path = %+v, %v; want an empty cgroup", st, err)
	}
}

func TestParseCPUUsage(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		v2   bool
		want uint64
		err  bool
	}{
		{"123456789\n", false, 123456789, false},
		{"usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n", true, 1500000, false},
		{"user_usec 1000\n", true, 0, true},
		{"", false, 0, true},
	} {
		got, err := parseCPUUsage([]byte(tc.raw), tc.v2)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("parseCPUUsage(%q, v2=%v) = %d, %v; want %d, error %v", tc.raw, tc.v2, got, err, tc.want, tc.err)
		}
	}
}
