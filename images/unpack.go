package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// DefaultMaxLayerSize and DefaultMaxImageSize bound the uncompressed size of one layer and of
// one image when Config.MaxLayerSize or Config.MaxImageSize is zero: 50 GiB, far above any
// real image, far below what a decompression bomb can claim.
const (
	DefaultMaxLayerSize int64 = 50 << 30
	DefaultMaxImageSize int64 = 50 << 30
)

// freeSpaceMargin is what a pull leaves free on the image filesystem: 1/20 of its size, at
// most 1 GiB.
func freeSpaceMargin(fsSize int64) int64 { return min(fsSize/20, 1<<30) }

// unpackChunk is how much of a file is read, checked for holes and written at a time; the
// pull's context is checked before each chunk.
const unpackChunk = 1 << 20

// holeBlock is the granularity of hole detection: a block of zeros this large is not written
// but left a hole.
const holeBlock = 4096

// pullBudget bounds what one pull may unpack. The uncompressed ("logical") size of a layer is
// its entries' headers (512 bytes each) plus its regular files' sizes, holes of sparse files
// included; it is checked against the layer and image limits before an entry is written.
// The bytes actually written (holes excluded) are checked against the free space the image
// filesystem had when the pull started, less a margin. A nil *pullBudget bounds nothing.
type pullBudget struct {
	maxLayer  int64
	maxImage  int64
	image     atomic.Int64 // logical bytes taken by the pull's layers so far
	diskLeft  atomic.Int64 // bytes that may still be written
	diskLimit int64        // diskLeft at the start, for errors
}

func newPullBudget(maxLayer, maxImage, diskFree int64) *pullBudget {
	b := &pullBudget{maxLayer: maxLayer, maxImage: maxImage, diskLimit: diskFree}
	b.diskLeft.Store(diskFree)
	return b
}

// layerBudget is one layer's share of a pullBudget.
type layerBudget struct {
	pull    *pullBudget
	logical int64
}

// take charges n logical bytes to the layer and the image.
func (l *layerBudget) take(n int64) error {
	if l == nil || l.pull == nil {
		return nil
	}
	l.logical += n
	if l.logical > l.pull.maxLayer || l.logical < 0 {
		return fmt.Errorf("layer is larger than %d bytes uncompressed (images.max_layer_size): %w", l.pull.maxLayer, errdefs.ErrResourceExhausted)
	}
	if t := l.pull.image.Add(n); t > l.pull.maxImage || t < 0 {
		return fmt.Errorf("image is larger than %d bytes uncompressed (images.max_image_size): %w", l.pull.maxImage, errdefs.ErrResourceExhausted)
	}
	return nil
}

// write charges n bytes about to be written to the filesystem's free space.
func (l *layerBudget) write(n int64) error {
	if l == nil || l.pull == nil {
		return nil
	}
	if l.pull.diskLeft.Add(-n) < 0 {
		return fmt.Errorf("image needs more than the %d bytes the image filesystem had free, less its margin: %w", l.pull.diskLimit, errdefs.ErrResourceExhausted)
	}
	return nil
}

// errMalformedLayer marks a layer whose compression or tar stream is broken although its
// bytes are the ones its digest names: the image itself is bad.
var errMalformedLayer = fmt.Errorf("malformed layer: %w", errdefs.ErrInvalidArgument)

// unpackLayer extracts the layer tar read from r (gzip, zstd or plain, told apart by their
// magic bytes) into dest, an empty directory, converting whiteouts for overlayfs: ".wh.x"
// becomes the character device 0:0 named x and ".wh..wh..opq" the xattr
// trusted.overlay.opaque=y on its directory. It reads r to its end and returns the digest of
// the uncompressed stream (the layer's diff id).
//
// Containment: every path of an entry (its parents, a hard link's target) is resolved inside
// dest as if dest were the root of the filesystem (an absolute symlink met on the way starts
// again at dest, ".." stops at dest), each step through an os.Root opened at dest, and the
// entry itself is created relative to its parent's descriptor without following a symlink,
// so nothing a layer holds can write outside dest. Names that leave dest ("../x") and hard
// links to targets outside it are refused.
//
// Bounds: entries are charged to budget before they are written (ResourceExhausted past a
// limit); files are written in chunks of unpackChunk, zero blocks left as holes (a sparse
// file stays sparse, whatever its format); ctx is checked before every entry and every chunk.
//
// Errors: a hostile or malformed layer is errdefs.ErrInvalidArgument naming the entry; a
// layer over a limit errdefs.ErrResourceExhausted; a failed read of r is returned as is
// (wrapped), as is ctx's error.
func unpackLayer(ctx context.Context, r io.Reader, dest string, budget *layerBudget) (diffID string, err error) {
	src := &sourceReader{ctx: ctx, r: r}
	br := bufio.NewReaderSize(src, 256<<10)
	defer func() {
		// A failed download or a cancelled pull is what it is, whatever the decompressor or
		// the tar reader made of the truncated stream.
		if err != nil && src.err != nil {
			err = fmt.Errorf("read layer: %w", src.err)
		}
	}()
	magic, _ := br.Peek(4)
	var tarStream io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return "", fmt.Errorf("gzip: %v: %w", err, errMalformedLayer)
		}
		defer gz.Close()
		tarStream = gz
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false))
		if err != nil {
			return "", fmt.Errorf("zstd: %v: %w", err, errMalformedLayer)
		}
		defer zr.Close()
		tarStream = zr
	default:
		tarStream = br
	}
	h := sha256.New()
	hr := &hashReader{r: tarStream, h: h}
	if err := applyTar(ctx, tar.NewReader(hr), dest, budget); err != nil {
		return "", fmt.Errorf("unpack: %w", err)
	}
	// The tar's end-of-archive blocks and any padding count towards the diff id, and the
	// compressed stream must be read to its end for its own digest to be checked.
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return "", fmt.Errorf("read layer tail: %v: %w", err, errMalformedLayer)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return "", fmt.Errorf("read layer tail: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// applyTar creates tr's entries in dest (see unpackLayer).
func applyTar(ctx context.Context, tr *tar.Reader, dest string, budget *layerBudget) error {
	a, err := newApplier(ctx, dest, budget)
	if err != nil {
		return err
	}
	defer a.close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar header: %v: %w", err, errMalformedLayer)
		}
		if err := a.entry(hdr, tr); err != nil {
			return err
		}
	}
	return a.finish()
}

// entryCost is what an entry counts towards the layer's uncompressed size.
func entryCost(hdr *tar.Header) int64 {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		return 512 + hdr.Size
	}
	return 512
}

// hashReader hashes what it reads.
type hashReader struct {
	r io.Reader
	h hash.Hash
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// sourceReader reads the layer's (compressed) bytes: it stops once ctx is done, so a
// cancelled pull stops even while data is still buffered, and it keeps the first read error
// other than io.EOF, which tells a failed download from a malformed layer.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		if s.err == nil {
			s.err = err
		}
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}
	return n, err
}
