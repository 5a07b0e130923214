package stats

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestParseLimit(t *testing.T) {
	limits := `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 4096                 files
Max locked memory         8388608              8388608              bytes
`
	for _, tc := range []struct {
		name string
		want uint64
		ok   bool
	}{
		{"Max open files", 1024, true},
		{"Max cpu time", 0, false}, // unlimited
		{"Max processes", 0, false},
	} {
		got, ok := parseLimit(limits, tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseLimit(%q) = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestReadProcessesFakeProc: descriptors are counted per process, sockets by their link
// target, a vanished process is skipped, and the limit comes from the init process.
func TestReadProcessesFakeProc(t *testing.T) {
	root := t.TempDir()
	mk := func(pid int, targets ...string) {
		dir := filepath.Join(root, strconv.Itoa(pid), "fd")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, target := range targets {
			if err := os.Symlink(target, filepath.Join(dir, strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk(10, "/dev/null", "socket:[123]", "pipe:[4]")
	mk(11, "socket:[7]", "/tmp/x")
	if err := os.WriteFile(filepath.Join(root, "10", "limits"), []byte("Max open files  512  4096  files\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := ReadProcesses(root, []int{10, 11, 12}, 10)
	if got.Count != 3 || got.FDs != 5 || got.Sockets != 2 || !got.HasMaxOpenFiles || got.MaxOpenFiles != 512 || got.At.IsZero() {
		t.Errorf("ReadProcesses = %+v; want 3 processes, 5 fds, 2 sockets, max open files 512", got)
	}
	if got := ReadProcesses(root, nil, 0); got.FDs != 0 || got.HasMaxOpenFiles {
		t.Errorf("no processes: %+v", got)
	}
}
