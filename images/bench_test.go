package images_test

import (
	"os"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/images/imagebench"
	"github.com/peapod-runtime/peapod/internal/testutil"
)

// BenchmarkPullLarge pulls a 200 MiB, 5-layer image from a loopback registry into an empty
// store, beside downloading the same blobs to disk and extracting them with tar.
// IMAGEBENCH_DIR picks the disk (default: the temp dir).
func BenchmarkPullLarge(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireBinary(b, "tar")
	for _, discard := range []bool{false, true} {
		name := "keep-blobs"
		if discard {
			name = "discard-blobs"
		}
		b.Run(name, func(b *testing.B) {
			var raw, pull time.Duration
			var bytes int64
			for b.Loop() {
				t, err := imagebench.PullThroughput(b.Context(), imagebench.Options{Dir: os.Getenv("IMAGEBENCH_DIR"), DiscardLayerBlobs: discard})
				if err != nil {
					b.Fatal(err)
				}
				b.Log(t)
				raw += t.Raw
				pull += t.Pull
				bytes = t.Bytes
			}
			b.ReportMetric(float64(bytes)*float64(b.N)/1e6/pull.Seconds(), "pull-MB/s")
			b.ReportMetric(float64(bytes)*float64(b.N)/1e6/raw.Seconds(), "raw-MB/s")
			b.ReportMetric(raw.Seconds()/pull.Seconds(), "pull/raw")
		})
	}
}

// BenchmarkPullSmall is the p50 of 20 cold pulls of a busybox-sized (~1.6 MB) image,
// removed between pulls.
func BenchmarkPullSmall(b *testing.B) {
	testutil.RequireRoot(b)
	for b.Loop() {
		l, err := imagebench.SmallPullLatency(b.Context(), imagebench.Options{Dir: os.Getenv("IMAGEBENCH_DIR")})
		if err != nil {
			b.Fatal(err)
		}
		b.Log(l)
		b.ReportMetric(float64(l.P50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(l.P90.Microseconds())/1000, "p90-ms")
	}
}
