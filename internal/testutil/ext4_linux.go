package testutil

import (
	"testing"

	"golang.org/x/sys/unix"
)

// RequireExt4 skips t, saying why, unless dir is on ext4: the filesystem whose inode
// allocator the top-directory flag (internal/topdir) steers, and which keeps it.
func RequireExt4(t testing.TB, dir string) {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.EXT4_SUPER_MAGIC {
		t.Skipf("SKIP-REASON: %s is not on ext4 (type %#x), whose allocator the top-directory flag steers", dir, fs.Type)
	}
}
