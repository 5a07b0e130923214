package images

import (
	"archive/tar"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

// contentCount is how many layer dirs and blob files the store holds.
func contentCount(t *testing.T, s *Service) (layers, blobs int) {
	t.Helper()
	return len(dirNames(t, s.content.layersDir())), len(dirNames(t, s.content.blobsDir()))
}

func TestRemove(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	base := layerOf(t, entry{name: "base", body: "shared by both images"})
	a := imageOf(t, v1.Config{}, base, layerOf(t, entry{name: "a", body: "a"}))
	b := imageOf(t, v1.Config{}, base, layerOf(t, entry{name: "b", body: "b"}))
	tr.push(t, "a:1", a)
	tr.push(t, "a:2", a)
	tr.push(t, "mirror/a:1", a)
	aDigest := tr.push(t, "a:3", a)
	tr.push(t, "b:1", b)
	pullAll := func(t *testing.T, s *Service) {
		t.Helper()
		for _, ref := range []string{"a:1", "a:2", "mirror/a:1", "b:1"} {
			if _, err := s.Pull(t.Context(), tr.host+"/"+ref, Auth{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	aID, bID := imageID(t, a), imageID(t, b)
	for _, by := range []string{"tag", "other repo's tag", "id", "id prefix", "hex id", "digest"} {
		t.Run(by, func(t *testing.T) {
			s := newService(t, Config{})
			pullAll(t, s)
			ref := map[string]string{
				"tag": tr.host + "/a:2", "other repo's tag": tr.host + "/mirror/a:1", "id": aID,
				"id prefix": aID[:15], "hex id": aID[7:], "digest": tr.host + "/a@" + aDigest,
			}[by]
			if err := s.Remove(t.Context(), ref); err != nil {
				t.Fatal(err)
			}
			// Every name of a goes, b stays whole with the layer they shared.
			for _, name := range []string{aID, tr.host + "/a:1", tr.host + "/a:2", tr.host + "/mirror/a:1", tr.host + "/a@" + aDigest} {
				if _, err := s.Status(t.Context(), name); !errdefs.IsNotFound(err) {
					t.Errorf("Status(%s) after removal = %v", name, err)
				}
			}
			if st, err := s.Status(t.Context(), tr.host+"/b:1"); err != nil || st.ID != bID {
				t.Fatalf("b: %v, %v", st, err)
			}
			if layers, blobs := contentCount(t, s); layers != 2 || blobs != 2+1+1 {
				// b: two layers; blobs: its two layer blobs, its config and its manifest.
				t.Errorf("%d layers and %d blobs left, want 2 and 4", layers, blobs)
			}
			if err := s.Remove(t.Context(), ref); err != nil {
				t.Errorf("second Remove = %v, want success", err)
			}
			if err := s.Remove(t.Context(), bID); err != nil {
				t.Fatal(err)
			}
			if layers, blobs := contentCount(t, s); layers != 0 || blobs != 0 {
				t.Errorf("%d layers and %d blobs left after removing everything", layers, blobs)
			}
			if fs, _ := s.FsInfo(t.Context()); fs.UsedBytes != 0 || fs.InodesUsed != 0 {
				t.Errorf("FsInfo after removing everything = %+v", fs)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		s := newService(t, Config{})
		for _, ref := range []string{"never/pulled:1", aID, "sha256:abc", "not a reference"} {
			if err := s.Remove(t.Context(), ref); err != nil {
				t.Errorf("Remove(%q) = %v, want success", ref, err)
			}
		}
	})
}

func TestRemoveImageInUse(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	img := simpleImage(t, "used")
	tr.push(t, "used:1", img)
	root := t.TempDir()
	s := newService(t, Config{Root: root})
	got, err := s.Pull(t.Context(), tr.host+"/used:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2", "c1"} {
		if err := s.Use(t.Context(), got.ID, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Use(t.Context(), "sha256:"+strings.Repeat("0", 64), "c1"); !errdefs.IsNotFound(err) {
		t.Errorf("Use of an unknown image = %v, want not found", err)
	}
	if err := s.Remove(t.Context(), tr.host+"/used:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(t.Context(), got.ID); !errdefs.IsNotFound(err) {
		t.Errorf("Status of a removed image = %v, want not found", err)
	}
	if list, _ := s.List(t.Context(), ""); len(list) != 0 {
		t.Errorf("List shows a removed image: %v", list)
	}
	paths, err := s.LayerPaths(t.Context(), got.ID)
	if err != nil || len(paths) != 2 || !exists(paths[0]) || !exists(paths[1]) {
		t.Fatalf("LayerPaths of a removed image in use = %v, %v; want its layers kept", paths, err)
	}

	// The references survive a restart.
	s = reopen(t, s)
	if err := s.Release(t.Context(), got.ID, "c1"); err != nil {
		t.Fatal(err)
	}
	if !exists(paths[0]) {
		t.Fatal("content went while c2 still uses it")
	}
	if err := s.Release(t.Context(), got.ID, "c2"); err != nil {
		t.Fatal(err)
	}
	if layers, blobs := contentCount(t, s); layers != 0 || blobs != 0 {
		t.Errorf("%d layers and %d blobs left after the last container was released", layers, blobs)
	}
	if _, err := s.LayerPaths(t.Context(), got.ID); !errdefs.IsNotFound(err) {
		t.Errorf("LayerPaths after release = %v", err)
	}
	if err := s.Release(t.Context(), got.ID, "c2"); err != nil {
		t.Errorf("second Release = %v", err)
	}

	// Pulling an image again while a container keeps its removed copy revives it without
	// downloading layers.
	if _, err := s.Pull(t.Context(), tr.host+"/used:1", Auth{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(t.Context(), got.ID, "c3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(t.Context(), got.ID); err != nil {
		t.Fatal(err)
	}
	before := tr.gets()
	again, err := s.Pull(t.Context(), tr.host+"/used:1", Auth{})
	if err != nil || again.ID != got.ID || !slices.Equal(again.RepoTags, []string{tr.host + "/used:1"}) {
		t.Fatalf("pull again = %+v, %v", again, err)
	}
	for blob, n := range tr.gets() {
		if before[blob] != n {
			t.Errorf("blob %s fetched again", blob)
		}
	}
	if err := s.Release(t.Context(), got.ID, "c3"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(t.Context(), got.ID); err != nil {
		t.Errorf("a revived image went when its container was released: %v", err)
	}
}

func TestPullCancelledMidBlob(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	big := layerOf(t, entry{name: "big", body: strings.Repeat("x", 4<<20)})
	img := imageOf(t, v1.Config{}, layerOf(t, entry{name: "small", body: "s"}), big)
	tr.push(t, "slow:1", img)
	bigDigest, _ := big.Digest()
	started := make(chan struct{}, 1)
	tr.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, bigDigest.String()) {
			return false
		}
		// Send the first part, then stall until the client goes.
		rec := &bodyRecorder{header: http.Header{}}
		tr.inner.ServeHTTP(rec, r)
		w.Header().Set("Content-Length", rec.header.Get("Content-Length"))
		w.WriteHeader(http.StatusOK)
		w.Write(rec.body[:len(rec.body)/3])
		w.(http.Flusher).Flush()
		select {
		case started <- struct{}{}:
		default:
		}
		<-r.Context().Done()
		return true
	})
	s := newService(t, Config{})
	tr.push(t, "other:1", simpleImage(t, "other"))
	if _, err := s.Pull(t.Context(), tr.host+"/other:1", Auth{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	// Reads do not wait for the stalled pull: it ends only when cancelled, which happens
	// once they answered (or, if they wait behind it, after a minute, and the test fails).
	// How fast they answer is a figure of make bench (ListImages+ImageStatus/while-pulling).
	readsDone := make(chan struct{})
	var readsWaited atomic.Bool
	go func() {
		<-started
		go func() {
			_, _ = s.List(t.Context(), "")
			_, _ = s.Status(t.Context(), tr.host+"/other:1")
			_, _ = s.FsInfo(t.Context())
			close(readsDone)
		}()
		select {
		case <-readsDone:
		case <-time.After(time.Minute):
			readsWaited.Store(true)
		}
		cancel()
	}()
	_, err := s.Pull(ctx, tr.host+"/slow:1", Auth{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Pull = %v, want canceled", err)
	}
	// Nothing partial stays behind (the flight's cleanup may finish just after Pull returns).
	deadline := time.Now().Add(5 * time.Second)
	for {
		ingest, tmp := dirNames(t, s.content.ingestDir()), dirNames(t, s.content.tmpDir())
		layers, _ := contentCount(t, s)
		if len(ingest)+len(tmp) == 0 && layers == 2 { // the other image's
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: ingest %v tmp %v, %d layers", ingest, tmp, layers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if readsWaited.Load() {
		t.Error("List, Status and FsInfo waited behind a stalled pull")
	}
	<-readsDone
	if list, _ := s.List(t.Context(), ""); len(list) != 1 {
		t.Fatalf("List after a cancelled pull = %v, want only the other image", list)
	}
	tr.setIntercept(nil)
	if _, err := s.Pull(t.Context(), tr.host+"/slow:1", Auth{}); err != nil {
		t.Fatalf("pull after a cancelled one: %v", err)
	}
}

type bodyRecorder struct {
	header http.Header
	body   []byte
}

func (b *bodyRecorder) Header() http.Header { return b.header }
func (b *bodyRecorder) WriteHeader(int)     {}
func (b *bodyRecorder) Write(p []byte) (int, error) {
	b.body = append(b.body, p...)
	return len(p), nil
}

// A daemon killed mid-pull leaves partial downloads, partial unpacks and perhaps a layer
// renamed into place before its image was recorded; New clears all of it.
func TestNewCleansUpAfterACrash(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	img := simpleImage(t, "crash")
	tr.push(t, "crash:1", img)
	root := t.TempDir()
	s := newService(t, Config{Root: root})
	keep := simpleImage(t, "keep")
	tr.push(t, "keep:1", keep)
	if _, err := s.Pull(t.Context(), tr.host+"/keep:1", Auth{}); err != nil {
		t.Fatal(err)
	}
	keepLayers, keepBlobs := contentCount(t, s)

	// What the crashed process left.
	m, _ := img.Manifest()
	half := s.content.layerPath(m.Layers[0].Digest.String()) // a layer dir no record knows
	junk := []string{
		filepath.Join(s.content.ingestDir(), "layer-123"),
		filepath.Join(s.content.tmpDir(), "layer-456", "etc", "half"),
		filepath.Join(half, "bin", "sh"),
		filepath.Join(s.content.blobsDir(), strings.Repeat("e", 64)),
	}
	for _, p := range junk {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, s)
	for _, p := range junk {
		if exists(p) {
			t.Errorf("%s survived New", p)
		}
	}
	if exists(half) {
		t.Errorf("%s survived New", half)
	}
	if layers, blobs := contentCount(t, s); layers != keepLayers || blobs != keepBlobs {
		t.Errorf("%d layers and %d blobs after New, want the kept image's %d and %d", layers, blobs, keepLayers, keepBlobs)
	}
	if _, err := s.Status(t.Context(), tr.host+"/keep:1"); err != nil {
		t.Errorf("the complete image went: %v", err)
	}
	got, err := s.Pull(t.Context(), tr.host+"/crash:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := s.LayerPaths(t.Context(), got.ID)
	if b, err := os.ReadFile(filepath.Join(paths[0], "etc/hostname")); err != nil || string(b) != "crash" {
		t.Errorf("etc/hostname = %q, %v", b, err)
	}
}

// A record whose layers vanished is dropped at New, so the next pull fetches it again.
func TestNewDropsImagesWithMissingLayers(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	img := imageOf(t, v1.Config{}, layerOf(t, entry{name: "d/", typ: tar.TypeDir}, entry{name: "d/f", body: "f"}))
	tr.push(t, "gone:1", img)
	root := t.TempDir()
	s := newService(t, Config{Root: root})
	got, err := s.Pull(t.Context(), tr.host+"/gone:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := s.LayerPaths(t.Context(), got.ID)
	if err := os.RemoveAll(paths[0]); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	if _, err := s.Status(t.Context(), got.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("Status of an image with missing layers = %v, want not found", err)
	}
	if _, err := s.Pull(t.Context(), tr.host+"/gone:1", Auth{}); err != nil || !exists(paths[0]) {
		t.Fatalf("pull again: %v (layer present: %v)", err, exists(paths[0]))
	}
}
