package netns_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/netns"
)

func oneRange(c, h, n uint32) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: c, HostID: h, Size: n}}
}

// TestNewPinnedInUserNamespace: the user namespace carries the mapping, the pod's other
// namespaces are owned by it (not by the node's), the hostname is set and lo is up, and
// RemoveAll leaves no pin and no mount.
func TestNewPinnedInUserNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	nsenter := testutil.RequireBinary(t, "nsenter")
	dir := filepath.Join(t.TempDir(), "ns")
	m := netns.IDMapping{UIDs: oneRange(0, 200000, 65536), GIDs: oneRange(0, 300000, 65536)}
	pins, err := netns.NewPinnedInUserNamespace(context.Background(), dir, "userns-pod", m, netns.Net, netns.IPC, netns.UTS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.RemoveAll(dir) })

	for k, want := range map[string]string{"uid_map": "0 200000 65536", "gid_map": "0 300000 65536"} {
		out, err := exec.Command(nsenter, "--user="+pins[netns.User], "cat", "/proc/self/"+k).CombinedOutput()
		if err != nil {
			t.Fatalf("nsenter: %v: %s", err, out)
		}
		if got := strings.Join(strings.Fields(string(out)), " "); got != want {
			t.Errorf("%s inside = %q, want %q", k, got, want)
		}
	}
	userIno := inode(t, pins[netns.User])
	for _, k := range []netns.Kind{netns.Net, netns.IPC, netns.UTS} {
		fd, err := unix.Open(pins[k], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		owner, err := unix.IoctlRetInt(fd, unix.NS_GET_USERNS)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("NS_GET_USERNS %s: %v", k, err)
		}
		var st unix.Stat_t
		_ = unix.Fstat(owner, &st)
		unix.Close(owner)
		if st.Ino != userIno {
			t.Errorf("%s namespace is owned by user namespace %d, want the pod's %d", k, st.Ino, userIno)
		}
	}
	if inode(t, pins[netns.User]) == inode(t, "/proc/self/ns/user") {
		t.Error("the pod's user namespace is the node's")
	}
	var hostname string
	if err := netns.Do(pins[netns.UTS], func() error {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return err
		}
		hostname = unix.ByteSliceToString(u.Nodename[:])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if hostname != "userns-pod" {
		t.Errorf("hostname = %q", hostname)
	}
	if err := netns.Do(pins[netns.Net], func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		if lo.Flags&net.FlagUp == 0 {
			t.Errorf("lo is down in the pod's network namespace")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := netns.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if left := mountsUnder(t, dir); len(left) > 0 {
		t.Errorf("mounts left: %v", left)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir left: %v", err)
	}
}

// TestNewPinnedInUserNamespaceRefuses: mappings the CRI forbids are InvalidArgument and leave
// nothing behind.
func TestNewPinnedInUserNamespaceRefuses(t *testing.T) {
	testutil.RequireRoot(t)
	for name, m := range map[string]netns.IDMapping{
		"two uid ranges": {UIDs: append(oneRange(0, 1000, 10), oneRange(10, 5000, 10)...), GIDs: oneRange(0, 1000, 10)},
		"no gid range":   {UIDs: oneRange(0, 1000, 10)},
		"root unmapped":  {UIDs: oneRange(1, 1000, 10), GIDs: oneRange(0, 1000, 10)},
		"empty range":    {UIDs: oneRange(0, 1000, 0), GIDs: oneRange(0, 1000, 10)},
		"past 32 bits":   {UIDs: oneRange(0, 0xffffff00, 0x1000), GIDs: oneRange(0, 1000, 10)},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ns")
			_, err := netns.NewPinnedInUserNamespace(context.Background(), dir, "", m, netns.Net)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dir created: %v", err)
			}
		})
	}
}

// BenchmarkNewPinnedInUserNamespace: a pod's namespaces inside a user namespace of its own,
// pinned and removed (compare BenchmarkNewPinnedRemove).
func BenchmarkNewPinnedInUserNamespace(b *testing.B) {
	testutil.RequireRoot(b)
	m := netns.IDMapping{UIDs: oneRange(0, 200000, 65536), GIDs: oneRange(0, 200000, 65536)}
	for i := range b.N {
		dir := filepath.Join(b.TempDir(), strconv.Itoa(i))
		if _, err := netns.NewPinnedInUserNamespace(context.Background(), dir, "bench", m, netns.PodKinds()...); err != nil {
			b.Fatal(err)
		}
		if err := netns.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
	}
}
