package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/shim"
)

// TestServeStartsWithOneP checks procs.go's constructor on the real binary: `serve` runs
// with GOMAXPROCS=1 in the environment it was executed with (so the runtime never had a
// second P), same pid and arguments; a GOMAXPROCS the caller set is kept.
func TestServeStartsWithOneP(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP-REASON: -short skips building peapod-shim")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "peapod-shim")
	build := exec.Command("go", "build", "-tags", "seccomp", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for i, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"unset", nil, "GOMAXPROCS=1"},
		{"set by the caller", []string{"GOMAXPROCS=2"}, "GOMAXPROCS=2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stateDir := filepath.Join(dir, "pod-"+strconv.Itoa(i))
			cmd := exec.Command(bin, "serve", "--pod-id", "procs-test", "--state-dir", stateDir)
			cmd.Env = append(withoutGOMAXPROCS(os.Environ()), tc.env...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					_ = cmd.Process.Kill()
					<-done
				}
			})
			// Serving means the Go program runs: its socket exists.
			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, err := os.Stat(shim.SocketPath(stateDir)); err == nil {
					break
				}
				if time.Now().After(deadline) {
					log, _ := os.ReadFile(shim.LogPath(stateDir))
					t.Fatalf("shim does not serve after 10s; log:\n%s", log)
				}
				time.Sleep(10 * time.Millisecond)
			}
			environ, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range bytes.Split(environ, []byte{0}) {
				if bytes.HasPrefix(kv, []byte("GOMAXPROCS=")) {
					got = append(got, string(kv))
				}
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("environment of serve has %q, want [%s]", got, tc.want)
			}
			cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline")
			if !bytes.HasPrefix(cmdline, []byte(bin+"\x00serve\x00--pod-id\x00procs-test\x00")) {
				t.Errorf("command line after re-execution: %q", cmdline)
			}
		})
	}
}

func withoutGOMAXPROCS(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			out = append(out, kv)
		}
	}
	return out
}
