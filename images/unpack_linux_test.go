package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

// mountOverlay mounts a read-only overlay of lowers (top first) and unmounts it in cleanup.
func mountOverlay(t *testing.T, lowers []string) string {
	t.Helper()
	target := t.TempDir()
	if err := unix.Mount("overlay", target, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lowers, ":")); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
	return target
}

func TestUnpackedLayersMountAsOverlay(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	xattrs := map[string]string{"user.peapod": "yes", "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}
	lower := layerOf(t,
		entry{name: "a/", typ: tar.TypeDir},
		entry{name: "a/keep", body: "keep"},
		entry{name: "a/gone", body: "gone"},
		entry{name: "opq/", typ: tar.TypeDir},
		entry{name: "opq/old", body: "old"},
		entry{name: "opq/sub/", typ: tar.TypeDir},
		entry{name: "opq/sub/deep", body: "deep"},
		entry{name: "bin/", typ: tar.TypeDir},
		entry{name: "bin/busybox", body: "#!bb", mode: 0o4755, uid: 1234, gid: 5678, xattrs: xattrs},
		// Tar writers give a hard link its target's metadata, which unpacking applies again.
		entry{name: "bin/ls", typ: tar.TypeLink, link: "bin/busybox", mode: 0o4755, uid: 1234, gid: 5678, xattrs: xattrs},
		entry{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		entry{name: "abs", typ: tar.TypeSymlink, link: "/bin/busybox"},
		entry{name: "dev/", typ: tar.TypeDir},
		entry{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
		entry{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o600},
		entry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	)
	upper := layerOf(t,
		entry{name: "a/", typ: tar.TypeDir},
		entry{name: "a/.wh.gone", body: ""},
		entry{name: "opq/", typ: tar.TypeDir},
		entry{name: "opq/.wh..wh..opq", body: ""},
		entry{name: "opq/new", body: "new"},
	)
	img := imageOf(t, v1.Config{}, lower, upper)
	tr.push(t, "fs:1", img)
	s := newService(t, Config{})
	got, err := s.Pull(t.Context(), tr.host+"/fs:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	paths, err := s.LayerPaths(t.Context(), got.ID)
	if err != nil || len(paths) != 2 {
		t.Fatalf("LayerPaths = %v, %v", paths, err)
	}

	// On disk, the upper layer holds overlayfs' own whiteout and opaque marks.
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(paths[0], "a/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout a/gone: %v mode %o rdev %d; want a 0:0 char device", err, st.Mode, st.Rdev)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(paths[0], "opq"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opq opaque xattr = %q, %v; want y", buf[:n], err)
	}
	for _, p := range []string{"a/.wh.gone", "opq/.wh..wh..opq"} {
		if exists(filepath.Join(paths[0], p)) {
			t.Errorf("%s was unpacked as a file", p)
		}
	}

	root := mountOverlay(t, paths)
	for p, want := range map[string]string{"a/keep": "keep", "opq/new": "new", "bin/busybox": "#!bb", "bin/ls": "#!bb", "bin/sh": "#!bb"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	for _, p := range []string{"a/gone", "opq/old", "opq/sub"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is visible through the overlay (%v); the whiteout/opaque dir should hide it", p, err)
		}
	}

	// Ownership, modes, hard links, symlinks, xattrs and device nodes survive.
	bb := filepath.Join(paths[1], "bin/busybox")
	if err := unix.Lstat(bb, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1234 || st.Gid != 5678 || st.Mode&0o7777 != 0o4755 || st.Nlink != 2 {
		t.Errorf("bin/busybox uid %d gid %d mode %o nlink %d; want 1234 5678 4755 2", st.Uid, st.Gid, st.Mode&0o7777, st.Nlink)
	}
	var ls unix.Stat_t
	if err := unix.Lstat(filepath.Join(paths[1], "bin/ls"), &ls); err != nil || ls.Ino != st.Ino {
		t.Errorf("bin/ls is not a hard link of bin/busybox: %v", err)
	}
	if n, err := unix.Lgetxattr(bb, "user.peapod", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("xattr user.peapod = %q, %v", buf[:n], err)
	}
	if n, err := unix.Lgetxattr(bb, "security.capability", make([]byte, 64)); err != nil || n == 0 {
		t.Errorf("xattr security.capability: %d bytes, %v", n, err)
	}
	if l, err := os.Readlink(filepath.Join(paths[1], "abs")); err != nil || l != "/bin/busybox" {
		t.Errorf("abs -> %q, %v; absolute symlink targets are kept verbatim", l, err)
	}
	if err := unix.Lstat(filepath.Join(paths[1], "dev/null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Errorf("dev/null: %v mode %o rdev %d:%d", err, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if err := unix.Lstat(filepath.Join(paths[1], "dev/fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("dev/fifo: %v mode %o", err, st.Mode)
	}
	if err := unix.Lstat(filepath.Join(paths[1], "tmp"), &st); err != nil || st.Mode&0o7777 != 0o1777 {
		t.Errorf("tmp mode %o, %v; want 1777", st.Mode&0o7777, err)
	}
	if err := unix.Lstat(paths[1], &st); err != nil || st.Mode&0o777 != 0o700 {
		t.Errorf("layer root mode %o, %v; want 700 (root only)", st.Mode&0o777, err)
	}
}

// A hostile layer must not change anything outside its own directory: it either unpacks
// with everything contained, or the pull fails and stores nothing.
func TestHostileLayersStayContained(t *testing.T) {
	testutil.RequireRoot(t)
	outside := t.TempDir() // stands for the host: nothing may appear in it
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	var before unix.Stat_t
	if err := unix.Stat("/etc/passwd", &before); err != nil {
		t.Fatal(err)
	}
	rel := strings.Repeat("../", 20) + strings.TrimPrefix(outside, "/")
	tests := []struct {
		name    string
		entries []entry
	}{
		{"symlink to / then a file through it", []entry{
			{name: "evil", typ: tar.TypeSymlink, link: "/"},
			{name: "evil" + outside + "/pwned", body: "x"},
			{name: "evil" + victim, body: "overwritten"},
		}},
		{"symlink to the outside dir then a file through it", []entry{
			{name: "evil", typ: tar.TypeSymlink, link: outside},
			{name: "evil/pwned", body: "x"},
			{name: "evil/victim", body: "overwritten"},
		}},
		{"relative symlink climbing out then a file through it", []entry{
			{name: "up", typ: tar.TypeSymlink, link: rel},
			{name: "up/pwned", body: "x"},
		}},
		{"dot-dot path", []entry{{name: "../../../../../../../../.." + outside + "/pwned", body: "x"}}},
		{"absolute path", []entry{{name: outside + "/pwned", body: "x"}}},
		{"absolute hard link to /etc/passwd", []entry{{name: "passwd", typ: tar.TypeLink, link: "/etc/passwd"}}},
		{"dot-dot hard link", []entry{{name: "victim", typ: tar.TypeLink, link: "../../../../../../../../.." + victim}}},
		{"hard link then write through it", []entry{
			{name: "etc/", typ: tar.TypeDir},
			{name: "etc/passwd", body: "inside"},
			{name: "link", typ: tar.TypeLink, link: "/etc/passwd"},
			{name: "link", body: "rewritten"},
		}},
		{"symlink then hard link through it", []entry{
			{name: "evil", typ: tar.TypeSymlink, link: "/etc"},
			{name: "stolen", typ: tar.TypeLink, link: "evil/passwd"},
		}},
		{"whiteout climbing out", []entry{{name: "../../../../../../../../.." + victim[:strings.LastIndex(victim, "/")] + "/.wh.victim"}}},
		{"opaque marker climbing out", []entry{{name: "../.wh..wh..opq"}}},
		{"whiteout of dot-dot", []entry{{name: "a/", typ: tar.TypeDir}, {name: "a/.wh..."}}},
		{"relative symlink climbing out then a whiteout through it", []entry{
			{name: "up", typ: tar.TypeSymlink, link: rel},
			{name: "up/.wh.victim"},
			{name: "up/.wh..wh..opq"},
		}},
		{"whiteout through a symlink", []entry{
			{name: "evil", typ: tar.TypeSymlink, link: outside},
			{name: "evil/.wh.victim"},
			{name: "evil/.wh..wh..opq"},
		}},
	}
	tr := newTestRegistry(t)
	s := newService(t, Config{})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := imageOf(t, v1.Config{}, layerOf(t, tc.entries...))
			ref := fmt.Sprintf("%s/hostile:%d", tr.host, i)
			tr.push(t, fmt.Sprintf("hostile:%d", i), img)
			got, err := s.Pull(t.Context(), ref, Auth{})
			t.Logf("pull: %v", err)
			if names := dirNames(t, outside); len(names) != 1 || names[0] != "victim" {
				t.Errorf("the layer wrote outside the store: %v", names)
			}
			if b, _ := os.ReadFile(victim); string(b) != "original" {
				t.Errorf("victim = %q", b)
			}
			var after unix.Stat_t
			if err := unix.Stat("/etc/passwd", &after); err != nil || after.Nlink != before.Nlink || after.Mtim != before.Mtim || after.Size != before.Size {
				t.Errorf("/etc/passwd changed: nlink %d→%d", before.Nlink, after.Nlink)
			}
			if buf := make([]byte, 8); func() bool { _, err := unix.Lgetxattr(outside, "trusted.overlay.opaque", buf); return err == nil }() {
				t.Error("the layer set an xattr outside the store")
			}
			if err != nil {
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("a hostile layer was refused with %v; want InvalidArgument", err)
				}
				if list, _ := s.List(t.Context(), ref); len(list) != 0 {
					t.Errorf("a failed pull stored %v", list)
				}
				return
			}
			// Unpacked: whatever went "through" a symlink landed inside the layer.
			paths, _ := s.LayerPaths(t.Context(), got.ID)
			_ = filepath.WalkDir(paths[0], func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					var st syscall.Stat_t
					_ = syscall.Stat(p, &st)
					if st.Ino == before.Ino && st.Dev == before.Dev {
						t.Errorf("%s is a hard link to the host's /etc/passwd", p)
					}
				}
				return nil
			})
		})
	}
	for _, dir := range []string{s.content.ingestDir(), s.content.tmpDir()} {
		if names := dirNames(t, dir); len(names) != 0 {
			t.Errorf("%s holds %v", dir, names)
		}
	}
}
