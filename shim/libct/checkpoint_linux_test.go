package libct

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/shim/internal/shimtest"
)

// TestCheckpointLoadsContainer: Checkpoint (what peapod-checkpoint runs, in a process of its
// own) loads a running container from the Runtime's state and hands it to libcontainer's
// CRIU code. The criu on PATH here is a stand-in whose check passes and whose swrk dies, so
// the dump fails after the load: FailedPrecondition, with the container still running. An
// unknown container is NotFound; relative dirs are InvalidArgument. (Whether the real CRIU
// works on this kernel is critest's TestCheckpointContainer.)
func TestCheckpointLoadsContainer(t *testing.T) {
	testutil.RequireRoot(t)
	rt, rootfs, root, cg := newTestRuntime(t)
	dir := t.TempDir()
	ctx := context.Background()
	s := shimtest.Spec(cg, "cp", "sleep", "1000")
	s.Root.Path = rootfs
	c, err := rt.Create(ctx, "cp", s, Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Signal(ctx, unix.SIGKILL, true)
		waitPid(t, c.Pid())
		_, _ = c.Stopped(ctx)
		if err := c.Destroy(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := "#!/bin/sh\nif [ \"$1\" = check ]; then echo 'Looks good.'; exit 0; fi\necho 'Error (fake): no swrk here' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "criu"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")

	images, work := filepath.Join(dir, "images"), filepath.Join(dir, "work")
	err = Checkpoint(ctx, root, "cp", images, work, true)
	t.Logf("checkpoint with the stand-in criu: %v", err)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "with CRIU") {
		t.Errorf("Checkpoint with a criu that cannot dump: %v, want FailedPrecondition from the dump", err)
	}
	if err := unix.Kill(c.Pid(), 0); err != nil {
		t.Errorf("container init after the failed checkpoint: %v", err)
	}
	if err := Checkpoint(ctx, root, "nope", images, work, true); !errdefs.IsNotFound(err) {
		t.Errorf("Checkpoint of an unknown container: %v, want NotFound", err)
	}
	if err := Checkpoint(ctx, root, "cp", "images", work, true); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Checkpoint into a relative dir: %v, want InvalidArgument", err)
	}
}
