package critest

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// streamCounts are the daemon's and the pod shim's goroutines and open fds.
type streamCounts struct {
	daemonGoroutines, daemonFDs, shimGoroutines, shimFDs int
	shimPID                                              int
}

// TestStreamLeaks: 200 exec sessions and 50 sessions whose client vanishes mid-stream leave
// the daemon's and the shim's goroutines and fds where they were, and no process behind.
//
// It runs on a daemon of its own: the shared one holds other tests' pods, and work for them
// during the run counts as a leak here (seen once: +1 goroutine and +1 pidfd, a PID holder
// watch, though this pod has no holder).
func TestStreamLeaks(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	c := framework.MustConnect(t, d.Endpoint())
	p := newTestPodOn(t, &testPod{rt: c.Runtime, img: c.Image, daemon: d}, "stream-leaks", nil)
	cfg := shell("main", "cat")
	cfg.Stdin = true
	id := p.run(t, cfg)
	ctx := framework.Context(t)

	counts := func() streamCounts {
		t.Helper()
		var c streamCounts
		var err error
		if c.daemonGoroutines, err = d.Goroutines(ctx); err != nil {
			t.Fatal(err)
		}
		info, err := d.ShimStats(ctx, p.id)
		if err != nil {
			t.Fatal(err)
		}
		c.shimGoroutines = info.Goroutines
		c.daemonFDs = countFDs(t, d.PID())
		c.shimFDs = countFDs(t, info.PID)
		c.shimPID = info.PID
		return c
	}
	exec := func(proto string, cmd []string, stdin io.Reader) streamResult {
		u := execURL(t, p.rt, &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Stdin: stdin != nil, Stdout: true, Stderr: true})
		return runStream(ctx, t, u, proto, stdin, false, nil)
	}
	// Warm up: connection pools, the first exec's lazily made state.
	for _, proto := range streamProtocols {
		exec(proto, []string{"true"}, nil)
	}
	before := settle(t, d, counts, streamCounts{})

	for i := range 200 {
		proto := streamProtocols[i%2]
		var r streamResult
		if i%4 < 2 {
			r = exec(proto, []string{"echo", "x"}, nil)
		} else {
			r = exec(proto, []string{"cat"}, strings.NewReader("y\n"))
		}
		if r.err != nil || strings.TrimSpace(r.stdout) == "" {
			t.Fatalf("exec %d over %s: %q %v", i, proto, r.stdout, r.err)
		}
	}
	// Clients that go away mid-stream: execs that would run for an hour, some reading stdin,
	// and attach sessions.
	for i := range 50 {
		proto := streamProtocols[i%2]
		sctx, cancel := context.WithCancel(ctx)
		var u string
		var opts = remoteOpts(nil, io.Discard, io.Discard, false)
		switch i % 3 {
		case 0:
			u = execURL(t, p.rt, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sleep", "3600"}, Stdout: true, Stderr: true})
		case 1:
			pr, pw := io.Pipe()
			defer pw.Close()
			opts.Stdin = pr
			u = execURL(t, p.rt, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo started; cat"}, Stdin: true, Stdout: true, Stderr: true})
		case 2:
			resp, err := p.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdout: true, Stderr: true})
			if err != nil {
				t.Fatal(err)
			}
			u = resp.Url
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = remoteExecutor(t, u, proto).StreamWithContext(sctx, opts)
		}()
		time.Sleep(30 * time.Millisecond)
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("disconnected session %d did not end on the client", i)
		}
	}

	after := settle(t, d, counts, before)
	t.Logf("goroutines daemon %d→%d shim %d→%d; fds daemon %d→%d shim %d→%d",
		before.daemonGoroutines, after.daemonGoroutines, before.shimGoroutines, after.shimGoroutines,
		before.daemonFDs, after.daemonFDs, before.shimFDs, after.shimFDs)
	if after.daemonGoroutines > before.daemonGoroutines || after.shimGoroutines > before.shimGoroutines ||
		after.daemonFDs > before.daemonFDs || after.shimFDs > before.shimFDs {
		t.Errorf("leak: before %+v, after %+v", before, after)
		for _, pid := range []int{d.PID(), after.shimPID} {
			fds, _ := framework.ProcessFDs(pid)
			t.Logf("fds of %d now: %v", pid, fds)
		}
	}
	// Every process a session started is gone: only the container's cat (and this ps) remain.
	ps := p.sh(t, id, "ps -o args")
	if strings.Contains(ps, "sleep") || strings.Count(ps, "cat") > 1 {
		t.Errorf("processes left in the container:\n%s", ps)
	}
}

// settle polls counts until they are no higher than want (or, with a zero want, until two
// readings agree), for up to 20s, and returns the last reading. Before each reading the daemon
// collects garbage and the shim is left alone for longer than its idle delay (it collects
// garbage when idle): the pidfds of processes they started are closed by finalizers.
func settle(t *testing.T, d *framework.Daemon, counts func() streamCounts, want streamCounts) streamCounts {
	t.Helper()
	read := func() streamCounts {
		if err := d.GC(framework.Context(t)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		return counts()
	}
	prev := read()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c := read()
		if want == (streamCounts{}) && c == prev {
			return c
		}
		if want != (streamCounts{}) && c.daemonGoroutines <= want.daemonGoroutines && c.shimGoroutines <= want.shimGoroutines &&
			c.daemonFDs <= want.daemonFDs && c.shimFDs <= want.shimFDs {
			return c
		}
		prev = c
	}
	return prev
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := framework.ProcessFDs(pid)
	if err != nil {
		t.Fatalf("fds of %d: %v", pid, err)
	}
	return len(fds)
}
