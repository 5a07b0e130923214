package images

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"go.uber.org/zap/zaptest"

	"github.com/peapod-runtime/peapod/store"
)

// testRegistry is go-containerregistry's in-memory registry on 127.0.0.1 behind a handler
// that counts blob downloads and lets a test intercept requests.
type testRegistry struct {
	srv   *httptest.Server
	host  string
	inner http.Handler // the registry itself

	mu       sync.Mutex
	blobGets map[string]int
	// intercept, when set, may answer a request itself (returning true).
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{blobGets: map[string]int{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tr.inner = inner
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			tr.mu.Lock()
			tr.blobGets[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]++
			tr.mu.Unlock()
		}
		tr.mu.Lock()
		intercept := tr.intercept
		tr.mu.Unlock()
		if intercept != nil && intercept(w, r) {
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

func (tr *testRegistry) setIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	tr.mu.Lock()
	tr.intercept = f
	tr.mu.Unlock()
}

// gets returns how often each blob was downloaded.
func (tr *testRegistry) gets() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]int{}
	for k, v := range tr.blobGets {
		out[k] = v
	}
	return out
}

// push stores img as host/repo (repo may carry a tag) and returns its manifest digest.
func (tr *testRegistry) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(tr.host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func (tr *testRegistry) pushIndex(t *testing.T, repo string, idx v1.ImageIndex) string {
	t.Helper()
	ref, err := name.ParseReference(tr.host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// entry is one tar entry of a test layer.
type entry struct {
	name     string
	typ      byte // tar.TypeReg when zero
	body     string
	link     string
	mode     int64
	uid, gid int
	xattrs   map[string]string
	major    int64
	minor    int64
}

func tarBytes(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Devmajor: e.major, Devminor: e.minor, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerOf builds a gzip layer of entries.
func layerOf(t testing.TB, entries ...entry) v1.Layer {
	t.Helper()
	b := tarBytes(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf builds a linux image for this machine's architecture from layers.
func imageOf(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	return imageFor(t, runtime.GOARCH, cfg, layers...)
}

func imageFor(t testing.TB, arch string, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", arch, cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// simpleImage is a one-layer image whose file content is unique to tag.
func simpleImage(t testing.TB, tag string) v1.Image {
	t.Helper()
	return imageOf(t, v1.Config{Cmd: []string{"/bin/sh"}},
		layerOf(t, entry{name: "bin/", typ: tar.TypeDir}, entry{name: "bin/sh", body: "#!" + tag, mode: 0o755}),
		layerOf(t, entry{name: "etc/", typ: tar.TypeDir}, entry{name: "etc/hostname", body: tag}))
}

func imageID(t testing.TB, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// newService opens a Service on a fresh root (or root, when given) with cfg's other fields.
func newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	db, err := store.Open(filepath.Join(cfg.Root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s, err := New(context.Background(), cfg, db, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reopen closes s's database and opens a new Service on the same root, as a restarted
// daemon would.
func reopen(t *testing.T, s *Service) *Service {
	t.Helper()
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := s.cfg
	return newService(t, cfg)
}

// mirrorAll makes docker.io and registry.k8s.io pull from tr.
func mirrorAll(tr *testRegistry) map[string]RegistryConfig {
	m := RegistryConfig{Mirrors: []string{tr.srv.URL}}
	return map[string]RegistryConfig{"docker.io": m, "registry.k8s.io": m}
}

// dirNames lists a directory's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
