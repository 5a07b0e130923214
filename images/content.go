package images

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// contentStore is the on-disk layout under Root/images (see the package comment).
type contentStore struct{ root string }

func (c contentStore) blobsDir() string  { return filepath.Join(c.root, "blobs", "sha256") }
func (c contentStore) layersDir() string { return filepath.Join(c.root, "layers") }
func (c contentStore) ingestDir() string { return filepath.Join(c.root, "ingest") }
func (c contentStore) tmpDir() string    { return filepath.Join(c.root, "tmp") }

// blobPath is where the blob with digest "sha256:<hex>" lives.
func (c contentStore) blobPath(digest string) string {
	return filepath.Join(c.blobsDir(), strings.TrimPrefix(digest, "sha256:"))
}

// layerPath is the unpacked layer with chain id "sha256:<hex>".
func (c contentStore) layerPath(chainID string) string {
	return filepath.Join(c.layersDir(), strings.TrimPrefix(chainID, "sha256:"))
}

// init creates the layout and empties ingest/ and tmp/: whatever is there was left by a
// process that died mid-pull or mid-delete.
func (c contentStore) init() error {
	for _, d := range []string{c.blobsDir(), c.layersDir(), c.ingestDir(), c.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create image store dir: %w", err)
		}
	}
	for _, d := range []string{c.ingestDir(), c.tmpDir()} {
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("read %s: %w", d, err)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(d, e.Name())); err != nil {
				return fmt.Errorf("remove partial content: %w", err)
			}
		}
	}
	return c.restrict()
}

// restrict makes every directory of the store root-only (0700), as containerd's are: an
// unpacked layer holds the image's setuid binaries and device nodes with their own modes,
// which a user who could reach them would run or open on the host. Containers see layers
// only through their overlay mounts, whose lower directories the kernel reaches with the
// mounter's credentials. Stores made by earlier versions (0711 parents, 0755 layers) are
// fixed here, at every open.
func (c contentStore) restrict() error {
	dirs := []string{c.root, filepath.Join(c.root, "blobs"), c.blobsDir(), c.layersDir(), c.ingestDir(), c.tmpDir()}
	layers, err := os.ReadDir(c.layersDir())
	if err != nil {
		return fmt.Errorf("read %s: %w", c.layersDir(), err)
	}
	for _, e := range layers {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(c.layersDir(), e.Name()))
		}
	}
	for _, d := range dirs {
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("restrict %s to root: %w", d, err)
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// writeBlob stores data as the blob with digest, after checking that it is that blob.
func (c contentStore) writeBlob(digest string, data []byte) error {
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("blob %s: got %s: %w", digest, got, ErrDigestMismatch)
	}
	dst := c.blobPath(digest)
	if exists(dst) {
		return nil
	}
	f, err := os.CreateTemp(c.ingestDir(), "blob-")
	if err != nil {
		return fmt.Errorf("store blob %s: %w", digest, err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("store blob %s: %w", digest, err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("store blob %s: %w", digest, err)
	}
	return nil
}

// readBlob returns a stored blob's bytes.
func (c contentStore) readBlob(digest string) ([]byte, error) {
	b, err := os.ReadFile(c.blobPath(digest))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s not in the content store: %w", digest, err)
		}
		return nil, fmt.Errorf("read blob %s: %w", digest, err)
	}
	return b, nil
}

// moveAside renames p into tmp/ so that it vanishes from the store at once; the caller
// deletes the returned path later (New deletes whatever a crash left there).
func (c contentStore) moveAside(p string) (string, error) {
	dst, err := os.MkdirTemp(c.tmpDir(), "gc-")
	if err != nil {
		return "", fmt.Errorf("move aside %s: %w", p, err)
	}
	if err := os.Rename(p, filepath.Join(dst, "x")); err != nil {
		_ = os.Remove(dst)
		return "", fmt.Errorf("move aside %s: %w", p, err)
	}
	return dst, nil
}

// usage counts the allocated bytes and inodes under dir, hard links once.
func usage(dir string) (bytes, inodes uint64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		ino, blocks, nlink := statOf(fi)
		if nlink > 1 && !fi.IsDir() {
			if seen[ino] {
				return nil
			}
			seen[ino] = true
		}
		inodes++
		bytes += blocks * 512
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("measure %s: %w", dir, err)
	}
	return bytes, inodes, nil
}
