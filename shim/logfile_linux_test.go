package shim

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
)

// TestOpenLogFileStaysInLogDir: a log path is opened beneath the pod's log directory and
// never through a symlink: whatever a container or another user planted in the log
// directory, nothing outside it is created or appended to.
func TestOpenLogFileStaysInLogDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "pod-logs")
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("untouched\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, filepath.Join(root, "real")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"lnk":          outside,          // lnk/evil.log would be outside/evil.log
		"x.log":        victim,           // an existing log that points outside
		"real/rel.log": "../../victim",   // a relative climb
		"inner":        "real",           // a symlink that stays inside: refused too
		"dangling.log": outside + "/new", // O_CREAT through a dangling link
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo.log"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(victim, filepath.Join(root, "hard.log")); err != nil {
		t.Fatal(err)
	}

	for _, rel := range []string{
		"lnk/evil.log", "x.log", "real/rel.log", "inner/0.log", "dangling.log",
		"../escape.log", "real/../../escape.log", "/abs.log", "", ".", "fifo.log", "hard.log",
	} {
		f, err := OpenLogFile(root, rel)
		if err == nil {
			f.Close()
			t.Errorf("OpenLogFile(%q) succeeded", rel)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("OpenLogFile(%q): %v; want ErrInvalidArgument", rel, err)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched\n" {
		t.Errorf("the file outside was written: %q", b)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("files were created outside the log directory: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "escape.log")); err == nil {
		t.Errorf("escape.log was created beside the log directory")
	}

	// What the kubelet sends works: nested new directories, and a file that exists.
	for _, rel := range []string{"ctr/0.log", "ctr/0.log", "a/b/c/1.log", "real/./2.log"} {
		f, err := OpenLogFile(root, rel)
		if err != nil {
			t.Errorf("OpenLogFile(%q): %v", rel, err)
			continue
		}
		if want := filepath.Join(root, filepath.Clean(rel)); f.Name() != want {
			t.Errorf("OpenLogFile(%q) named %s, want %s", rel, f.Name(), want)
		}
		if _, err := f.WriteString("x\n"); err != nil {
			t.Errorf("write %s: %v", rel, err)
		}
		f.Close()
	}
	if b, _ := os.ReadFile(filepath.Join(root, "ctr/0.log")); string(b) != "x\nx\n" {
		t.Errorf("ctr/0.log: %q, want two appended lines", b)
	}
}
