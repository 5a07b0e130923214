package shim

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// sleeper starts a process that sleeps until killed, reaped in the background; the test
// kills it at its end if it still runs.
func sleeper(t *testing.T) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep binary to stand in for a holder: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, done
}

// TestWatchHolder: the watch reports the holder's exit once, when it happens (not before),
// at once for a holder gone before the watch began or whose pid another process took, and
// never after Close. No record means no holder: no watch, no error.
func TestWatchHolder(t *testing.T) {
	exitedCh := func() (chan int, func(*HolderWatch)) {
		ch := make(chan int, 2)
		return ch, func(w *HolderWatch) { ch <- w.Pid }
	}
	t.Run("exit", func(t *testing.T) {
		dir := t.TempDir()
		cmd, _ := sleeper(t)
		if err := WriteHolderFile(dir, cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		ch, exited := exitedCh()
		w, err := WatchHolder(dir, exited)
		if err != nil || w == nil || w.Pid != cmd.Process.Pid {
			t.Fatalf("WatchHolder: %v, %v", w, err)
		}
		defer w.Close()
		select {
		case pid := <-ch:
			t.Fatalf("exit of %d reported while it runs", pid)
		case <-time.After(200 * time.Millisecond):
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		select {
		case pid := <-ch:
			if pid != cmd.Process.Pid {
				t.Errorf("reported pid %d, want %d", pid, cmd.Process.Pid)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the holder's exit was not reported")
		}
		select {
		case <-ch:
			t.Error("the exit was reported twice")
		case <-time.After(100 * time.Millisecond):
		}
	})
	t.Run("closed", func(t *testing.T) {
		dir := t.TempDir()
		cmd, _ := sleeper(t)
		if err := WriteHolderFile(dir, cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		ch, exited := exitedCh()
		w, err := WatchHolder(dir, exited)
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		w.Close()
		_ = cmd.Process.Kill()
		select {
		case <-ch:
			t.Error("an exit was reported after Close")
		case <-time.After(300 * time.Millisecond):
		}
	})
	t.Run("gone before", func(t *testing.T) {
		dir := t.TempDir()
		cmd, reaped := sleeper(t)
		if err := WriteHolderFile(dir, cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Process.Kill()
		<-reaped
		watchReportsAtOnce(t, dir, exitedCh, "a holder gone before the watch was not reported")
	})
	t.Run("pid reused", func(t *testing.T) {
		dir := t.TempDir()
		cmd, _ := sleeper(t)
		// The record names our pid with another start time: a holder that is gone and whose
		// pid a later process has.
		if err := os.WriteFile(holderFile(dir), []byte(strconv.Itoa(cmd.Process.Pid)+" 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		watchReportsAtOnce(t, dir, exitedCh, "a reused pid was taken for the holder")
	})
	t.Run("none", func(t *testing.T) {
		w, err := WatchHolder(t.TempDir(), func(*HolderWatch) { t.Error("exit reported with no holder") })
		if w != nil || err != nil {
			t.Fatalf("no record: %v, %v; want nil, nil", w, err)
		}
	})
}

// watchReportsAtOnce watches the holder recorded in dir and fails t (with why) unless the
// watch reports its exit within 5 s.
func watchReportsAtOnce(t *testing.T, dir string, exitedCh func() (chan int, func(*HolderWatch)), why string) {
	t.Helper()
	ch, exited := exitedCh()
	w, err := WatchHolder(dir, exited)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal(why)
	}
}
