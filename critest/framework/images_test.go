package framework

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestBusyboxLayerContents(t *testing.T) {
	layer, err := BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hdrs := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	bodies := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := hdrs[h.Name]; dup {
			t.Errorf("duplicate entry %s", h.Name)
		}
		hdrs[h.Name] = h
		if strings.HasPrefix(h.Name, "etc/") {
			b, _ := io.ReadAll(tr)
			bodies[h.Name] = string(b)
		}
	}
	want := []struct {
		name     string
		typ      byte
		linkname string
		mode     int64
	}{
		{"bin/busybox", tar.TypeReg, "", 0o755},
		{"bin/sh", tar.TypeLink, "bin/busybox", 0},
		{"bin/ls", tar.TypeLink, "bin/busybox", 0},
		{"bin/sleep", tar.TypeLink, "bin/busybox", 0},
		{"usr/bin/env", tar.TypeLink, "bin/busybox", 0},
		{"tmp/", tar.TypeDir, "", 0o1777},
		{"proc/", tar.TypeDir, "", 0o555},
		{"sys/", tar.TypeDir, "", 0o555},
		{"dev/", tar.TypeDir, "", 0o755},
		{"etc/passwd", tar.TypeReg, "", 0o644},
		{"etc/group", tar.TypeReg, "", 0o644},
	}
	for _, w := range want {
		h, ok := hdrs[w.name]
		if !ok {
			t.Errorf("missing %s", w.name)
			continue
		}
		if h.Typeflag != w.typ || h.Linkname != w.linkname || (w.mode != 0 && h.Mode != w.mode) {
			t.Errorf("%s: type %c link %q mode %o; want type %c link %q mode %o", w.name, h.Typeflag, h.Linkname, h.Mode, w.typ, w.linkname, w.mode)
		}
	}
	if !strings.Contains(bodies["etc/passwd"], "www-data:x:33:33:") {
		t.Errorf("/etc/passwd lacks www-data 33: %q", bodies["etc/passwd"])
	}
	// The ELF interpreter and libc must be there as the host has them.
	var libc, loader bool
	for n := range hdrs {
		libc = libc || strings.Contains(n, "libc.so.")
		loader = loader || strings.Contains(n, "ld-linux")
	}
	if !libc || !loader {
		t.Errorf("libc present %v, loader present %v", libc, loader)
	}
}

func TestTestImagesValidate(t *testing.T) {
	imgs, err := TestImages()
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != len(TestImageNames()) {
		t.Fatalf("TestImageNames has %d names for %d images", len(TestImageNames()), len(imgs))
	}
	for name, tg := range imgs {
		switch x := tg.(type) {
		case v1.Image:
			if err := validate.Image(x); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case v1.ImageIndex:
			if err := validate.Index(x); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		default:
			t.Errorf("%s: unexpected type %T", name, tg)
		}
	}
	d1, _ := imgs[ImageTags1].(v1.Image).Digest()
	d3, _ := imgs[ImageTags3].(v1.Image).Digest()
	if d1 != d3 {
		t.Errorf("tags differ: %s %s", d1, d3)
	}
}

func TestBuildImageDeterministic(t *testing.T) {
	build := func() v1.Hash {
		l, err := NewLayer([]TarEntry{Dir("x", 0), File("x/y", 0o600, "y")})
		if err != nil {
			t.Fatal(err)
		}
		img, err := BuildImage(ImageSpec{Busybox: true, Layers: []v1.Layer{l}, Format: FormatOCI})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if a, b := build(), build(); a != b {
		t.Errorf("digests differ: %s %s", a, b)
	}
}

// extract writes img's flattened filesystem (whiteouts applied by go-containerregistry) to
// dir, hard links and symlinks included.
func extract(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode&0o777))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		case tar.TypeLink:
			if err := os.Link(filepath.Join(dir, h.Linkname), p); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func modeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// chrootRun runs argv inside dir as root with chroot(2).
func chrootRun(t *testing.T, dir string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
	cmd.Dir = "/"
	cmd.Env = []string{DefaultPath}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v in %s: %v\n%s", argv, dir, err, out)
	}
	return string(out)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("SKIP-REASON: chroot needs root (euid is %d)", os.Geteuid())
	}
}

// TestBusyboxImagesRun proves the images work as root filesystems: busybox and its libc load,
// NSS reads the image's /etc/passwd and /etc/group, and applets are hard links.
func TestBusyboxImagesRun(t *testing.T) {
	requireRoot(t)
	imgs, err := TestImages()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		image string
		argv  []string
		want  string
	}{
		{ImageBusybox, []string{"/bin/sh", "-c", "echo hello; id -u www-data; stat -c %h /bin/busybox"}, "hello\n33\n"},
		{ImageUserUIDGroup, []string{"/bin/id", "user50000"}, "uid=1003(user50000) gid=1003(user50000) groups=1003(user50000),50000(group50000)\n"},
		{ImageVolume, []string{"/bin/cat", ImageVolumeSeedFile}, ImageVolumeSeed + "\n"},
		{ImageWhiteout, []string{"/bin/sh", "-c", "ls -A /lower; ls -A /opaque"}, "keep\nnew\n"},
	}
	for _, tc := range cases {
		t.Run(tc.image, func(t *testing.T) {
			dir := t.TempDir()
			extract(t, imgs[tc.image].(v1.Image), dir)
			out := chrootRun(t, dir, tc.argv...)
			if !strings.HasPrefix(out, tc.want) {
				t.Errorf("output %q, want prefix %q", out, tc.want)
			}
		})
	}

	// Hard links: one inode for every applet, so masking one applet hides only that name.
	dir := t.TempDir()
	extract(t, imgs[ImageBusybox].(v1.Image), dir)
	links := strings.TrimSpace(chrootRun(t, dir, "/bin/stat", "-c", "%h", "/bin/busybox"))
	if links == "1" {
		t.Errorf("/bin/busybox has one link; applets are not hard links")
	}
	ents, err := os.ReadDir(filepath.Join(dir, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, want := range []string{"sh", "ls", "cat", "sleep", "id", "wget", "nc"} {
		if !slices.Contains(names, want) {
			t.Errorf("/bin lacks %s", want)
		}
	}
}

func TestWhiteoutExpectations(t *testing.T) {
	requireRoot(t)
	imgs, err := TestImages()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	extract(t, imgs[ImageWhiteout].(v1.Image), dir)
	for d, want := range WhiteoutExpectations() {
		ents, err := os.ReadDir(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", d, got, want)
		}
	}
}
