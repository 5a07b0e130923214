package critest

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// hostSnapshot is what a hostile layer must leave as it was on the host.
type hostSnapshot struct {
	outside string // a directory the layers aim at
	victim  string // a file in it
	passwd  unix.Stat_t
}

func snapshotHost(t *testing.T) *hostSnapshot {
	t.Helper()
	h := &hostSnapshot{outside: t.TempDir()}
	h.victim = filepath.Join(h.outside, "victim")
	if err := os.WriteFile(h.victim, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/etc/passwd", &h.passwd); err != nil {
		t.Fatal(err)
	}
	return h
}

// check fails t if anything outside the runtime's store changed.
func (h *hostSnapshot) check(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(h.outside)
	if err != nil || len(entries) != 1 || entries[0].Name() != "victim" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the layer wrote outside the rootfs: %s holds %v (%v)", h.outside, names, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(h.victim, &st); err != nil || st.Nlink != 1 {
		t.Errorf("victim: %v, nlink %d; want one link", err, st.Nlink)
	}
	if b, _ := os.ReadFile(h.victim); string(b) != "original" {
		t.Errorf("victim = %q; want original", b)
	}
	for _, x := range []string{"trusted.overlay.opaque", "user.pwned"} {
		if _, err := unix.Lgetxattr(h.outside, x, make([]byte, 8)); err == nil {
			t.Errorf("the layer set %s on %s", x, h.outside)
		}
	}
	var after unix.Stat_t
	if err := unix.Stat("/etc/passwd", &after); err != nil || after.Nlink != h.passwd.Nlink || after.Mtim != h.passwd.Mtim || after.Size != h.passwd.Size {
		t.Errorf("/etc/passwd changed: nlink %d→%d, size %d→%d", h.passwd.Nlink, after.Nlink, h.passwd.Size, after.Size)
	}
}

