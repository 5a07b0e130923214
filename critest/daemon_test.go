package critest

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestSecondDaemonOnSameRootRefused: two daemons on one root would corrupt its store; the
// second must exit non-zero at once, naming the holder.
func TestSecondDaemonOnSameRootRefused(t *testing.T) {
	framework.RequirePeapod(t)
	first := framework.StartDaemon(t)
	second := framework.NewTestDaemon(t, framework.WithRoot(first.Root()), framework.WithStartTimeout(15*time.Second))
	start := time.Now()
	err := second.Start(t.Context())
	elapsed := time.Since(start)
	var ee *framework.ExitedError
	if !errors.As(err, &ee) {
		if second.Running() {
			_ = second.Kill()
		}
		t.Fatalf("second daemon on %s: %v; want it to exit non-zero", first.Root(), err)
	}
	if ee.ExitCode == 0 {
		t.Errorf("second daemon exited 0; want non-zero")
	}
	if elapsed > 5*time.Second {
		t.Errorf("second daemon took %s to give up; want at once", elapsed)
	}
	out := strings.ToLower(ee.Output)
	if !strings.Contains(out, "lock") {
		t.Errorf("second daemon's output does not mention the lock:\n%s", ee.Output)
	}
	if !regexp.MustCompile(`\b` + strconv.Itoa(first.PID()) + `\b`).MatchString(ee.Output) {
		t.Errorf("second daemon's output does not name the holder pid %d:\n%s", first.PID(), ee.Output)
	}
	// The first daemon is unharmed.
	rs := framework.MustConnectRuntime(t, first.Endpoint())
	if _, err := rs.Version(framework.Context(t), "v1"); err != nil {
		t.Errorf("first daemon after the refused start: %v", err)
	}
}

// TestMalformedConfigRefused: a config mistake stops the daemon with a non-zero status and a
// message naming the key and its line.
func TestMalformedConfigRefused(t *testing.T) {
	framework.RequirePeapod(t)
	cases := []struct {
		name string
		doc  string
		key  string // "" when the mistake has no key (syntax)
		line int
	}{
		{
			name: "wrong type",
			doc:  "# line 1\ncgroup_driver = \"cgroupfs\"\n\nlog_level = 5\n",
			key:  "log_level", line: 4,
		},
		{
			name: "unknown top-level key",
			doc:  "# line 1\ncgroup_driver = \"cgroupfs\"\nlog_level = \"info\"\n\nno_such_key = true\n",
			key:  "no_such_key", line: 5,
		},
		{
			name: "wrong type in table",
			doc:  "cgroup_driver = \"cgroupfs\"\n\n[network]\nconf_dir = \"/etc/cni/net.d\"\nbin_dirs = \"/opt/cni/bin\"\n",
			key:  "bin_dirs", line: 5,
		},
		{
			name: "unknown key in registry table",
			doc:  "[registries.\"registry.k8s.io\"]\nmirrors = [\"http://127.0.0.1:5000\"]\n\n[registries.\"docker.io\"]\nmirror = [\"http://127.0.0.1:5000\"]\n",
			key:  "mirror", line: 5,
		},
		{
			name: "syntax error",
			doc:  "cgroup_driver = \"cgroupfs\"\nlog_level = \"info\n",
			line: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := framework.NewTestDaemon(t, framework.WithRawConfig(tc.doc), framework.WithStartTimeout(15*time.Second))
			err := d.Start(t.Context())
			var ee *framework.ExitedError
			if !errors.As(err, &ee) {
				if d.Running() {
					_ = d.Kill()
				}
				t.Fatalf("daemon with a malformed config: %v; want it to exit non-zero", err)
			}
			if ee.ExitCode == 0 {
				t.Errorf("exit status 0; want non-zero")
			}
			if tc.key != "" && !strings.Contains(ee.Output, tc.key) {
				t.Errorf("output does not name the key %q:\n%s", tc.key, ee.Output)
			}
			lineRE := regexp.MustCompile(fmt.Sprintf(`(?i)(line\D{0,3}%d\b|:%d:\d+|:%d\b)`, tc.line, tc.line, tc.line))
			if !lineRE.MatchString(ee.Output) {
				t.Errorf("output does not name line %d:\n%s", tc.line, ee.Output)
			}
		})
	}
}

// TestPodCIDRSurvivesRestart: UpdateRuntimeConfig's pod CIDR is stored, not just held in
// memory.
func TestPodCIDRSurvivesRestart(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	ctx := framework.Context(t)
	rs, err := framework.ConnectRuntime(ctx, d.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	const cidr = "10.123.45.0/24"
	err = rs.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr}})
	_ = rs.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	rs = framework.MustConnectRuntime(t, d.Endpoint())
	resp, err := rs.Status(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := resp.Info["podCIDR"]
	if !ok || !strings.Contains(got, cidr) {
		t.Errorf("after restart, Status verbose info[\"podCIDR\"] = %q (present %v), want %s", got, ok, cidr)
	}
}

// TestSIGTERMExitsCleanly: SIGTERM (and SIGINT) stop the daemon with status 0 and remove
// its socket.
func TestSIGTERMExitsCleanly(t *testing.T) {
	framework.RequirePeapod(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			d := framework.StartDaemon(t)
			if err := d.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(t.Context()); err != nil {
				t.Fatalf("exit after %v: %v", sig, err)
			}
			if _, err := os.Stat(d.Socket()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket %s still exists after %v: %v", d.Socket(), sig, err)
			}
		})
	}
}

// TestRestartAfterKill: after SIGKILL the lock is released by the kernel and the stale socket
// must not stop the next start.
func TestRestartAfterKill(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatalf("start after SIGKILL: %v", err)
	}
}
