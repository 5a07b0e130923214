package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
	"github.com/peapod-runtime/peapod/internal/testutil"
)

// syntheticImage is the large image's name; the runtime pulls it from the bench's registry
// (which mirrors registry.k8s.io).
const syntheticImage = "registry.k8s.io/peapod-bench/large:1"

// syntheticPullScenario pulls a synthetic 200 MiB, 5-layer image of incompressible data
// through the runtime's CRI, from the bench's registry on 127.0.0.1, beside the raw cost of
// the same bytes: its blobs downloaded with plain GETs and its layers extracted with tar on
// the same disk. The one timed run is the pull; the metrics hold both.
func syntheticPullScenario() scenario {
	var bytes int64
	var raw testutil.RawPull
	var pull time.Duration
	var pulled string
	return scenario{
		name:     "PullImage/synthetic-200MiB",
		runs:     1,
		noWarmup: true,
		setup: func(ctx context.Context, e *env) error {
			if e.registry == nil {
				return errors.New("needs the bench's own registry (not available with -endpoint)")
			}
			if e.image == nil {
				return fmt.Errorf("image service: %w", e.imageErr)
			}
			img, err := largeImage()
			if err != nil {
				return err
			}
			if err := e.registry.Push(ctx, syntheticImage, img); err != nil {
				return err
			}
			if bytes, raw, err = rawPull(ctx, e.registry, img); err != nil {
				return fmt.Errorf("raw baseline: %w", err)
			}
			return nil
		},
		run: func(ctx context.Context, e *env, _ int) error {
			start := time.Now()
			ref, err := e.image.PullImage(ctx, &runtimeapi.ImageSpec{Image: syntheticImage}, nil, nil)
			pull, pulled = time.Since(start), ref
			return err
		},
		metrics: func(context.Context, *env) (map[string]float64, error) {
			mb := float64(bytes) / 1e6
			rawTotal := raw.Download + raw.Extract
			return map[string]float64{
				"size_MB":   mb,
				"pull_s":    pull.Seconds(),
				"pull_MB/s": mb / pull.Seconds(),
				"raw_MB/s":  mb / rawTotal.Seconds(),
				"pull/raw":  rawTotal.Seconds() / pull.Seconds(),
				"raw_get_s": raw.Download.Seconds(),
				"raw_tar_s": raw.Extract.Seconds(),
			}, nil
		},
		teardown: func(ctx context.Context, e *env) error {
			if pulled == "" {
				return nil
			}
			return e.image.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: pulled})
		},
	}
}

// largeImage is testutil.LargeLayers' 200 MiB in 5 layers.
func largeImage() (v1.Image, error) {
	gz, err := testutil.LargeLayers(200<<20, 5)
	if err != nil {
		return nil, err
	}
	spec := framework.ImageSpec{}
	for _, b := range gz {
		l, err := framework.LayerFromGzip(b)
		if err != nil {
			return nil, err
		}
		spec.Layers = append(spec.Layers, l)
	}
	return framework.BuildImage(spec)
}

// rawPull downloads img's blobs from reg and extracts its layers with tar in a scratch
// directory of the temp dir's disk, which it removes.
func rawPull(ctx context.Context, reg *framework.Registry, img v1.Image) (int64, testutil.RawPull, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, testutil.RawPull{}, err
	}
	size := m.Config.Size
	blobs := []string{m.Config.Digest.String()}
	var layers []string
	for _, l := range m.Layers {
		size += l.Size
		blobs = append(blobs, l.Digest.String())
		layers = append(layers, l.Digest.String())
	}
	dir, err := os.MkdirTemp("", "bench-rawpull-")
	if err != nil {
		return 0, testutil.RawPull{}, err
	}
	defer os.RemoveAll(dir)
	r, err := testutil.MeasureRawPull(ctx, reg.URL()+"/v2/peapod-bench/large/blobs", blobs, layers, dir)
	return size, r, err
}
