package images

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
)

// ustarBlock is one raw ustar header block, written by hand for what archive/tar's writer
// refuses to produce (PAX sparse headers).
func ustarBlock(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 1700000000))
	b[156] = typ
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// paxRecord is one "<len> key=value\n" PAX record.
func paxRecord(k, v string) string {
	s := " " + k + "=" + v + "\n"
	n := len(s) + 1
	for len(strconv.Itoa(n))+len(s) != n {
		n++
	}
	return strconv.Itoa(n) + s
}

func pad512(b *bytes.Buffer) {
	if r := b.Len() % 512; r != 0 {
		b.Write(make([]byte, 512-r))
	}
}

// sparseTar is a tar holding one GNU PAX 1.0 sparse file of realSize logical bytes whose only
// data are the fragments in data (by offset): what `tar --sparse --posix` writes.
func sparseTar(name string, realSize int64, data map[int64]string) []byte {
	offsets := make([]int64, 0, len(data))
	for off := range data {
		offsets = append(offsets, off)
	}
	slices.Sort(offsets)
	var smap bytes.Buffer
	fmt.Fprintf(&smap, "%d\n", len(offsets))
	for _, off := range offsets {
		fmt.Fprintf(&smap, "%d\n%d\n", off, len(data[off]))
	}
	pad512(&smap)
	for _, off := range offsets {
		smap.WriteString(data[off])
	}
	recs := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.realsize", strconv.FormatInt(realSize, 10))
	var out bytes.Buffer
	out.Write(ustarBlock("PaxHeaders.0/"+name, 'x', int64(len(recs))))
	out.WriteString(recs)
	pad512(&out)
	out.Write(ustarBlock("GNUSparseFile.0/"+name, '0', int64(smap.Len())))
	out.Write(smap.Bytes())
	pad512(&out)
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

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
		if _, err := zw.Write(ustarBlock(fmt.Sprintf("bomb%d", i), '0', size)); err != nil {
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
