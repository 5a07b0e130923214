package stats

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestReadProcessesSelf reads this test's own process in the real /proc, with a socket open.
func TestReadProcessesSelf(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := ReadProcesses("/proc", []int{os.Getpid()}, os.Getpid())
	if got.FDs < 4 || got.Sockets < 1 || !got.HasMaxOpenFiles || got.MaxOpenFiles == 0 {
		t.Errorf("ReadProcesses(self) = %+v; want stdio, a socket and a limit", got)
	}
}

func TestDeviceNames(t *testing.T) {
	dir := t.TempDir()
	sys := filepath.Join(dir, "block")
	if err := os.MkdirAll(filepath.Join(sys, "254:0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "254:0", "uevent"), []byte("MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := filepath.Join(dir, "mountinfo")
	if err := os.WriteFile(mounts, []byte(
		"22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"+
			"36 22 0:33 / /run rw,nosuid shared:5 - tmpfs tmpfs rw,size=10m\n"+
			"40 22 0:45 / /var/lib/x/merged rw - overlay overlay rw,lowerdir=/a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := newDeviceNames()
	n.sysDev, n.mounts = sys, mounts
	for _, tc := range []struct {
		major, minor uint64
		want         string
	}{
		{254, 0, "/dev/vda"},
		{0, 33, "tmpfs"},
		{0, 45, "overlay"},
		{0, 99, "0:99"},
	} {
		if got := n.name(tc.major, tc.minor); got != tc.want {
			t.Errorf("name(%d:%d) = %q, want %q", tc.major, tc.minor, got, tc.want)
		}
	}
	// Cached: a changed mount table does not rename a device.
	if err := os.WriteFile(mounts, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := n.name(0, 33); got != "tmpfs" {
		t.Errorf("cached name = %q", got)
	}
}
