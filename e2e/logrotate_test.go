package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestContainerLogRotation: once a container's log passes the kubelet's containerLogMaxSize
// (10 MiB by default), the kubelet renames it and asks the runtime to reopen it
// (ReopenContainerLog): kubectl logs then starts at the rotation, and what the container
// writes after it keeps arriving.
func TestContainerLogRotation(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	runningPod(t, ns, bbPod("chatty", `echo start; yes 'filler filler filler filler filler filler filler filler' | head -c 12000000; i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done`))

	lastTick := func() (int, string) {
		out, err := kubectl(t, "logs", "-n", ns, "chatty", "--tail=1")
		if err != nil {
			return -1, err.Error()
		}
		var n int
		if _, err := fmt.Sscanf(out, "tick %d", &n); err != nil {
			return -1, out
		}
		return n, out
	}
	// The kubelet checks the log's size every 10 s.
	var first, last string
	waitFor(t, 90*time.Second, func() bool {
		out, err := kubectl(t, "logs", "-n", ns, "chatty", "--limit-bytes=64")
		if err != nil {
			first = err.Error()
			return false
		}
		first, _, _ = strings.Cut(out, "\n")
		n, _ := lastTick()
		return first != "start" && n >= 0
	}, func() string { return fmt.Sprintf("log not rotated: first line %q", first) })
	before, _ := lastTick()
	var after int
	waitFor(t, 10*time.Second, func() bool {
		after, last = lastTick()
		return after > before
	}, func() string {
		return fmt.Sprintf("no new line after the rotation (last %q after tick %d)", last, before)
	})
	if s := ctrStatusOf(getPod(t, ns, "chatty"), "c"); s.RestartCount != 0 || s.State.Running == nil {
		t.Errorf("container disturbed by the log rotation: %+v", s.State)
	}
}
