package sandbox

import (
	"path/filepath"
	"testing"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/internal/topdir"
	"github.com/peapod-runtime/peapod/store"
)

// TestPodDirsAreTopDirs: the state dir's pods and ns directories, which get one directory per
// pod, carry ext4's top-directory flag (see internal/topdir).
func TestPodDirsAreTopDirs(t *testing.T) {
	state := t.TempDir()
	testutil.RequireExt4(t, state)
	k, err := newKernel(Options{DB: new(store.DB), Cgroups: new(cgroups.Manager), StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{k.podsDir, k.nsDir, filepath.Join(state, "pods"), filepath.Join(state, "ns")} {
		if marked, err := topdir.IsMarked(d); err != nil || !marked {
			t.Errorf("%s: top-directory flag %v, %v", d, marked, err)
		}
	}
}
