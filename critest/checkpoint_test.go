package critest

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestCheckpointContainer: CheckpointContainer of a running container either writes the
// archive the kubelet's checkpoint API hands out (CRIU's images under checkpoint/, dump.log,
// spec.dump, config.dump, the writable layer's changes in rootfs-diff.tar and the deleted
// image files in deleted.files), or, where CRIU cannot work on this node (`criu check`
// fails, or CRIU is missing), fails with FailedPrecondition carrying CRIU's own reason and
// writes nothing. Which one is decided by running `criu check` here. Either way the
// container keeps running with the same init, and nothing of the attempt stays in its
// directory. An unknown container is NotFound, a relative location InvalidArgument, an
// exited container FailedPrecondition.
func TestCheckpointContainer(t *testing.T) {
	framework.RequirePeapod(t)
	pod := newTestPod(t, "checkpoint", nil)
	ctx := framework.Context(t)
	id := pod.run(t, sleeper("cp", framework.ImageBusybox, nil))
	pod.sh(t, id, "echo changed > /tmp/changed; rm /etc/group")
	pid := pod.pid(t, id)
	dir := t.TempDir()
	location := filepath.Join(dir, "sub", "checkpoint.tar")

	// What CRIU itself says about this node.
	var criuReason string
	if criu, err := exec.LookPath("criu"); err != nil {
		criuReason = "CRIU is not installed"
	} else if out, err := exec.Command(criu, "check").CombinedOutput(); err != nil {
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "Error") {
				criuReason = strings.TrimSpace(line)
				break
			}
		}
		if criuReason == "" {
			t.Fatalf("criu check failed without an Error line: %v: %s", err, out)
		}
		t.Logf("criu check fails on this node: %s", out)
	}

	start := time.Now()
	err := pod.rt.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: location})
	t.Logf("CheckpointContainer took %v: %v", time.Since(start).Round(time.Millisecond), err)
	if criuReason != "" {
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), criuReason) {
			t.Errorf("CheckpointContainer where CRIU cannot work: %v (code %v), want FailedPrecondition with CRIU's reason %q", err, status.Code(err), criuReason)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "sub", "*")); len(left) != 0 {
			t.Errorf("a failed checkpoint left %v", left)
		}
	} else {
		if err != nil {
			t.Fatalf("CheckpointContainer: %v", err)
		}
		checkCheckpointArchive(t, location)
	}

	// The container goes on, with the same init, and keeps its files.
	if st := pod.status(t, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container after the checkpoint: %v (%s), want RUNNING", st.GetState(), st.GetMessage())
	}
	if got := pod.pid(t, id); got != pid {
		t.Errorf("init pid %d after the checkpoint, was %d", got, pid)
	}
	if got := pod.sh(t, id, "cat /tmp/changed"); got != "changed" {
		t.Errorf("container after the checkpoint reads %q", got)
	}
	if pod.daemon != nil {
		if left, _ := filepath.Glob(filepath.Join(pod.daemon.Root(), "containers", id, "checkpoint-*")); len(left) != 0 {
			t.Errorf("checkpoint work dirs left: %v", left)
		}
	}

	for _, tc := range []struct {
		name    string
		id, loc string
		code    codes.Code
	}{
		{"unknown container", "does-not-exist", location, codes.NotFound},
		{"relative location", id, "checkpoint.tar", codes.InvalidArgument},
		{"no location", id, "", codes.InvalidArgument},
	} {
		err := pod.rt.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: tc.id, Location: tc.loc})
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v (code %v), want %v", tc.name, err, status.Code(err), tc.code)
		}
	}
	exited := sleeper("cp-exited", framework.ImageBusybox, nil)
	exited.Command = []string{"true"}
	eid := pod.run(t, exited)
	pod.waitExited(t, eid, 10*time.Second)
	err = pod.rt.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: eid, Location: location})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("checkpoint of an exited container: %v (code %v), want FailedPrecondition", err, status.Code(err))
	}
}

// checkCheckpointArchive checks what a successful checkpoint wrote.
func checkCheckpointArchive(t *testing.T, location string) {
	t.Helper()
	b, err := os.ReadFile(location)
	if err != nil {
		t.Fatal(err)
	}
	names, files := tarContents(t, b)
	t.Logf("checkpoint archive: %d bytes, %d entries: %v", len(b), len(names), names)
	for _, want := range []string{"checkpoint/inventory.img", "checkpoint/descriptors.json", "dump.log", "spec.dump", "config.dump", "rootfs-diff.tar", "deleted.files"} {
		if !slices.Contains(names, want) {
			t.Errorf("checkpoint archive lacks %s (has %v)", want, names)
		}
	}
	diff, diffFiles := tarContents(t, files["rootfs-diff.tar"])
	if !slices.Contains(diff, "tmp/changed") || string(diffFiles["tmp/changed"]) != "changed\n" {
		t.Errorf("rootfs-diff.tar holds %v, want tmp/changed", diff)
	}
	if !strings.Contains(string(files["deleted.files"]), "/etc/group") {
		t.Errorf("deleted.files = %s, want /etc/group", files["deleted.files"])
	}
}

func tarContents(t *testing.T, b []byte) (names []string, files map[string][]byte) {
	t.Helper()
	files = map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, files
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Typeflag == tar.TypeReg {
			if files[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}
