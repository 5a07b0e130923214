package e2eimages

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// build builds the images once for the tests of this file, with a stand-in agnhost binary
// (its content does not matter to the layout checked here).
func build(t *testing.T) map[string]v1.Image {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP-REASON: -short skips building the images (go build of pause and nnp)")
	}
	dir := t.TempDir()
	agn := filepath.Join(dir, "agnhost")
	if err := os.WriteFile(agn, []byte("#!/bin/sh\necho agnhost stand-in\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "porter"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		if err := os.WriteFile(filepath.Join(src, "porter", f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	imgs, err := Build(context.Background(), Options{Agnhost: agn, AgnhostSource: src})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	out := map[string]v1.Image{}
	for n, x := range imgs {
		img, ok := x.(v1.Image)
		if !ok {
			t.Fatalf("%s is not an image", n)
		}
		out[n] = img
	}
	return out
}

// files returns the flattened filesystem's headers and regular file bodies by path.
func files(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdrs, bodies := map[string]*tar.Header{}, map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean("/" + h.Name)
		hdrs[name] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			bodies[name] = b
		}
	}
	return hdrs, bodies
}

func TestImages(t *testing.T) {
	imgs := build(t)
	for _, n := range []string{Agnhost, AgnhostPrev, Busybox, Pause, Nginx, NginxNew, NonRoot, Nonewprivs, GlibcDNSTesting} {
		if imgs[n] == nil {
			t.Errorf("no image %s", n)
		}
	}
	config := func(n string) v1.Config {
		cf, err := imgs[n].ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		return cf.Config
	}

	t.Run("sh is the static dispatcher, ash and bash beside it", func(t *testing.T) {
		// Upstream's busybox 1.37 ash passes on variables named like Secret keys; Debian's
		// 1.35 ash does not, so /bin/sh runs bash for them.
		hdrs, bodies := files(t, imgs[Busybox])
		assertStatic(t, bodies["/bin/sh"])
		for _, p := range []string{"/bin/bash", "/bin/busybox", "/bin/nmeter"} {
			if hdrs[p] == nil {
				t.Errorf("no %s", p)
			}
		}
	})
	t.Run("nonroot runs as 1234", func(t *testing.T) {
		if u := config(NonRoot).User; u != "1234" {
			t.Errorf("User = %q, want 1234", u)
		}
	})
	t.Run("nonewprivs has a setuid-root static nnp", func(t *testing.T) {
		hdrs, bodies := files(t, imgs[Nonewprivs])
		h := hdrs[NnpPath]
		if h == nil {
			t.Fatalf("no %s", NnpPath)
		}
		if h.Mode&0o4000 == 0 || h.Uid != 0 {
			t.Errorf("%s mode %o uid %d, want setuid root", NnpPath, h.Mode, h.Uid)
		}
		assertStatic(t, bodies[NnpPath])
		if c := config(Nonewprivs).Cmd; !slices.Equal(c, []string{"nnp"}) {
			t.Errorf("Cmd = %q", c)
		}
	})
	t.Run("pause is a static /pause, the entrypoint", func(t *testing.T) {
		_, bodies := files(t, imgs[Pause])
		assertStatic(t, bodies["/pause"])
		if e := config(Pause).Entrypoint; !slices.Equal(e, []string{"/pause"}) {
			t.Errorf("Entrypoint = %q", e)
		}
	})
	t.Run("agnhost layout", func(t *testing.T) {
		hdrs, bodies := files(t, imgs[Agnhost])
		if h := hdrs["/agnhost-2"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "agnhost" {
			t.Errorf("/agnhost-2 is %+v, want a symlink to agnhost", h)
		}
		for _, p := range []string{"/agnhost", "/localhost.crt", "/localhost.key", "/bin/sh", "/bin/bash", "/usr/bin/curl", "/usr/bin/nc", "/bin/nc.openbsd"} {
			if hdrs[p] == nil {
				t.Errorf("no %s", p)
			}
		}
		if h := hdrs["/uploads"]; h == nil || h.Typeflag != tar.TypeDir {
			t.Errorf("no /uploads directory")
		}
		if !slices.Contains(strings.Split(string(bodies["/etc/group"]), "\n"), "group-defined-in-image:x:50000:user-defined-in-image") {
			t.Errorf("/etc/group lacks group-defined-in-image: %s", bodies["/etc/group"])
		}
		c := config(Agnhost)
		if !slices.Equal(c.Entrypoint, []string{"/agnhost"}) || !slices.Equal(c.Cmd, []string{"pause"}) {
			t.Errorf("Entrypoint %q Cmd %q", c.Entrypoint, c.Cmd)
		}
	})
	t.Run("nginx writes its pid file and serves on 80", func(t *testing.T) {
		hdrs, bodies := files(t, imgs[Nginx])
		if hdrs[NginxRoot+"/index.html"] == nil {
			t.Errorf("no index.html")
		}
		if s := string(bodies["/usr/sbin/nginx"]); !strings.Contains(s, NginxPIDFile) || !strings.Contains(s, "-p 80 -h "+NginxRoot) {
			t.Errorf("nginx stand-in: %s", s)
		}
	})
}

func assertStatic(t *testing.T, b []byte) {
	t.Helper()
	if len(b) == 0 {
		t.Fatal("empty binary")
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not ELF: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary has an ELF interpreter: not static")
		}
	}
}
