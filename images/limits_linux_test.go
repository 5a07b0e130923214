package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

// requireNothingStored checks that a failed pull left no image, layer, or partial content.
func requireNothingStored(t *testing.T, s *Service) {
	t.Helper()
	if list, err := s.List(t.Context(), ""); err != nil || len(list) != 0 {
		t.Errorf("a failed pull stored %v (%v)", list, err)
	}
	for _, dir := range []string{s.content.layersDir(), s.content.ingestDir(), s.content.tmpDir()} {
		if names := dirNames(t, dir); len(names) != 0 {
			t.Errorf("%s holds %v after the failed pull", dir, names)
		}
	}
}

// Issue 13, defect 5: a small layer that inflates past the limits is refused, as soon as an
// entry's header says so, with ResourceExhausted naming the limit, and nothing stays.
func TestPullBombsHitTheSizeLimits(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	const limit = 64 << 20
	one, oneSize := bombLayer(t, 1, 512<<20, 0) // one 512 MiB file of zeros
	many, manySize := bombLayer(t, 8, 16<<20, 'x')
	half, _ := bombLayer(t, 1, 40<<20, 'y')
	halfToo, _ := bombLayer(t, 1, 40<<20, 'z')
	t.Logf("bombs: 512 MiB in %d bytes of gzip, 8×16 MiB in %d bytes", oneSize, manySize)
	tests := []struct {
		name     string
		cfg      Config
		layers   []v1.Layer
		wantText string
	}{
		{"one file of 512 MiB", Config{MaxLayerSize: limit}, []v1.Layer{one}, "images.max_layer_size"},
		{"eight files of 16 MiB", Config{MaxLayerSize: limit}, []v1.Layer{many}, "images.max_layer_size"},
		{"two layers of 40 MiB", Config{MaxImageSize: limit}, []v1.Layer{half, halfToo}, "images.max_image_size"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := tr.host + "/bomb:" + string(rune('a'+i))
			tr.push(t, "bomb:"+string(rune('a'+i)), imageOf(t, v1.Config{}, tc.layers...))
			s := newService(t, tc.cfg)
			start := time.Now()
			_, err := s.Pull(t.Context(), ref, Auth{})
			t.Logf("refused after %v: %v", time.Since(start), err)
			if !errdefs.IsResourceExhausted(err) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("pull = %v; want ResourceExhausted naming %s", err, tc.wantText)
			}
			requireNothingStored(t, s)
		})
	}
}

