package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"github.com/peapod-runtime/peapod/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
)

// fuzzLayerSeeds are the tar streams FuzzUnpackLayer starts from: ordinary layers, each kind
// of whiteout, and the hostile shapes the containment test refuses or contains.
func fuzzLayerSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{
		tarBytes(t,
			entry{name: "bin/", typ: tar.TypeDir},
			entry{name: "bin/busybox", body: "#!bb", mode: 0o4755, uid: 1, gid: 2, xattrs: map[string]string{"user.a": "b"}},
			entry{name: "bin/ls", typ: tar.TypeLink, link: "bin/busybox"},
			entry{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
			entry{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
			entry{name: "dev/fifo", typ: tar.TypeFifo},
			entry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		),
		tarBytes(t,
			entry{name: "a/", typ: tar.TypeDir},
			entry{name: "a/.wh.gone"},
			entry{name: "opq/.wh..wh..opq"},
			entry{name: ".wh..wh.plnk/1"},
			entry{name: "opq/new", body: "new"},
		),
		tarBytes(t,
			entry{name: "evil", typ: tar.TypeSymlink, link: "/"},
			entry{name: "evil/etc/pwned", body: "x"},
			entry{name: "up", typ: tar.TypeSymlink, link: "../../../../.."},
			entry{name: "up/pwned", body: "x"},
			entry{name: "up/.wh.victim"},
			entry{name: "../../pwned", body: "x"},
			entry{name: "link", typ: tar.TypeLink, link: "/etc/passwd"},
		),
		tarBytes(t,
			entry{name: "f", body: "one"},
			entry{name: "l", typ: tar.TypeLink, link: "f"},
			entry{name: "l", body: "two"},
			entry{name: "d/", typ: tar.TypeDir},
			entry{name: "d", body: "replaces the dir"},
			entry{name: "loop", typ: tar.TypeSymlink, link: "loop/x"},
			entry{name: "loop/y", body: "z"},
		),
		testutil.SparseTar("sparse", 1<<20, map[int64]string{0: "a", 1<<19 + 3: "bc", 1<<20 - 1: "d"}),
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(seeds[0])
	_ = zw.Close()
	return append(seeds, gz.Bytes())
}

// FuzzUnpackLayer feeds arbitrary layer streams to the unpacker. Whatever the input, nothing
// may appear or change outside the unpack directory, and a refused layer must be refused as
// the layer's fault (InvalidArgument) or for its size (ResourceExhausted), never with an
// unclassed error or a panic.
func FuzzUnpackLayer(f *testing.F) {
	for _, s := range fuzzLayerSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, layer []byte) {
		sandbox := t.TempDir()
		victim := filepath.Join(sandbox, "victim")
		if err := os.WriteFile(victim, []byte("original"), 0o644); err != nil {
			t.Fatal(err)
		}
		var victimSt syscall.Stat_t
		if err := syscall.Stat(victim, &victimSt); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(sandbox, "layer")
		if err := os.Mkdir(dest, 0o700); err != nil {
			t.Fatal(err)
		}
		budget := &layerBudget{pull: newPullBudget(8<<20, 8<<20, 8<<20)}
		_, err := unpackLayer(context.Background(), bytes.NewReader(layer), dest, budget)
		if err != nil && !errdefs.IsInvalidArgument(err) && !errdefs.IsResourceExhausted(err) {
			if os.Geteuid() != 0 && errors.Is(err, syscall.EPERM) {
				return // chown and mknod need root
			}
			t.Fatalf("unclassed unpack error: %v", err)
		}
		names, err := os.ReadDir(sandbox)
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 2 {
			t.Fatalf("the layer wrote beside its directory: %v", names)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(victim, &st); err != nil || st.Nlink != 1 || st.Size != victimSt.Size || st.Mtim != victimSt.Mtim {
			t.Fatalf("a file outside the layer changed: %v, nlink %d", err, st.Nlink)
		}
		if b, _ := os.ReadFile(victim); string(b) != "original" {
			t.Fatalf("victim = %q", b)
		}
	})
}

// FuzzParseReference checks that any reference either parses to a normalised name that parses
// again to itself, or is refused with InvalidArgument.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"busybox", "busybox:1.36", "docker.io/library/busybox", "index.docker.io/library/busybox:1",
		"registry.k8s.io/pause:3.10", "localhost:5000/x", "127.0.0.1:5000/a/b:c", "[::1]:5000/a:b",
		"busybox@" + someDigest, "busybox:1.36@" + someDigest, "a/b/c/d:e_f.g-h",
		"Busybox", "busybox::1", someDigest, "a__b", "a--b/c", "x@md5:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseReference(s)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("parseReference(%q) = %v; want InvalidArgument", s, err)
			}
			return
		}
		n := r.String()
		again, err := parseReference(n)
		if err != nil {
			t.Fatalf("parseReference(%q) = %s, which does not parse: %v", s, n, err)
		}
		if again.String() != n {
			t.Fatalf("parseReference(%q) = %s, which parses to %s", s, n, again)
		}
		if (r.tag == "") == (r.digest == "") {
			t.Fatalf("parseReference(%q) has tag %q and digest %q; want exactly one", s, r.tag, r.digest)
		}
		if r.digest != "" && !digestRef.MatchString(r.digest) {
			t.Fatalf("parseReference(%q) has digest %q", s, r.digest)
		}
		if strings.ToLower(r.host()) != r.host() {
			t.Fatalf("parseReference(%q) has host %q, not lowercase", s, r.host())
		}
	})
}
