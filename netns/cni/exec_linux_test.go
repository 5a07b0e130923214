package cni

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"
)

// TestPluginExec runs fake plugins (shell scripts) through pluginExec: a plugin's answer is
// what libcni's exec would make of it (result, CNI error, stderr, exit status or signal),
// and every plugin is reaped once it has answered.
func TestPluginExec(t *testing.T) {
	dir := t.TempDir()
	plugin := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	reaped := make(chan int, 16)
	var stderr bytes.Buffer
	e := newExec(&stderr).(*pluginExec)
	e.reaped = func(pid int) { reaped <- pid }
	// waitReaped returns the pid of the next plugin reaped, failing t after 5 s without one.
	waitReaped := func(t *testing.T, what string) int {
		t.Helper()
		select {
		case pid := <-reaped:
			return pid
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not reaped 5 s after it answered", what)
			return 0
		}
	}

	tests := []struct {
		name, body string
		out        string // stdout on success
		msg        string // in the error's Msg on failure
		code       uint   // the CNI error's code
	}{
		{name: "result", body: `cat >/dev/null; echo warn >&2; printf '{"cniVersion":"1.0.0"}'`, out: `{"cniVersion":"1.0.0"}`},
		{name: "del", body: `exit 0`},
		{name: "cni-error", body: `printf '{"cniVersion":"1.0.0","code":7,"msg":"bad config"}'; exit 1`, msg: "bad config", code: 7},
		{name: "stderr", body: `echo broken >&2; exit 3`, msg: `"broken\n": exit status 3`},
		{name: "silent", body: `exit 1`, msg: "no error message: exit status 1"},
		{name: "killed", body: `kill -9 $$`, msg: "signal: killed"},
		{name: "garbage", body: `head -c 100000 /dev/zero; exit 1`, msg: "error parsing its diagnostic message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stderr.Reset()
			out, err := e.ExecPlugin(context.Background(), plugin(tc.name, tc.body), []byte(`{"cniVersion":"1.0.0"}`), os.Environ())
			if tc.msg == "" {
				if err != nil || string(out) != tc.out {
					t.Fatalf("got %q, %v; want %q", out, err, tc.out)
				}
			} else {
				var ce *types.Error
				if !errors.As(err, &ce) || !strings.Contains(ce.Msg, tc.msg) || ce.Code != tc.code {
					t.Fatalf("got %q, %v (%T); want a CNI error with code %d saying %q", out, err, err, tc.code, tc.msg)
				}
				if len(ce.Msg) > 4*maxQuoted+256 { // %q writes a byte as up to 4
					t.Errorf("error message of %d bytes", len(ce.Msg))
				}
			}
			if tc.name == "result" && stderr.String() != "warn\n" {
				t.Errorf("stderr passed on: %q, want %q", stderr.String(), "warn\n")
			}
			// Reaped: no longer a child of this process.
			pid := waitReaped(t, "plugin")
			var info unix.Siginfo
			if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil); !errors.Is(err, unix.ECHILD) {
				t.Errorf("plugin %d still a child after its reap: %v", pid, err)
			}
		})
	}

	t.Run("gomaxprocs", func(t *testing.T) {
		// One P unless the environment chooses: the plugin answers the GOMAXPROCS it got.
		p := plugin("gomaxprocs", `printf '%s' "$GOMAXPROCS"`)
		for _, tc := range []struct {
			environ []string
			want    string
		}{
			{[]string{"PATH=/usr/bin:/bin"}, "1"},
			{[]string{"PATH=/usr/bin:/bin", "GOMAXPROCS=3"}, "3"},
		} {
			out, err := e.ExecPlugin(context.Background(), p, nil, tc.environ)
			if err != nil || string(out) != tc.want {
				t.Errorf("environ %q: plugin saw GOMAXPROCS=%q, %v; want %q", tc.environ, out, err, tc.want)
			}
			waitReaped(t, "plugin")
		}
	})

	t.Run("flood", func(t *testing.T) {
		_, err := e.ExecPlugin(context.Background(), plugin("flood", "head -c 5000000 /dev/zero"), nil, os.Environ())
		if !errors.Is(err, errTooMuchOutput) {
			t.Fatalf("got %v, want %v", err, errTooMuchOutput)
		}
		waitReaped(t, "plugin")
	})

	t.Run("busy", func(t *testing.T) {
		// A plugin open for writing cannot be executed (ETXTBSY): it is tried again once
		// the writer is done.
		p := plugin("busy", `printf '{"cniVersion":"1.0.0"}'`)
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(300*time.Millisecond, func() { w.Close() })
		out, err := e.ExecPlugin(context.Background(), p, nil, os.Environ())
		if err != nil || string(out) != `{"cniVersion":"1.0.0"}` {
			t.Fatalf("got %q, %v", out, err)
		}
		waitReaped(t, "plugin")
	})

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := e.ExecPlugin(ctx, plugin("slow", "exec sleep 30"), nil, os.Environ())
		if err == nil || time.Since(start) > 10*time.Second {
			t.Fatalf("cancelled plugin: %v after %v, want a failure at once", err, time.Since(start))
		}
		waitReaped(t, "cancelled plugin")
	})
}