// pushHostile builds a one-layer image and pushes it to the test registry under a name of
// its own, returning the reference to pull.
func pushHostile(t *testing.T, reg *framework.Registry, layer v1.Layer) string {
	t.Helper()
	img, err := framework.BuildImage(framework.ImageSpec{Layers: []v1.Layer{layer}})
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Host() + "/hostile/layer:" + randomSuffix()
	if err := reg.Push(framework.Context(t), ref, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

// findInStore returns the paths under the daemon's unpacked layers whose name is base.
func findInStore(t *testing.T, d *framework.Daemon, base string) []string {
	t.Helper()
	var found []string
	_ = filepath.WalkDir(filepath.Join(d.Root(), "images", "layers"), func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Name() == base {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// TestHostileLayers pulls layers built to escape the rootfs through the real registry: each
// is refused with InvalidArgument, or unpacked with everything inside the store (what went
// "through" a symlink lands inside the layer); nothing on the host changes either way.
func TestHostileLayers(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	h := snapshotHost(t)
	out := strings.TrimPrefix(h.outside, "/")
	climb := strings.Repeat("../", 24) + out
	tests := []struct {
		name    string
		entries []framework.TarEntry
		code    codes.Code
		inside  string // with codes.OK: a file name that must be found in the store
	}{
		{"dot-dot path", []framework.TarEntry{framework.File(strings.Repeat("../", 24)+out+"/pwned", 0o644, "x")}, codes.InvalidArgument, ""},
		{"absolute path", []framework.TarEntry{framework.File(h.outside+"/pwned-abs", 0o644, "x")}, codes.OK, "pwned-abs"},
		{"absolute symlink climb then a write", []framework.TarEntry{
			framework.Symlink("evil", h.outside),
			framework.File("evil/pwned-abslink", 0o644, "x"),
			framework.File("evil/victim", 0o644, "overwritten"),
		}, codes.OK, "pwned-abslink"},
		{"relative symlink climb then a write", []framework.TarEntry{
			framework.Symlink("up", climb),
			framework.File("up/pwned-rellink", 0o644, "x"),
		}, codes.OK, "pwned-rellink"},
		{"symlink to / then a write through it", []framework.TarEntry{
			framework.Symlink("root", "/"),
			framework.File("root/"+out+"/pwned-root", 0o644, "x"),
			framework.File("root/"+out+"/victim", 0o644, "overwritten"),
		}, codes.OK, "pwned-root"},
		{"absolute hard link out", []framework.TarEntry{{Name: "passwd", Type: tar.TypeLink, Linkname: "/etc/passwd"}}, codes.InvalidArgument, ""},
		{"dot-dot hard link out", []framework.TarEntry{{Name: "victim", Type: tar.TypeLink, Linkname: strings.Repeat("../", 24) + out + "/victim"}}, codes.InvalidArgument, ""},
		{"hard link through a symlink out", []framework.TarEntry{
			framework.Symlink("etc", "/etc"),
			{Name: "stolen", Type: tar.TypeLink, Linkname: "etc/passwd"},
		}, codes.InvalidArgument, ""},
		{"whiteout climbing out", []framework.TarEntry{framework.File(strings.Repeat("../", 24)+out+"/.wh.victim", 0o644, "")}, codes.InvalidArgument, ""},
		{"opaque marker climbing out", []framework.TarEntry{framework.File("../.wh..wh..opq", 0o644, "")}, codes.InvalidArgument, ""},
		{"whiteout of dot-dot", []framework.TarEntry{framework.Dir("a", 0o755), framework.File("a/.wh...", 0o644, "")}, codes.InvalidArgument, ""},
		{"whiteouts through a symlink out", []framework.TarEntry{
			framework.Symlink("evil", h.outside),
			framework.Whiteout("evil/victim"),
			framework.OpaqueWhiteout("evil"),
			framework.Symlink("up", climb),
			framework.OpaqueWhiteout("up"),
			framework.File("up/pwned-wh", 0o644, "x"),
		}, codes.OK, "pwned-wh"},
		{"overlay xattr smuggled in", []framework.TarEntry{
			{Name: "d/", Type: tar.TypeDir, Mode: 0o755, Xattrs: map[string]string{"trusted.overlay.redirect": "/" + out, "user.pwned": "y"}},
			framework.File("d/pwned-xattr", 0o644, "x"),
		}, codes.OK, "pwned-xattr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			layer, err := framework.NewLayer(tc.entries)
			if err != nil {
				t.Fatal(err)
			}
			ref := pushHostile(t, env.Registry, layer)
			ctx, cancel := context.WithTimeout(framework.Context(t), time.Minute)
			defer cancel()
			id, err := is.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil)
			if err == nil {
				removeImageAtEnd(t, is, id)
			}
			wantCode(t, "PullImage", err, tc.code)
			h.check(t)
			if tc.code != codes.OK {
				if st := imageStatus(t, is, ref); st != nil {
					t.Errorf("a refused pull stored %v", st)
				}
				return
			}
			if env.Daemon != nil && tc.inside != "" {
				found := findInStore(t, env.Daemon, tc.inside)
				if len(found) != 1 {
					t.Errorf("%s found in the store at %v; want once, inside a layer", tc.inside, found)
				}
				for _, p := range found {
					if _, err := unix.Lgetxattr(filepath.Dir(p), "trusted.overlay.redirect", make([]byte, 256)); err == nil {
						t.Errorf("%s carries the layer's trusted.overlay.redirect: overlayfs' own attributes come from whiteouts only", filepath.Dir(p))
					}
				}
			}
		})
	}
}

// TestHostileLayerSetuidAndDevices: setuid-root binaries and world-writable device nodes are
// stored as the image has them, but no user of the host can reach them in the store.
func TestHostileLayerSetuidAndDevices(t *testing.T) {
	framework.RequirePeapod(t)
	env := framework.Shared(t)
	is := env.Image(t)
	id, err := os.ReadFile("/usr/bin/id")
	if err != nil {
		t.Skipf("SKIP-REASON: no /usr/bin/id to stand for a setuid binary: %v", err)
	}
	name := "suid-" + randomSuffix()
	layer, err := framework.NewLayer([]framework.TarEntry{
		{Name: name, Type: tar.TypeReg, Mode: 0o4755, Body: id},
		{Name: name + ".null", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := pushHostile(t, env.Registry, layer)
	imgID := pullImage(t, is, ref, nil)
	removeImageAtEnd(t, is, imgID)
	found := append(findInStore(t, env.Daemon, name), findInStore(t, env.Daemon, name+".null")...)
	if len(found) != 2 {
		t.Fatalf("store holds %v; want the binary and the device", found)
	}
	// Make the daemon's root itself traversable for the check, so that only the store's own
	// modes stand in the way.
	for d := env.Daemon.Root(); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o001 == 0 {
			if err := os.Chmod(d, os.FileMode(st.Mode&0o7777|0o011)); err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(st.Mode & 0o7777)
			t.Cleanup(func() { _ = os.Chmod(d, mode) })
		}
	}
	for _, p := range found {
		cmd := exec.Command(p)
		if strings.HasSuffix(p, ".null") {
			cmd = exec.Command("/bin/cat", p)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil || (!errors.Is(err, syscall.EACCES) && !strings.Contains(string(out), "Permission denied")) {
			t.Errorf("uid 65534 used %s from the store: %v, %q; want permission denied", p, err, out)
		}
	}
}

// TestHostileLayerBombs: a decompression bomb is refused with ResourceExhausted as soon as
// an entry's header passes the configured limit; a sparse file is stored sparse; a sparse
// file claiming more than the default limit is refused without writing anything.
func TestHostileLayerBombs(t *testing.T) {
	framework.RequirePeapod(t)
	reg := framework.SharedRegistry(t)
	d := framework.StartDaemon(t, framework.WithRegistry(reg), framework.WithConfig("[images]\nmax_layer_size = 67108864\n"))
	c := framework.MustConnect(t, d.Endpoint())
	ctx := framework.Context(t)

	bomb, compressed, err := framework.GzipBombLayer(1, 512<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gzip bomb: 512 MiB in %d bytes", compressed)
	ref := pushHostile(t, reg, bomb)
	start := time.Now()
	_, err = c.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil)
	t.Logf("gzip bomb refused after %v: %v", time.Since(start), err)
	wantCode(t, "PullImage of a gzip bomb", err, codes.ResourceExhausted, "max_layer_size")

	// Sparse: 2 GiB in a 4 KiB archive, well within the limit as stored.
	ref = pushHostile(t, reg, mustLayerFromTar(t, framework.SparseTar("sparse-2g", 2<<30, map[int64]string{0: "a", 2<<30 - 1: "z"})))
	_, err = c.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil)
	wantCode(t, "PullImage of a 2 GiB sparse file over a 64 MiB limit", err, codes.ResourceExhausted, "max_layer_size")

	// On the shared daemon (50 GiB default): a 2 GiB sparse file unpacks with its holes, and
	// one claiming 1 TiB is refused at its header.
	env := framework.Shared(t)
	is := env.Image(t)
	ref = pushHostile(t, env.Registry, mustLayerFromTar(t, framework.SparseTar("sparse-2g", 2<<30, map[int64]string{0: "a", 2<<30 - 1: "z"})))
	id := pullImage(t, is, ref, nil)
	removeImageAtEnd(t, is, id)
	var blocks int64 = -1
	for _, p := range findInStore(t, env.Daemon, "sparse-2g") {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err == nil && st.Size == 2<<30 {
			blocks = st.Blocks
		}
	}
	t.Logf("2 GiB sparse file: %d bytes allocated", blocks*512)
	if blocks < 0 || blocks*512 > 1<<20 {
		t.Errorf("2 GiB sparse file allocates %d bytes; want its holes kept", blocks*512)
	}
	ref = pushHostile(t, env.Registry, mustLayerFromTar(t, framework.SparseTar("sparse-1t", 1<<40, map[int64]string{1<<40 - 1: "z"})))
	start = time.Now()
	_, err = is.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil)
	t.Logf("1 TiB sparse file refused after %v: %v", time.Since(start), err)
	wantCode(t, "PullImage of a 1 TiB sparse file", err, codes.ResourceExhausted, "max_layer_size")
}

func mustLayerFromTar(t *testing.T, tarStream []byte) v1.Layer {
	t.Helper()
	l, err := framework.LayerFromTar(tarStream)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
