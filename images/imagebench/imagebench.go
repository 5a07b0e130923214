// Package imagebench measures peapod's image pulls against a registry served from memory on
// 127.0.0.1: the throughput of a cold pull of a large synthetic image beside the raw cost of
// downloading the same blobs to disk and extracting them with tar on the same disk, and the
// latency of a cold pull of a small image. Go benchmarks in images and critest/bench call
// it; it needs root (layers are unpacked with their owners, whiteouts are device nodes).
package imagebench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/images"
	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/store"
)

// Options sizes a run. Zero fields take the defaults in brackets.
type Options struct {
	// Dir is a scratch directory on the disk to measure; everything is written under it and
	// removed at the end [os.TempDir()].
	Dir string
	// ImageBytes is the uncompressed size of the large image [200 MiB], in Layers layers [5].
	ImageBytes int64
	Layers     int
	// SmallRuns is how many cold pulls of the small (~1.6 MB) image are timed [20].
	SmallRuns int
	// DiscardLayerBlobs is passed to images.Config.
	DiscardLayerBlobs bool
	// Logger receives the image service's logs [none].
	Logger *zap.Logger
}

func (o *Options) defaults() {
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	if o.ImageBytes == 0 {
		o.ImageBytes = 200 << 20
	}
	if o.Layers == 0 {
		o.Layers = 5
	}
	if o.SmallRuns == 0 {
		o.SmallRuns = 20
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Throughput is the large-image figure.
type Throughput struct {
	// Bytes is the compressed size of the image's blobs.
	Bytes int64
	// Raw is downloading every blob to a file, then extracting each layer with tar -xzf;
	// RawDownload and RawExtract are its two parts.
	Raw, RawDownload, RawExtract time.Duration
	// Pull is images.Service.Pull on an empty store, through to the image being listed.
	Pull time.Duration
}

// MBps converts a duration over t.Bytes to MB/s (10^6 bytes).
func (t Throughput) MBps(d time.Duration) float64 { return float64(t.Bytes) / 1e6 / d.Seconds() }

// Ratio is the pull's throughput over the raw one (above 1: faster than download + tar).
func (t Throughput) Ratio() float64 { return t.Raw.Seconds() / t.Pull.Seconds() }

func (t Throughput) String() string {
	return fmt.Sprintf("large image %.1f MB: pull %v (%.0f MB/s); raw download+tar %v (%.0f MB/s; download %v, tar %v); ratio %.2f",
		float64(t.Bytes)/1e6, t.Pull.Round(time.Millisecond), t.MBps(t.Pull), t.Raw.Round(time.Millisecond), t.MBps(t.Raw),
		t.RawDownload.Round(time.Millisecond), t.RawExtract.Round(time.Millisecond), t.Ratio())
}

// Latency is the small-image figure.
type Latency struct {
	Bytes    int64
	Runs     []time.Duration // each cold pull, in order
	P50, P90 time.Duration
}

func (l Latency) String() string {
	return fmt.Sprintf("small image %.2f MB: cold pull p50 %v p90 %v over %d runs",
		float64(l.Bytes)/1e6, l.P50.Round(10*time.Microsecond), l.P90.Round(10*time.Microsecond), len(l.Runs))
}

// Result is a whole run.
type Result struct {
	Large Throughput
	Small Latency
}

// Run measures both figures.
func Run(ctx context.Context, o Options) (Result, error) {
	large, err := PullThroughput(ctx, o)
	if err != nil {
		return Result{}, err
	}
	small, err := SmallPullLatency(ctx, o)
	if err != nil {
		return Result{}, err
	}
	return Result{Large: large, Small: small}, nil
}

// PullThroughput measures a cold pull of the large image beside the raw download + tar.
func PullThroughput(ctx context.Context, o Options) (Throughput, error) {
	o.defaults()
	img, err := largeImage(o.ImageBytes, o.Layers)
	if err != nil {
		return Throughput{}, err
	}
	srv, ref, err := serve(ctx, img, "bench/large:1")
	if err != nil {
		return Throughput{}, err
	}
	defer srv.Close()
	work, err := os.MkdirTemp(o.Dir, "imagebench-")
	if err != nil {
		return Throughput{}, err
	}
	defer os.RemoveAll(work)

	var t Throughput
	m, err := img.Manifest()
	if err != nil {
		return Throughput{}, err
	}
	t.Bytes = m.Config.Size
	for _, l := range m.Layers {
		t.Bytes += l.Size
	}

	// Raw: GET each blob into a file, then tar -xzf each one.
	rawDir := filepath.Join(work, "raw")
	if err := os.MkdirAll(rawDir, 0o755); err != nil {
		return Throughput{}, err
	}
	blobs := []string{m.Config.Digest.String()}
	var layers []string
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest.String())
		layers = append(layers, l.Digest.String())
	}
	raw, err := testutil.MeasureRawPull(ctx, srv.URL+"/v2/bench/large/blobs", blobs, layers, rawDir)
	if err != nil {
		return Throughput{}, err
	}
	t.RawDownload, t.RawExtract = raw.Download, raw.Extract
	t.Raw = t.RawDownload + t.RawExtract
	if err := os.RemoveAll(rawDir); err != nil {
		return Throughput{}, err
	}

	s, closeDB, err := newService(ctx, filepath.Join(work, "peapod"), o)
	if err != nil {
		return Throughput{}, err
	}
	defer closeDB()
	start := time.Now()
	if _, err := s.Pull(ctx, ref, images.Auth{}); err != nil {
		return Throughput{}, err
	}
	t.Pull = time.Since(start)
	return t, nil
}

