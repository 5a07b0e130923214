package critest

import (
	"strings"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// Hostile requests: what a careless or malicious CRI client can send, each refused with
// the code it must get or answered without harm to the daemon or other clients.

// TestExecSyncStreamsBoundedApart: a command flooding stderr does not crowd its stdout out of
// the answer; each stream keeps its own first bytes.
func TestExecSyncStreamsBoundedApart(t *testing.T) {
	pod := newTestPod(t, "exec-bounds", nil)
	id := pod.run(t, sleeper("flood", framework.ImageBusybox, nil))
	ctx := framework.Context(t)
	for _, tc := range []struct {
		name, script string
		stdout       func(string) bool
		stderr       func(string) bool
	}{
		{
			name:   "stderr flooded",
			script: "echo a line on stdout; head -c 100000000 /dev/zero >&2",
			stdout: func(s string) bool { return s == "a line on stdout\n" },
			stderr: func(s string) bool { return len(s) >= 8<<20 && len(s) <= 16<<20 },
		},
		{
			name:   "stdout flooded",
			script: "echo a line on stderr >&2; head -c 100000000 /dev/zero",
			stdout: func(s string) bool { return len(s) >= 8<<20 && len(s) <= 16<<20 },
			stderr: func(s string) bool { return s == "a line on stderr\n" },
		},
		{
			name:   "both flooded",
			script: "head -c 20000000 /dev/zero >&2 & head -c 20000000 /dev/zero; wait",
			stdout: func(s string) bool { return len(s) >= 8<<20-64 && len(s) <= 8<<20 },
			stderr: func(s string) bool { return len(s) >= 8<<20-64 && len(s) <= 8<<20 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := pod.rt.ExecSync(ctx, id, []string{"sh", "-c", tc.script}, 60*time.Second)
			if err != nil {
				t.Fatalf("ExecSync: %v", err)
			}
			if !tc.stdout(string(stdout)) || !tc.stderr(string(stderr)) {
				t.Errorf("stdout %d bytes %q, stderr %d bytes %q", len(stdout), head(stdout), len(stderr), head(stderr))
			}
			if len(stdout)+len(stderr) > 16<<20 {
				t.Errorf("%d bytes of output, over the 16 MiB a kubelet's client takes", len(stdout)+len(stderr))
			}
		})
	}
}

// head is the start of b, for messages.
func head(b []byte) string {
	const n = 40
	if len(b) > n {
		return strings.ToValidUTF8(string(b[:n]), "?") + "..."
	}
	return string(b)
}
