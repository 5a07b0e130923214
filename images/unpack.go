package images

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/go-archive"
)

// unpackLayer extracts the layer tar read from r (gzip, zstd or plain, told apart by their
// magic bytes) into dest, an empty directory, converting whiteouts for overlayfs: ".wh.x"
// becomes the character device 0:0 named x and ".wh..wh..opq" the xattr
// trusted.overlay.opaque=y on its directory. It reads r to its end and returns the digest of
// the uncompressed stream (the layer's diff id).
//
// Containment is moby/go-archive's: every entry is created through an os.Root opened at dest
// (each path component resolved by openat without following symlinks out of the root), names
// with ".." that leave dest are refused, and
// absolute symlinks met on the way to an entry resolve inside dest, chroot-like, so nothing a
// layer holds can write outside dest. Hard links to absolute paths resolve inside dest too.
func unpackLayer(ctx context.Context, r io.Reader, dest string) (diffID string, err error) {
	br := bufio.NewReaderSize(ctxReader{ctx: ctx, r: r}, 256<<10)
	magic, _ := br.Peek(4)
	var tarStream io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return "", fmt.Errorf("gzip: %w", err)
		}
		defer gz.Close()
		tarStream = gz
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false))
		if err != nil {
			return "", fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		tarStream = zr
	default:
		tarStream = br
	}
	h := sha256.New()
	hr := &hashReader{r: tarStream, h: h}
	opts := &archive.TarOptions{
		WhiteoutFormat:   archive.OverlayWhiteoutFormat,
		BestEffortXattrs: true,
	}
	if err := archive.Unpack(hr, dest, opts); err != nil {
		return "", fmt.Errorf("unpack: %w", err)
	}
	// The tar's end-of-archive blocks and any padding count towards the diff id, and the
	// compressed stream must be read to its end for its own digest to be checked.
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return "", fmt.Errorf("read layer tail: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return "", fmt.Errorf("read layer tail: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
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

// ctxReader stops reading once ctx is done, so a cancelled pull stops unpacking even while
// data is still buffered.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
