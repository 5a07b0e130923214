package framework

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// rawHeader is one ustar header block written by hand, for archives archive/tar's writer
// refuses to produce (PAX sparse headers) or would need the whole content in memory for.
func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", imageEpoch().Unix()))
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

func paxRecord(k, v string) string {
	s := " " + k + "=" + v + "\n"
	n := len(s) + 1
	for len(strconv.Itoa(n))+len(s) != n {
		n++
	}
	return strconv.Itoa(n) + s
}

func padBlock(b *bytes.Buffer) {
	if r := b.Len() % 512; r != 0 {
		b.Write(make([]byte, 512-r))
	}
}

// SparseTar is an uncompressed tar holding one GNU PAX 1.0 sparse file (what
// `tar --sparse --posix` writes) of realSize logical bytes, whose only data are the fragments
// in data, by offset: a few KiB of archive for a file of any size. Wrap it with LayerFromTar.
func SparseTar(name string, realSize int64, data map[int64]string) []byte {
	offsets := make([]int64, 0, len(data))
	for off := range data {
		offsets = append(offsets, off)
	}
	slices.Sort(offsets)
	var body bytes.Buffer
	fmt.Fprintf(&body, "%d\n", len(offsets))
	for _, off := range offsets {
		fmt.Fprintf(&body, "%d\n%d\n", off, len(data[off]))
	}
	padBlock(&body)
	for _, off := range offsets {
		body.WriteString(data[off])
	}
	recs := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.realsize", strconv.FormatInt(realSize, 10))
	var out bytes.Buffer
	out.Write(rawHeader("PaxHeaders.0/"+name, 'x', int64(len(recs))))
	out.WriteString(recs)
	padBlock(&out)
	out.Write(rawHeader("GNUSparseFile.0/"+name, '0', int64(body.Len())))
	out.Write(body.Bytes())
	padBlock(&out)
	out.Write(make([]byte, 1024))
	return out.Bytes()
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
		write(rawHeader(fmt.Sprintf("bomb%d", i), '0', size))
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
