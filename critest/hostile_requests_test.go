package critest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	// A device's host path is resolved the same way.
	t.Run("device /dev/stdin", func(t *testing.T) {
		cfg := sleeper("proc-device", framework.ImageBusybox, nil)
		cfg.Devices = []*runtimeapi.Device{{ContainerPath: "/dev/x", HostPath: "/dev/stdin", Permissions: "rwm"}}
		pod.refused(t, cfg, codes.InvalidArgument, "/proc")
	})
}

// TestOversizedMetadataRefused: labels and annotations are capped together at 256 KiB per
// object, as Kubernetes caps an object's annotations; a 1 MiB label or annotation is
// InvalidArgument naming the limit, for pods and containers alike.
func TestOversizedMetadataRefused(t *testing.T) {
	pod := newTestPod(t, "big-meta", nil)
	ctx := framework.Context(t)
	mib := strings.Repeat("x", 1<<20)

	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:    &runtimeapi.PodSandboxMetadata{Name: "big-meta-pod", Namespace: "critest", Uid: fmt.Sprintf("big-meta-%d", time.Now().UnixNano())},
		Annotations: map[string]string{"big": mib},
		Linux:       &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
	}
	id, err := pod.rt.RunPodSandbox(ctx, cfg, "")
	if err == nil {
		_ = pod.rt.StopPodSandbox(ctx, id)
		_ = pod.rt.RemovePodSandbox(ctx, id)
		t.Errorf("RunPodSandbox with a 1 MiB annotation succeeded")
	} else if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "262144") {
		t.Errorf("RunPodSandbox with a 1 MiB annotation: %v; want InvalidArgument naming the 262144-byte limit", err)
	}

	c := sleeper("big-label", framework.ImageBusybox, nil)
	c.Labels = map[string]string{"big": mib}
	pod.refused(t, c, codes.InvalidArgument, "262144")
	c = sleeper("big-together", framework.ImageBusybox, nil)
	c.Labels = map[string]string{"l": strings.Repeat("x", 200<<10)}
	c.Annotations = map[string]string{"a": strings.Repeat("x", 100<<10)}
	pod.refused(t, c, codes.InvalidArgument, "262144")
}

// TestListTooLargeAnswersClearly: containers with large but legal metadata, enough that
// listing them all passes the 16 MiB a CRI client takes. The list answers ResourceExhausted
// naming the size and suggesting a filter (not a transport failure in the client), a
// filtered list still works, and the daemon serves everything else.
func TestListTooLargeAnswersClearly(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	c, podID, podCfg := nodeNetPod(t, d, "big-list")
	ctx := framework.Context(t)
	const n = 70 // 70 × 255 KiB > 16 MiB
	var ids []string
	for i := range n {
		cfg := sleeper(fmt.Sprintf("big-%d", i), framework.ImageBusybox, nil)
		cfg.Labels = map[string]string{"l": strings.Repeat("l", 127<<10)}
		cfg.Annotations = map[string]string{"a": strings.Repeat("a", 128<<10)}
		id, err := c.Runtime.CreateContainer(ctx, podID, cfg, podCfg)
		if err != nil {
			t.Fatalf("CreateContainer %d with 255 KiB of metadata: %v", i, err)
		}
		ids = append(ids, id)
	}

	clear := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s of %d containers with 255 KiB of metadata each succeeded; want ResourceExhausted", what, n)
			return
		}
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "filter") || !strings.Contains(err.Error(), "16777216") {
			t.Errorf("%s: %v; want ResourceExhausted naming the limit and suggesting a filter", what, err)
		}
	}
	_, err := c.Runtime.ListContainers(ctx, nil)
	clear("ListContainers", err)
	_, err = c.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: podID})
	clear("ListContainers of the pod", err)
	_, err = c.Runtime.ListContainerStats(ctx, nil)
	clear("ListContainerStats", err)

	got, err := c.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{Id: ids[0]})
	if err != nil || len(got) != 1 || len(got[0].GetLabels()["l"]) != 127<<10 {
		t.Errorf("ListContainers of one container: %d, %v", len(got), err)
	}
	if _, err := c.Runtime.ListPodSandbox(ctx, nil); err != nil {
		t.Errorf("ListPodSandbox: %v", err)
	}
	if _, err := c.Runtime.Version(ctx, "v1"); err != nil {
		t.Errorf("Version after the refused lists: %v", err)
	}
	// Another client is not disturbed either.
	other := framework.MustConnect(t, d.Endpoint())
	if _, err := other.Runtime.ContainerStatus(context.Background(), ids[n-1], false); err != nil {
		t.Errorf("ContainerStatus from another client: %v", err)
	}
}

// TestLogPathEscapesRefused: a container's log path is opened beneath the pod's log
// directory without following symlinks: a directory or an existing log that is a symlink out
// of it, or "..", is InvalidArgument, and nothing outside is created or written. The same
// holds when ReopenContainerLog finds the log's directory swapped for a symlink.
func TestLogPathEscapesRefused(t *testing.T) {
	pod := newTestPod(t, "log-escape", nil)
	logDir := pod.cfg.LogDirectory
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("untouched\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"lnk": outside, "x.log": victim} {
		if err := os.Symlink(target, filepath.Join(logDir, link)); err != nil {
			t.Fatal(err)
		}
	}
	for i, logPath := range []string{"lnk/evil.log", "x.log", "../escape.log", "ok/../../escape.log"} {
		t.Run(logPath, func(t *testing.T) {
			cfg := shell("log-"+strconv.Itoa(i), "echo escaped; sleep 3600")
			cfg.LogPath = logPath
			pod.refused(t, cfg, codes.InvalidArgument, "log")
		})
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched\n" {
		t.Errorf("the file outside the log directory was written: %q", b)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("files created outside the log directory: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(logDir), "escape.log")); err == nil {
		t.Errorf("escape.log created beside the log directory")
	}

	t.Run("relative log directory", func(t *testing.T) {
		cfg := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: "rel-logs", Namespace: "critest", Uid: fmt.Sprintf("rel-logs-%d", time.Now().UnixNano())},
			LogDirectory: "var/log/pods/x",
			Linux:        &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
		}
		ctx := framework.Context(t)
		id, err := pod.rt.RunPodSandbox(ctx, cfg, "")
		if err == nil {
			_ = pod.rt.StopPodSandbox(ctx, id)
			_ = pod.rt.RemovePodSandbox(ctx, id)
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("RunPodSandbox with a relative log directory: %v; want InvalidArgument", err)
		}
	})

	t.Run("reopen", func(t *testing.T) {
		ctx := framework.Context(t)
		cfg := shell("rotated", "while true; do echo line; sleep 0.01; done")
		id := pod.run(t, cfg)
		path := pod.logPath(cfg)
		waitLog(t, path, 5*time.Second, func(l []logLine) bool { return len(l) >= 2 })
		dir := filepath.Dir(path)
		if err := os.Rename(dir, dir+".old"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, dir); err != nil {
			t.Fatal(err)
		}
		err := pod.rt.ReopenContainerLog(ctx, id)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("ReopenContainerLog with the log's directory a symlink out: %v; want InvalidArgument", err)
		}
		if _, err := os.Stat(filepath.Join(outside, filepath.Base(path))); err == nil {
			t.Errorf("the reopened log was created outside the log directory")
		}
		// The container's output still goes to the file it had.
		old := filepath.Join(dir+".old", filepath.Base(path))
		n := len(readLog(t, old))
		waitLog(t, old, 5*time.Second, func(l []logLine) bool { return len(l) > n })
	})
}
