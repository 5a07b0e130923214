package images

import (
	"bytes"
	"fmt"
	"github.com/peapod-runtime/peapod/internal/testutil"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
)

// repeatReader yields n copies of one byte.
type repeatReader struct {
	b byte
	n int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n)]
	for i := range p {
		p[i] = r.b
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// bombLayer is a gzip layer of files regular files of size bytes each, every byte fill,
// compressed at the best ratio without ever holding the uncompressed tar in memory. It
// returns the layer and its compressed size.
func bombLayer(t testing.TB, files int, size int64, fill byte) (v1.Layer, int) {
	t.Helper()
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if _, err := zw.Write(testutil.TarHeader(fmt.Sprintf("bomb%d", i), '0', size)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(zw, &repeatReader{b: fill, n: size}); err != nil {
			t.Fatal(err)
		}
		if r := size % 512; r != 0 {
			if _, err := zw.Write(make([]byte, 512-r)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := zw.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	compressed := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(compressed)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l, len(compressed)
}

// rawLayer is a gzip layer of a ready-made tar stream.
func rawLayer(t testing.TB, tarStream []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarStream)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}