// SmallPullLatency times o.SmallRuns cold pulls of a busybox-sized image, removing it (and
// so its content) between runs.
func SmallPullLatency(ctx context.Context, o Options) (Latency, error) {
	o.defaults()
	img, err := smallImage()
	if err != nil {
		return Latency{}, err
	}
	srv, ref, err := serve(ctx, img, "bench/small:1")
	if err != nil {
		return Latency{}, err
	}
	defer srv.Close()
	work, err := os.MkdirTemp(o.Dir, "imagebench-")
	if err != nil {
		return Latency{}, err
	}
	defer os.RemoveAll(work)
	s, closeDB, err := newService(ctx, work, o)
	if err != nil {
		return Latency{}, err
	}
	defer closeDB()

	var l Latency
	m, err := img.Manifest()
	if err != nil {
		return Latency{}, err
	}
	l.Bytes = m.Config.Size
	for _, ly := range m.Layers {
		l.Bytes += ly.Size
	}
	for range o.SmallRuns {
		start := time.Now()
		got, err := s.Pull(ctx, ref, images.Auth{})
		if err != nil {
			return Latency{}, err
		}
		l.Runs = append(l.Runs, time.Since(start))
		if err := s.Remove(ctx, got.ID); err != nil {
			return Latency{}, err
		}
	}
	sorted := slices.Clone(l.Runs)
	slices.Sort(sorted)
	l.P50 = sorted[len(sorted)/2]
	l.P90 = sorted[len(sorted)*9/10]
	return l, nil
}

func newService(ctx context.Context, root string, o Options) (*images.Service, func(), error) {
	db, err := store.Open(filepath.Join(root, "meta.db"))
	if err != nil {
		return nil, nil, err
	}
	s, err := images.New(ctx, images.Config{Root: root, DiscardLayerBlobs: o.DiscardLayerBlobs}, db, o.Logger)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return s, func() { _ = db.Close() }, nil
}

// serve pushes img as repo into an in-memory registry on 127.0.0.1 and returns the server
// and the image's full reference.
func serve(ctx context.Context, img v1.Image, repo string) (*httptest.Server, string, error) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	ref := strings.TrimPrefix(srv.URL, "http://") + "/" + repo
	r, err := name.ParseReference(ref)
	if err != nil {
		srv.Close()
		return nil, "", err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		srv.Close()
		return nil, "", fmt.Errorf("push %s: %w", ref, err)
	}
	return srv, ref, nil
}

// largeImage has layers layers of about total/layers bytes each (testutil.LargeLayers).
func largeImage(total int64, layers int) (v1.Image, error) {
	gz, err := testutil.LargeLayers(total, layers)
	if err != nil {
		return nil, err
	}
	return image(gz...)
}

// smallImage looks like a busybox image (testutil.BusyboxLikeLayer).
func smallImage() (v1.Image, error) {
	gz, err := testutil.BusyboxLikeLayer()
	if err != nil {
		return nil, err
	}
	return image(gz)
}

// image is the gzip layers with a config for this machine. The layers are held in memory
// and handed out as they are (not compressed again on every read).
func image(gzLayers ...[]byte) (v1.Image, error) {
	var layers []v1.Layer
	for _, gz := range gzLayers {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil })
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = []string{"/bin/sh"}
	return mutate.ConfigFile(img, cf)
}
