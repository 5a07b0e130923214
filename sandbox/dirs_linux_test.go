package sandbox

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/internal/topdir"
	"github.com/peapod-runtime/peapod/store"
)

// TestPodDirsAreTopDirs: the state dir's pods and ns directories, which get one directory per
// pod, carry ext4's top-directory flag (see internal/topdir).
func TestPodDirsAreTopDirs(t *testing.T) {
	state := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(state, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.EXT4_SUPER_MAGIC {
		t.Skipf("SKIP-REASON: %s is not on ext4 (type %#x), the filesystem the flag is for", state, fs.Type)
	}
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
