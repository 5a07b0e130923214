package topdir

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

func TestMark(t *testing.T) {
	dir := t.TempDir()
	testutil.RequireExt4(t, dir)
	if marked, err := IsMarked(dir); err != nil || marked {
		t.Fatalf("fresh dir marked %v, %v", marked, err)
	}
	for range 2 { // twice: marking a marked dir is fine
		if err := Mark(dir); err != nil {
			t.Fatal(err)
		}
	}
	if marked, err := IsMarked(dir); err != nil || !marked {
		t.Errorf("after Mark: marked %v, %v", marked, err)
	}
	// chattr's view: the T attribute.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&0x00020000 == 0 {
		t.Errorf("flags %#x, %v: no FS_TOPDIR_FL", flags, err)
	}
}

// TestMarkUnsupported: a filesystem without the flag is left alone, without an error.
func TestMarkUnsupported(t *testing.T) {
	dirs := []string{"/proc", "/sys"}
	// A tmpfs keeps some flags (since Linux 6.0) but not this one: a node's /run.
	var fs unix.Statfs_t
	if unix.Statfs("/dev/shm", &fs) == nil && fs.Type == unix.TMPFS_MAGIC {
		d, err := os.MkdirTemp("/dev/shm", "peapod-topdir-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(d) })
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		if err := Mark(dir); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
		if marked, err := IsMarked(dir); err != nil || marked {
			t.Errorf("%s: marked %v, %v", dir, marked, err)
		}
	}
	if err := Mark("/nonexistent-peapod-topdir"); err == nil {
		t.Error("a missing dir: no error")
	}
}
