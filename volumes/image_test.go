package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
)

func TestImageVolumes(t *testing.T) {
	rootfs := t.TempDir()
	outside := t.TempDir()
	mustWrite(t, filepath.Join(outside, "hostfile"), "host", 0o600)
	// /var/lib/db holds content; /cache is declared but absent; /link points at a host
	// path with an absolute symlink, which must resolve inside the rootfs.
	mustWrite(t, filepath.Join(rootfs, "var/lib/db/conf/db.conf"), "conf", 0o640)
	mustWrite(t, filepath.Join(rootfs, "var/lib/db/run.sh"), "#!/bin/sh", 0o755)
	mustSymlink(t, "conf/db.conf", filepath.Join(rootfs, "var/lib/db/current"))
	if err := os.Link(filepath.Join(rootfs, "var/lib/db/run.sh"), filepath.Join(rootfs, "var/lib/db/run-again.sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(rootfs, "var/lib/db"), 0o750); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, outside, filepath.Join(rootfs, "link"))
	mustWrite(t, filepath.Join(rootfs, "etc/afile"), "x", 0o644)

	base := filepath.Join(t.TempDir(), "volumes")
	covered := []Mount{{ContainerPath: "/data", HostPath: "/somewhere"}}
	got, err := ImageVolumes(t.Context(), rootfs, []string{"/var/lib/db", "cache", "/data", "/var/lib/db/", "/link"}, base, covered)
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, m := range got {
		dests = append(dests, m.Destination)
		if m.Type != "bind" || !slices.Equal(m.Options, []string{"rbind", "rprivate", "rw"}) || filepath.Dir(m.Source) != base {
			t.Errorf("mount %+v", m)
		}
	}
	if want := []string{"/var/lib/db", "/cache", "/link"}; !slices.Equal(dests, want) {
		t.Fatalf("destinations %v, want %v", dests, want)
	}

	db := got[0].Source
	if b, err := os.ReadFile(filepath.Join(db, "conf/db.conf")); err != nil || string(b) != "conf" {
		t.Fatalf("db.conf = %q, %v", b, err)
	}
	for path, mode := range map[string]os.FileMode{"": 0o750 | os.ModeDir, "conf/db.conf": 0o640, "run.sh": 0o755} {
		fi, err := os.Lstat(filepath.Join(db, path))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%q mode %v, want %v (%v)", path, fi.Mode(), mode, err)
		}
	}
	if dest, err := os.Readlink(filepath.Join(db, "current")); err != nil || dest != "conf/db.conf" {
		t.Errorf("symlink = %q, %v", dest, err)
	}
	a, _ := os.Stat(filepath.Join(db, "run.sh"))
	b, _ := os.Stat(filepath.Join(db, "run-again.sh"))
	if !os.SameFile(a, b) {
		t.Error("hard link not preserved")
	}
	if entries, err := os.ReadDir(got[1].Source); err != nil || len(entries) != 0 {
		t.Errorf("missing image path gave %v, %v", entries, err)
	}
	if entries, _ := os.ReadDir(got[2].Source); len(entries) != 0 {
		t.Errorf("symlinked volume copied host content: %v", entries)
	}

	// Idempotent: a second call reuses the seeded directories.
	if err := os.WriteFile(filepath.Join(db, "written-by-container"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := ImageVolumes(t.Context(), rootfs, []string{"/var/lib/db"}, base, nil)
	if err != nil || again[0].Source != db {
		t.Fatalf("second call: %v, %v", again, err)
	}
	if _, err := os.Stat(filepath.Join(db, "written-by-container")); err != nil {
		t.Fatal("second call re-seeded the volume")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(base, "*.tmp-*")); len(leftovers) != 0 {
		t.Fatalf("temp dirs left: %v", leftovers)
	}
}

func TestImageVolumeErrors(t *testing.T) {
	rootfs := t.TempDir()
	mustWrite(t, filepath.Join(rootfs, "etc/afile"), "x", 0o644)
	for _, v := range []string{"/etc/afile", "/"} {
		_, err := ImageVolumes(t.Context(), rootfs, []string{v}, t.TempDir(), nil)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("volume %q: err = %v, want InvalidArgument", v, err)
		}
	}
}

func TestVolumeDirName(t *testing.T) {
	a, b := volumeDirName("/a/b"), volumeDirName("/a_b")
	if a == b {
		t.Fatalf("collision: %s", a)
	}
	if got := volumeDirName("/var/lib/mysql"); got[:len("var_lib_mysql-")] != "var_lib_mysql-" {
		t.Fatalf("name %q", got)
	}
}
