package client

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReapHoldsNoThread: waiting for 20 children costs the process no OS thread each (the
// daemon waits so for every pod's shim), and each exit is reaped and reported.
func TestReapHoldsNoThread(t *testing.T) {
	threads := func() int {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Threads:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n
			}
		}
		t.Fatal("no Threads line in /proc/self/status")
		return 0
	}
	before := threads()
	const n = 20
	var chans []<-chan error
	var cmds []*exec.Cmd
	for range n {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		chans = append(chans, reap(cmd))
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
		}
	})
	time.Sleep(200 * time.Millisecond) // let each waiter park
	if got := threads(); got-before >= n/2 {
		t.Errorf("threads %d -> %d while waiting for %d children: a thread each", before, got, n)
	}
	for _, c := range cmds {
		_ = c.Process.Kill()
	}
	for i, ch := range chans {
		select {
		case err := <-ch:
			if err == nil || !strings.Contains(err.Error(), "signal killed") {
				t.Errorf("child %d: exit = %v, want killed by signal", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("child %d: no exit reported", i)
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(cmds[i].Process.Pid)); err == nil {
			t.Errorf("child %d (pid %d) not reaped", i, cmds[i].Process.Pid)
		}
	}

	// An exit status is reported.
	cmd := exec.Command("sh", "-c", "exit 3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-reap(cmd); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("exit = %v, want exit status 3", err)
	}
}
