package testutil

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// TarFile is one entry of a synthetic layer: a regular file (Data), a directory (Dir) or a
// hard link to Link. Mode 0 means 0644 (0755 for a directory).
type TarFile struct {
	Name string
	Data []byte
	Dir  bool
	Link string
	Mode int64
}

// GzipLayer is files as a gzip-compressed tar, the same bytes every time (fixed mtimes).
func GzipLayer(files []TarFile) ([]byte, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	mtime := time.Unix(1700000000, 0)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(f.Data))}
		switch {
		case f.Dir:
			h.Typeflag, h.Size = tar.TypeDir, 0
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, f.Link, 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if f.Dir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return gz.Bytes(), nil
}

// LargeLayers are n gzip layers of about total/n bytes each, the same every time: 1 MiB files
// of random (incompressible) data, a few small files and a directory. Pull benchmarks use them.
func LargeLayers(total int64, n int) ([][]byte, error) {
	rng := rand.NewChaCha8([32]byte{1})
	per := total / int64(n)
	var out [][]byte
	for i := range n {
		files := []TarFile{{Name: fmt.Sprintf("layer%d/", i), Dir: true}}
		for size := int64(0); size < per; {
			chunk := min(int64(1<<20), per-size)
			data := make([]byte, chunk)
			_, _ = rng.Read(data)
			files = append(files, TarFile{Name: fmt.Sprintf("layer%d/blob%04d", i, len(files)), Data: data})
			size += chunk
		}
		for j := range 50 {
			files = append(files, TarFile{Name: fmt.Sprintf("layer%d/small%02d.conf", i, j), Data: []byte(strings.Repeat("key=value\n", j+1))})
		}
		l, err := GzipLayer(files)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// BusyboxLikeLayer looks like a busybox image's one layer: a ~1.5 MB binary with 400 hard
// links to it in /bin, and a few files in /etc.
func BusyboxLikeLayer() ([]byte, error) {
	rng := rand.NewChaCha8([32]byte{2})
	bin := make([]byte, 1500<<10)
	_, _ = rng.Read(bin)
	files := []TarFile{{Name: "bin/", Dir: true}, {Name: "bin/busybox", Data: bin, Mode: 0o755}}
	for i := range 400 {
		files = append(files, TarFile{Name: fmt.Sprintf("bin/applet%03d", i), Link: "bin/busybox", Mode: 0o755})
	}
	files = append(files, TarFile{Name: "etc/", Dir: true},
		TarFile{Name: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\n")},
		TarFile{Name: "etc/group", Data: []byte("root:x:0:\n")},
		TarFile{Name: "tmp/", Dir: true, Mode: 0o1777})
	return GzipLayer(files)
}

// RawPull is what a pull costs without a runtime: the blobs downloaded one by one with
// plain GETs into dir, then each layer extracted with tar into a directory of its own.
type RawPull struct {
	Download, Extract time.Duration
}

// MeasureRawPull GETs baseURL + "/" + each of blobs into dir, then extracts each of layers
// (a subset of blobs, gzip tars) with tar -xzf; it leaves what it wrote in dir.
func MeasureRawPull(ctx context.Context, baseURL string, blobs, layers []string, dir string) (RawPull, error) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		return RawPull{}, fmt.Errorf("raw baseline needs tar: %w", err)
	}
	var r RawPull
	start := time.Now()
	for _, d := range blobs {
		if err := download(ctx, baseURL+"/"+d, filepath.Join(dir, d)); err != nil {
			return RawPull{}, err
		}
	}
	r.Download = time.Since(start)
	start = time.Now()
	for i, d := range layers {
		dst := filepath.Join(dir, fmt.Sprintf("layer%d", i))
		if err := os.Mkdir(dst, 0o755); err != nil {
			return RawPull{}, err
		}
		cmd := exec.CommandContext(ctx, tarBin, "-xzf", filepath.Join(dir, d), "-C", dst)
		if out, err := cmd.CombinedOutput(); err != nil {
			return RawPull{}, fmt.Errorf("tar: %w: %s", err, out)
		}
	}
	r.Extract = time.Since(start)
	return r, nil
}

func download(ctx context.Context, url, dst string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}
