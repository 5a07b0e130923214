package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"go.uber.org/zap/zaptest"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
)

// TestLogWriterReopenRefusesSymlink: between rotations, the log's directory was swapped for
// a symlink out of the log directory; Reopen refuses it instead of following.
func TestLogWriterReopenRefusesSymlink(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	w, err := OpenLogWriter(root, "ctr/0.log", corelog.New(zaptest.NewLogger(t).Core()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.Rename(filepath.Join(root, "ctr"), filepath.Join(root, "ctr.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "ctr")); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Reopen through a symlinked directory: %v; want ErrInvalidArgument", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("Reopen created %v outside the log directory", entries)
	}
	// The writer keeps its old file rather than losing output.
	w.Copy(strings.NewReader("still here\n"), StreamStdout)
	if b, _ := os.ReadFile(filepath.Join(root, "ctr.old", "0.log")); !strings.Contains(string(b), "still here") {
		t.Errorf("old file after the refused reopen: %q", b)
	}
}
