package images

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

// nobody is the unprivileged user the permission tests act as.
const nobody = 65534

// asNobody runs name args as uid/gid 65534 and returns its combined output and error.
func asNobody(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// openToOthers makes dir and its parents up to the temp dir traversable by everyone, so that
// only the store's own modes keep a user out.
func openToOthers(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// storeDirs lists the store's own directories: everything under Root/images but the
// contents of the unpacked layers.
func storeDirs(t *testing.T, s *Service) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(s.content.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			if filepath.Dir(p) == s.content.layersDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// Issue 13, defect 2: a setuid-root binary or a 0666 device node of a pulled layer must not
// be reachable by a user of the host through the store, while containers still read the
// layers through their overlay mounts.
func TestStoreIsRootOnly(t *testing.T) {
	testutil.RequireRoot(t)
	id, err := os.ReadFile("/usr/bin/id")
	if err != nil {
		t.Skipf("no /usr/bin/id to stand for a setuid binary: %v", err)
	}
	tr := newTestRegistry(t)
	img := imageOf(t, v1.Config{}, layerOf(t,
		entry{name: "bin/", typ: tar.TypeDir},
		entry{name: "bin/suid-id", body: string(id), mode: 0o4755},
		entry{name: "dev/", typ: tar.TypeDir},
		entry{name: "dev/mem0666", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666}, // /dev/null's numbers
		entry{name: "etc/", typ: tar.TypeDir},
		entry{name: "etc/motd", body: "hello", mode: 0o644},
	))
	tr.push(t, "suid:1", img)
	root := t.TempDir()
	openToOthers(t, root)
	s := newService(t, Config{Root: root})
	got, err := s.Pull(t.Context(), tr.host+"/suid:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	paths, err := s.LayerPaths(t.Context(), got.ID)
	if err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(paths[0], "bin/suid-id")
	var st unix.Stat_t
	if err := unix.Stat(suid, &st); err != nil || st.Mode&unix.S_ISUID == 0 || st.Uid != 0 {
		t.Fatalf("bin/suid-id in the layer: %v mode %o uid %d; want a setuid-root file", err, st.Mode, st.Uid)
	}

	for _, d := range storeDirs(t, s) {
		if err := unix.Stat(d, &st); err != nil || st.Mode&0o7777 != 0o700 || st.Uid != 0 {
			t.Errorf("%s: mode %o uid %d, %v; want 0700 root", d, st.Mode&0o7777, st.Uid, err)
		}
	}
	// Run straight from the store, the setuid binary would give nobody euid 0.
	if out, err := asNobody(suid); !errors.Is(err, unix.EACCES) {
		t.Errorf("uid %d ran %s: %v, output %q; want EACCES", nobody, suid, err, out)
	}
	for _, p := range []string{filepath.Join(paths[0], "dev/mem0666"), filepath.Join(paths[0], "etc/motd"), paths[0]} {
		if out, err := asNobody("/bin/stat", p); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid %d: stat %s = %v, %q; want Permission denied", nobody, p, err, out)
		}
	}
	if out, err := asNobody("/bin/cat", filepath.Join(paths[0], "dev/mem0666")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("uid %d opened the layer's 0666 device: %v, %q", nobody, err, out)
	}

	// A container's processes, whatever their user, read the layers through the overlay.
	ctr := filepath.Join(root, "ctr")
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(ctr, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(ctr, "rootfs")
	opts := "lowerdir=" + strings.Join(paths, ":") + ",upperdir=" + filepath.Join(ctr, "upper") + ",workdir=" + filepath.Join(ctr, "work")
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay over 0700 layers: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	if out, err := asNobody("/bin/cat", filepath.Join(merged, "etc/motd")); err != nil || out != "hello" {
		t.Errorf("uid %d reading etc/motd through the overlay: %v, %q; want hello", nobody, err, out)
	}
	if out, err := asNobody("/bin/ls", filepath.Join(merged, "bin")); err != nil || !strings.Contains(out, "suid-id") {
		t.Errorf("uid %d listing bin through the overlay: %v, %q", nobody, err, out)
	}
}

// A store made by an earlier version (0711 parents, 0755 layers) is made root-only when it is
// opened.
func TestStoreRestrictedOnOpen(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	tr.push(t, "old:1", simpleImage(t, "old"))
	s := newService(t, Config{})
	got, err := s.Pull(t.Context(), tr.host+"/old:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	paths, err := s.LayerPaths(t.Context(), got.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range storeDirs(t, s) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range paths {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, s)
	dirs := storeDirs(t, s)
	if len(dirs) < 6+len(paths) {
		t.Fatalf("store dirs %v: expected the layout's six and %d layers", dirs, len(paths))
	}
	for _, d := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil || st.Mode&0o777 != 0o700 {
			t.Errorf("%s: mode %o, %v after reopening; want 0700", d, st.Mode&0o777, err)
		}
	}
	// The content is intact.
	if b, err := os.ReadFile(filepath.Join(paths[0], "etc/hostname")); err != nil || !bytes.Equal(b, []byte("old")) {
		t.Errorf("etc/hostname = %q, %v", b, err)
	}
}
