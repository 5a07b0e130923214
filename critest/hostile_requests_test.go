package critest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

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

// TestHostPathIntoRuntimeProcRefused: a mount's host path is resolved by the runtime, so
// /proc/self (and what leads there: /proc/thread-self, /dev/fd, the runtime's own pid)
// would name the runtime's own files, such as its metadata database. Such mounts are
// InvalidArgument and leave nothing behind.
func TestHostPathIntoRuntimeProcRefused(t *testing.T) {
	pod := newTestPod(t, "proc-self", nil)
	paths := []string{"/proc/self/fd/0", "/proc/self/root/etc", "/proc/thread-self/fd/0", "/dev/fd/0", "/dev/stdin", "/proc/self/../self/fd/0"}
	if pod.daemon != nil {
		pid := pod.daemon.PID()
		paths = append(paths, "/proc/"+strconv.Itoa(pid)+"/fd/0")
		// The case that was seen: the fd of the daemon's metadata database.
		db := filepath.Join(pod.daemon.Root(), "meta.db")
		fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		for _, fd := range fds {
			if target, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); target == db {
				paths = append(paths, "/proc/self/fd/"+fd.Name())
			}
		}
		if len(paths) < 8 {
			t.Errorf("found no fd of %s in the daemon (pid %d)", db, pid)
		}
		// A thread of the daemon other than its main one reaches it too.
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		for _, task := range tasks {
			if task.Name() != strconv.Itoa(pid) {
				paths = append(paths, "/proc/"+task.Name()+"/fd/0")
				break
			}
		}
	}
	for i, p := range paths {
		t.Run(p, func(t *testing.T) {
			cfg := sleeper("proc-"+strconv.Itoa(i), framework.ImageBusybox, nil)
			cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/mnt/x", HostPath: p}}
			pod.refused(t, cfg, codes.InvalidArgument, "/proc")
		})
	}
}
