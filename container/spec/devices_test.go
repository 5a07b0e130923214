package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

func mknod(t *testing.T, path string, mode uint32, major, minor uint32) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(path, mode, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(path, mode&0o7777); err != nil { // past the umask
		t.Fatal(err)
	}
}

// fakeDev builds a /dev-like tree: nodes that count, and everything runc's walk skips.
func fakeDev(t *testing.T) string {
	t.Helper()
	dev := t.TempDir()
	mknod(t, filepath.Join(dev, "null"), unix.S_IFCHR|0o666, 1, 3)
	mknod(t, filepath.Join(dev, "loop0"), unix.S_IFBLK|0o660, 7, 0)
	mknod(t, filepath.Join(dev, "net/tun"), unix.S_IFCHR|0o666, 10, 200)
	mknod(t, filepath.Join(dev, "console"), unix.S_IFCHR|0o600, 5, 1)
	mknod(t, filepath.Join(dev, "pts/0"), unix.S_IFCHR|0o620, 136, 0)
	mknod(t, filepath.Join(dev, ".udev/x"), unix.S_IFCHR|0o600, 1, 3)
	mknod(t, filepath.Join(dev, "shm/x"), unix.S_IFCHR|0o600, 1, 3)
	mknod(t, filepath.Join(dev, "initctl"), unix.S_IFIFO|0o600, 0, 0)
	writeFile(t, filepath.Join(dev, "mqueue/q"), "")
	writeFile(t, filepath.Join(dev, "regular"), "")
	if err := os.Symlink("null", filepath.Join(dev, "link")); err != nil {
		t.Fatal(err)
	}
	return dev
}

func TestHostDevices(t *testing.T) {
	testutil.RequireRoot(t) // mknod
	dev := fakeDev(t)
	got, err := HostDevices(dev)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, d := range got {
		paths = append(paths, d.Path)
	}
	want := []string{filepath.Join(dev, "loop0"), filepath.Join(dev, "net/tun"), filepath.Join(dev, "null")}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths %v\nwant %v", paths, want)
	}
	loop := got[0]
	if loop.Type != "b" || loop.Major != 7 || loop.Minor != 0 || *loop.FileMode != 0o660 || *loop.UID != 0 {
		t.Fatalf("loop0 = %+v", loop)
	}
}

func TestResolveDevices(t *testing.T) {
	testutil.RequireRoot(t)
	dev := fakeDev(t)
	if err := os.Symlink(filepath.Join(dev, "net/tun"), filepath.Join(dev, "tun-link")); err != nil {
		t.Fatal(err)
	}
	devs, rules, err := ResolveDevices([]Device{
		{ContainerPath: "/dev/net/tun", HostPath: filepath.Join(dev, "tun-link"), Permissions: "rw"},
		{ContainerPath: "/dev/mydir", HostPath: filepath.Join(dev, "net")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].Path != "/dev/net/tun" || devs[0].Major != 10 || devs[1].Path != "/dev/mydir/tun" {
		t.Fatalf("devices %+v", devs)
	}
	if rules[0].Access != "rw" || rules[1].Access != "rwm" || !rules[0].Allow || *rules[0].Major != 10 || *rules[0].Minor != 200 {
		t.Fatalf("rules %+v", rules)
	}
}

func TestResolveDevicesErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "regular"), "")
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	ownFd := fmt.Sprintf("/proc/self/fd/%d", null.Fd())
	for _, tc := range []struct {
		name string
		dev  Device
		want error
	}{
		{"missing", Device{ContainerPath: "/dev/x", HostPath: filepath.Join(dir, "nope")}, errdefs.ErrNotFound},
		{"not a device", Device{ContainerPath: "/dev/x", HostPath: filepath.Join(dir, "regular")}, errdefs.ErrInvalidArgument},
		{"bad permissions", Device{ContainerPath: "/dev/x", HostPath: "/dev/null", Permissions: "rwx"}, errdefs.ErrInvalidArgument},
		{"relative container path", Device{ContainerPath: "dev/x", HostPath: "/dev/null"}, errdefs.ErrInvalidArgument},
		{"the runtime's own fd", Device{ContainerPath: "/dev/x", HostPath: ownFd}, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := ResolveDevices([]Device{tc.dev}); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDeviceFromPathRealNull(t *testing.T) {
	d, err := DeviceFromPath("/dev/null", "/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != "c" || d.Major != 1 || d.Minor != 3 {
		t.Fatalf("/dev/null = %+v", d)
	}
}
