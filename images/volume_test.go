package images

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

// TestRemoveImageVolumeInUse: an image a container mounts as an image volume cannot be
// removed (FailedPrecondition naming the container) by any of its names, across a restart,
// until the last such container releases it; then Remove works as usual.
func TestRemoveImageVolumeInUse(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	img := simpleImage(t, "vol")
	tr.push(t, "vol:1", img)
	s := newService(t, Config{Root: t.TempDir()})
	got, err := s.Pull(t.Context(), tr.host+"/vol:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2", "c1"} {
		if err := s.UseAsVolume(t.Context(), got.ID, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UseAsVolume(t.Context(), "sha256:"+strings.Repeat("0", 64), "c1"); !errdefs.IsNotFound(err) {
		t.Errorf("UseAsVolume of an unknown image = %v, want not found", err)
	}
	refused := func(t *testing.T) {
		t.Helper()
		for _, ref := range []string{tr.host + "/vol:1", got.ID} {
			err := s.Remove(t.Context(), ref)
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "c1") {
				t.Errorf("Remove(%s) of an image volume in use = %v, want failed precondition naming c1", ref, err)
			}
		}
		if _, err := s.Status(t.Context(), tr.host+"/vol:1"); err != nil {
			t.Errorf("Status after a refused Remove = %v", err)
		}
	}
	refused(t)
	s = reopen(t, s)
	refused(t)
	if err := s.ReleaseVolume(t.Context(), got.ID, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(t.Context(), got.ID); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Remove while c2 still mounts it = %v", err)
	}
	for range 2 {
		if err := s.ReleaseVolume(t.Context(), got.ID, "c2"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(t.Context(), got.ID); err != nil {
		t.Fatalf("Remove after the last release = %v", err)
	}
	if layers, blobs := contentCount(t, s); layers != 0 || blobs != 0 {
		t.Errorf("%d layers and %d blobs left after removal", layers, blobs)
	}
	if err := s.ReleaseVolume(t.Context(), got.ID, "c2"); err != nil {
		t.Errorf("ReleaseVolume of a removed image = %v", err)
	}
	if err := s.UseAsVolume(t.Context(), got.ID, "c3"); !errdefs.IsNotFound(err) {
		t.Errorf("UseAsVolume of a removed image = %v, want not found", err)
	}
}
