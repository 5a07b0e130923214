package framework

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"github.com/peapod-runtime/peapod/internal/testutil"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// SparseTar is testutil.SparseTar: an uncompressed tar of one PAX sparse file of realSize
// logical bytes. Wrap it with LayerFromTar.
func SparseTar(name string, realSize int64, data map[int64]string) []byte {
	return testutil.SparseTar(name, realSize, data)
}

// GzipBombLayer is a gzip layer of files regular files ("bomb0", "bomb1", ...) of size bytes
// each, every byte fill, compressed at gzip's best ratio (about 1000:1) without the
// uncompressed archive ever being in memory. It returns the layer and its compressed size.
func GzipBombLayer(files int, size int64, fill byte) (v1.Layer, int, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, 0, fmt.Errorf("gzip writer: %w", err)
	}
	chunk := bytes.Repeat([]byte{fill}, 1<<20)
	write := func(b []byte) {
		if err == nil {
			_, err = zw.Write(b)
		}
	}
	for i := range files {
		write(testutil.TarHeader(fmt.Sprintf("bomb%d", i), '0', size))
		for left := size; left > 0; left -= int64(len(chunk)) {
			write(chunk[:min(left, int64(len(chunk)))])
		}
		if r := size % 512; r != 0 {
			write(make([]byte, 512-r))
		}
	}
	write(make([]byte, 1024))
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("compress bomb: %w", err)
	}
	compressed := gz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("bomb layer: %w", err)
	}
	return plainLayer{layer}, len(compressed), nil
}
