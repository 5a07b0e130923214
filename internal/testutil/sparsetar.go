package testutil

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
)

// SparseTar is an uncompressed tar holding one GNU PAX 1.0 sparse file (what
// `tar --sparse --posix` writes) of realSize logical bytes, whose only data are the fragments
// in data, by offset: a few KiB of archive for a file of any size. archive/tar's writer
// refuses PAX sparse headers, so the blocks are written by hand.
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
	out.Write(TarHeader("PaxHeaders.0/"+name, 'x', int64(len(recs))))
	out.WriteString(recs)
	padBlock(&out)
	out.Write(TarHeader("GNUSparseFile.0/"+name, '0', int64(body.Len())))
	out.Write(body.Bytes())
	padBlock(&out)
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

// sparseTarMtime is every header's mtime, fixed so that the archive (and a layer's digest)
// is the same at every run.
const sparseTarMtime = 1700000000

// TarHeader is one ustar header block (mode 0644, uid and gid 0, a fixed mtime), for archives
// written by hand.
func TarHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", sparseTarMtime))
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

func padBlock(b *bytes.Buffer) {
	if r := b.Len() % 512; r != 0 {
		b.Write(make([]byte, 512-r))
	}
}