// Issue 13, defect 5: a PAX sparse file unpacks sparse: 2 GiB of holes take no disk.
func TestPullSparseFileStaysSparse(t *testing.T) {
	testutil.RequireRoot(t)
	const size = 2 << 30
	data := map[int64]string{0: "head", 1 << 30: "middle", size - 4: "tail"}
	tarStream := testutil.SparseTar("big", size, data)
	t.Logf("layer tar: %d bytes for a %d-byte file", len(tarStream), int64(size))
	tr := newTestRegistry(t)
	tr.push(t, "sparse:1", imageOf(t, v1.Config{}, rawLayer(t, tarStream)))
	s := newService(t, Config{})
	got, err := s.Pull(t.Context(), tr.host+"/sparse:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	paths, err := s.LayerPaths(t.Context(), got.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(paths[0], "big")
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("big: size %d, allocated %d bytes", st.Size, st.Blocks*512)
	if st.Size != size {
		t.Errorf("size %d; want %d", st.Size, int64(size))
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("%d bytes allocated for 14 bytes of data; the holes were written", st.Blocks*512)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off, want := range data {
		buf := make([]byte, len(want)+2)
		n, _ := f.ReadAt(buf, off-1)
		wantBuf := "\x00" + want + "\x00"
		if off == 0 {
			n, _ = f.ReadAt(buf[:len(want)+1], 0)
			wantBuf = want + "\x00"
		}
		if off == size-4 {
			wantBuf = "\x00" + want
		}
		if string(buf[:n]) != wantBuf {
			t.Errorf("at %d: %q; want %q", off, buf[:n], wantBuf)
		}
	}
}

// Issue 13, defect 5: a pull whose caller goes away stops writing at once, even inside a hole
// (which reads nothing from the network) or a run of data that decompresses from a buffer,
// and leaves no partial layer.
func TestPullCancelledMidLayerStopsWriting(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	dense, denseSize := bombLayer(t, 1, 512<<20, 0xab)
	t.Logf("dense layer: 512 MiB in %d bytes of gzip", denseSize)
	tr.push(t, "cancel:dense", imageOf(t, v1.Config{}, dense))
	tr.push(t, "cancel:sparse", imageOf(t, v1.Config{}, rawLayer(t, testutil.SparseTar("big", 16<<30, map[int64]string{16<<30 - 4: "tail"}))))

	for _, tag := range []string{"dense", "sparse"} {
		t.Run(tag, func(t *testing.T) {
			s := newService(t, Config{MaxLayerSize: 1 << 40, MaxImageSize: 1 << 40})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := s.Pull(ctx, tr.host+"/cancel:"+tag, Auth{})
				done <- err
			}()
			// Wait until the file is being written: 32 MiB of data, or its offset past
			// 4 GiB (the writer goes through a hole without allocating).
			var file string
			deadline := time.Now().Add(60 * time.Second)
			for file == "" && time.Now().Before(deadline) {
				matches, _ := filepath.Glob(filepath.Join(s.content.tmpDir(), "layer-*", "bomb0"))
				if tag == "sparse" {
					matches, _ = filepath.Glob(filepath.Join(s.content.tmpDir(), "layer-*", "big"))
				}
				if len(matches) == 1 {
					file = matches[0]
				}
				time.Sleep(time.Millisecond)
			}
			if file == "" {
				t.Fatal("the layer's file never appeared in tmp/")
			}
			if tag == "dense" {
				for {
					var st unix.Stat_t
					if err := unix.Stat(file, &st); err != nil {
						t.Fatalf("the pull ended before it was cancelled: %v", err)
					}
					if st.Blocks*512 >= 32<<20 {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			// Cancel, then watch the file's size until it is gone: the size, not the allocated
			// blocks, which the filesystem's delayed allocation adds to long after the write
			// (sparse holes add to neither). It is read right after the cancel (never before it: on a loaded machine the pull may
			// write a lot between a read and the cancel), so "after" counts only what the pull
			// wrote once it had been told to stop.
			start := time.Now()
			cancel()
			var atCancel int64
			var st unix.Stat_t
			if unix.Stat(file, &st) == nil {
				atCancel = st.Size
			}
			maxSeen := atCancel
			watch := make(chan struct{})
			go func() {
				defer close(watch)
				for {
					var st unix.Stat_t
					if unix.Stat(file, &st) != nil {
						return
					}
					maxSeen = max(maxSeen, st.Size)
					select {
					case <-done:
						return
					default:
					}
				}
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the pull went on for 30 s after its context was cancelled")
			}
			took := time.Since(start)
			<-watch // maxSeen is the watcher's alone until it ends
			after := maxSeen - atCancel
			t.Logf("pull returned %v after the cancel: %v; %d bytes allocated at the cancel, %d more after", took, err, atCancel, after)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("pull = %v; want context.Canceled", err)
			}
			if took > time.Second {
				t.Errorf("the pull took %v to stop after the cancel", took)
			}
			// The writer checks the context before every 1 MiB chunk, but the cancel reaches
			// it through the single-flight's waiter goroutine: on a loaded 2-core machine that
			// takes some milliseconds, in which page-cache writes run at about 1 GiB/s. 64 MiB
			// is far above that and far below the ~480 MiB an unchecked write goes on to (the
			// store before this check wrote 97 MB after the cancel and kept going).
			if after > 64<<20 {
				t.Errorf("%d bytes were written after the cancel", after)
			}
			if _, err := os.Lstat(file); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the partial layer %s is still there (%v)", file, err)
			}
			requireNothingStored(t, s)
		})
	}
}

// A pull never fills the image filesystem: past its free space (less the margin) it fails with
// ResourceExhausted, and what it wrote is removed.
func TestPullStopsAtFreeSpace(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatalf("mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	tr := newTestRegistry(t)
	l, _ := bombLayer(t, 1, 100<<20, 'q')
	tr.push(t, "full:1", imageOf(t, v1.Config{}, l))
	s := newService(t, Config{Root: root})
	_, err := s.Pull(t.Context(), tr.host+"/full:1", Auth{})
	if !errdefs.IsResourceExhausted(err) || !strings.Contains(err.Error(), "free") {
		t.Fatalf("pull of 100 MiB onto 64 MiB = %v; want ResourceExhausted about free space", err)
	}
	requireNothingStored(t, s)
}

// A layer whose bytes match their digest but are no tar (or no gzip) is the image's fault:
// InvalidArgument, not an unclassed error, and nothing stays.
func TestPullMalformedLayerIsInvalidArgument(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	s := newService(t, Config{})
	garbage := []byte(strings.Repeat("this is not a tar archive\n", 100))
	truncated := tarBytes(t, entry{name: "f", body: strings.Repeat("x", 4096)})[:1024]
	for i, l := range []v1.Layer{rawLayer(t, garbage), rawLayer(t, truncated)} {
		ref := tr.host + "/malformed:" + string(rune('a'+i))
		tr.push(t, "malformed:"+string(rune('a'+i)), imageOf(t, v1.Config{}, l))
		_, err := s.Pull(t.Context(), ref, Auth{})
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("pull of a malformed layer = %v; want InvalidArgument", err)
		}
	}
	requireNothingStored(t, s)
}
