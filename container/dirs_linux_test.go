package container

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/internal/topdir"
)

// TestContainersDirIsATopDir: the root's containers directory, which gets one directory per
// container, carries ext4's top-directory flag (see internal/topdir); the trash, where they
// are only renamed to, does not need it.
func TestContainersDirIsATopDir(t *testing.T) {
	root := t.TempDir()
	testutil.RequireExt4(t, root)
	dir, trash := filepath.Join(root, "containers"), filepath.Join(root, "containers.trash")
	if err := makeDirs(dir, trash); err != nil {
		t.Fatal(err)
	}
	if marked, err := topdir.IsMarked(dir); err != nil || !marked {
		t.Errorf("%s: top-directory flag %v, %v", dir, marked, err)
	}
	if st, err := os.Stat(trash); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Errorf("trash %v, %v", st, err)
	}
}
