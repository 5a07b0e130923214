package container

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

// readTar returns the names (and the contents of regular files) of a tar stream.
func readTar(t *testing.T, r io.Reader) (names []string, files map[string][]byte) {
	t.Helper()
	files = map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, files
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

// TestCheckpointArchive: the archive holds CRIU's images under checkpoint/, its log, the
// spec, config.dump, the writable layer's files in rootfs-diff.tar without the overlay's
// whiteouts, which are listed in deleted.files; a failed write leaves nothing at the
// location.
func TestCheckpointArchive(t *testing.T) {
	testutil.RequireRoot(t) // mknod of the overlay whiteout
	dir := t.TempDir()
	mk := func(p, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	images, upper := filepath.Join(dir, "images"), filepath.Join(dir, "upper")
	mk(filepath.Join(images, "core-1.img"), "core")
	mk(filepath.Join(images, "descriptors.json"), "[]")
	mk(filepath.Join(dir, "dump.log"), "dumped")
	mk(filepath.Join(dir, "config.json"), `{"ociVersion":"1.2.0"}`)
	mk(filepath.Join(upper, "etc", "new"), "added")
	if err := os.Symlink("/etc/new", filepath.Join(upper, "etc", "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(upper, "etc", "motd"), unix.S_IFCHR|0o000, 0); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "checkpoint.tar")
	parts := checkpointParts{
		images: images, dumpLog: filepath.Join(dir, "dump.log"), spec: filepath.Join(dir, "config.json"),
		upper: upper, tmp: dir, config: CheckpointConfig{ID: "abc", Name: "c", Runtime: "peapod"},
	}
	if err := writeCheckpointArchive(out, parts); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, files := readTar(t, f)
	for _, want := range []string{"checkpoint/", "checkpoint/core-1.img", "checkpoint/descriptors.json", "dump.log", "spec.dump", "config.dump", "rootfs-diff.tar", "deleted.files"} {
		if !slices.Contains(names, want) {
			t.Errorf("archive lacks %s: %v", want, names)
		}
	}
	if string(files["checkpoint/core-1.img"]) != "core" || string(files["spec.dump"]) != `{"ociVersion":"1.2.0"}` {
		t.Errorf("archive contents: %q", files)
	}
	var cfg CheckpointConfig
	if err := json.Unmarshal(files["config.dump"], &cfg); err != nil || cfg.ID != "abc" {
		t.Errorf("config.dump %s: %v", files["config.dump"], err)
	}
	var deleted []string
	if err := json.Unmarshal(files["deleted.files"], &deleted); err != nil || !slices.Equal(deleted, []string{"/etc/motd"}) {
		t.Errorf("deleted.files %s (%v), want [/etc/motd]", files["deleted.files"], err)
	}
	diffNames, diffFiles := readTar(t, bytes.NewReader(files["rootfs-diff.tar"]))
	slices.Sort(diffNames)
	if !slices.Equal(diffNames, []string{"etc/", "etc/link", "etc/new"}) || string(diffFiles["etc/new"]) != "added" {
		t.Errorf("rootfs-diff.tar holds %v (%q), want etc/, etc/link, etc/new and no whiteout", diffNames, diffFiles)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "rootfs-diff-*")); len(left) != 0 {
		t.Errorf("staged rootfs diff left: %v", left)
	}

	// A part that is missing fails the archive, and nothing is left at the location.
	failed := filepath.Join(dir, "out", "failed.tar")
	parts.spec = filepath.Join(dir, "no-spec")
	if err := writeCheckpointArchive(failed, parts); err == nil {
		t.Fatal("archive without a spec written")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "out"))
	if len(entries) != 1 {
		t.Errorf("after a failed write the directory holds %v, want only the first archive", entries)
	}
}
