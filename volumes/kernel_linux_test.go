package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

func TestMountPodShm(t *testing.T) {
	testutil.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "shm")
	t.Cleanup(func() { _ = Unmount(path) })

	const size = 8 << 20
	for range 2 { // the second call finds it mounted and does nothing
		if err := MountPodShm(path, size); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(path))
	if err != nil || len(infos) != 1 {
		t.Fatalf("mounts at %s: %v, %v", path, infos, err)
	}
	m := infos[0]
	if m.FSType != "tmpfs" {
		t.Fatalf("fstype %s", m.FSType)
	}
	for _, opt := range []string{"nosuid", "nodev", "noexec"} {
		if !strings.Contains(m.Options, opt) {
			t.Errorf("options %q lack %s", m.Options, opt)
		}
	}
	if !strings.Contains(m.VFSOptions, "size=8192k") {
		t.Errorf("super options %q", m.VFSOptions)
	}
	// mode=1777 is tmpfs's default, so mountinfo does not show it: check the directory.
	if fi, err := os.Stat(path); err != nil || fi.Mode() != os.ModeDir|os.ModeSticky|0o777 {
		t.Errorf("shm mode %v, %v", fi.Mode(), err)
	}

	for range 2 { // idempotent
		if err := UnmountPodShm(path); err != nil {
			t.Fatal(err)
		}
	}
	if mounted, _ := mountinfo.Mounted(path); mounted {
		t.Fatal("still mounted")
	}
	if err := UnmountPodShm(filepath.Join(t.TempDir(), "never-made")); err != nil {
		t.Fatalf("unmount of a missing path: %v", err)
	}
}

func TestMountPodShmDefaultSize(t *testing.T) {
	testutil.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "shm")
	t.Cleanup(func() { _ = Unmount(path) })
	if err := MountPodShm(path, 0); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	if got := int64(st.Blocks) * st.Bsize; got != DefaultShmSize {
		t.Fatalf("size %d, want %d", got, DefaultShmSize)
	}
}

// TestPropagationAgainstMountTable drives the checks with the real mount table: a private
// bind mount fails both checks, a shared one passes both, a slave one passes HostToContainer.
func TestPropagationAgainstMountTable(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "vol")
	mustMkdir(t, src)
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Unmount(dir) })

	check := func(p Propagation) error {
		_, err := ToOCI([]Mount{{ContainerPath: "/v", HostPath: src, Propagation: p}}, MountOptions{})
		return err
	}
	setProp := func(flag uintptr) {
		t.Helper()
		if err := unix.Mount("", dir, "", flag, ""); err != nil {
			t.Fatal(err)
		}
	}

	setProp(unix.MS_PRIVATE)
	for _, p := range []Propagation{PropagationHostToContainer, PropagationBidirectional} {
		if err := check(p); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("private, %v: err = %v", p, err)
		}
	}

	if err := MakeShared(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Propagation{PropagationPrivate, PropagationHostToContainer, PropagationBidirectional} {
		if err := check(p); err != nil {
			t.Fatalf("shared, %v: %v", p, err)
		}
	}

	// A mount becomes a slave only of a peer group with other members: give it a peer first.
	peer := t.TempDir()
	if err := unix.Mount(dir, peer, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Unmount(peer) })
	setProp(unix.MS_SLAVE)
	// The kernel's own table, read here rather than through LookupMount (under test): dir is
	// now a slave of the peer group.
	mnt, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mnt))
	if err != nil || len(ms) == 0 || !strings.Contains(ms[len(ms)-1].Optional, "master:") {
		t.Fatalf("mount(MS_SLAVE) did not make %s a slave: %+v, %v", dir, ms, err)
	}
	if info, err := LookupMount(src); err != nil || info.Mountpoint != mnt || info.Optional != ms[len(ms)-1].Optional {
		t.Fatalf("LookupMount(%s) = %+v, %v; want the slave mount at %s (%s)", src, info, err, mnt, ms[len(ms)-1].Optional)
	}
	if err := check(PropagationHostToContainer); err != nil {
		t.Fatalf("slave, host to container: %v", err)
	}
	if err := check(PropagationBidirectional); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("slave, bidirectional: err = %v", err)
	}
}

func TestMakeSharedOnPlainDir(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { _ = Unmount(dir) })
	for range 2 {
		if err := MakeShared(dir); err != nil {
			t.Fatal(err)
		}
	}
	info, err := LookupMount(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mountpoint != dir || !strings.Contains(info.Optional, "shared:") {
		t.Fatalf("mount %+v", info)
	}
}

func TestRecursiveReadOnlySupported(t *testing.T) {
	var u unix.Utsname
	_ = unix.Uname(&u)
	t.Logf("kernel %s: rro supported = %v", unix.ByteSliceToString(u.Release[:]), RecursiveReadOnlySupported())
	if !RecursiveReadOnlySupported() && strings.HasPrefix(unix.ByteSliceToString(u.Release[:]), "6.") {
		t.Fatal("a 6.x kernel has mount_setattr")
	}
}

// TestImageVolumeOwnership seeds a volume whose files belong to other users and carry
// setuid bits, a device node and an xattr, and checks that the copy keeps all of it.
func TestImageVolumeOwnership(t *testing.T) {
	testutil.RequireRoot(t)
	rootfs := t.TempDir()
	vol := filepath.Join(rootfs, "srv")
	mustWrite(t, filepath.Join(vol, "sub/data"), "d", 0o640)
	mustWrite(t, filepath.Join(vol, "suid"), "s", 0o755)
	mustSymlink(t, "sub/data", filepath.Join(vol, "ln"))
	for p, id := range map[string]int{"": 1500, "sub": 1501, "sub/data": 1502, "suid": 1503} {
		if err := os.Lchown(filepath.Join(vol, p), id, id+1000); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Lchown(filepath.Join(vol, "ln"), 1504, 2504); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(filepath.Join(vol, "suid"), 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(vol, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(filepath.Join(vol, "null"), 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	xattrOK := unix.Lsetxattr(filepath.Join(vol, "sub/data"), "user.peapod", []byte("v"), 0) == nil

	got, err := ImageVolumes(t.Context(), rootfs, []string{"/srv"}, filepath.Join(t.TempDir(), "volumes"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := got[0].Source
	for p, want := range map[string][3]uint32{ // uid, gid, mode
		"":         {1500, 2500, unix.S_IFDIR | 0o755},
		"sub":      {1501, 2501, unix.S_IFDIR | 0o755},
		"sub/data": {1502, 2502, unix.S_IFREG | 0o640},
		"suid":     {1503, 2503, unix.S_IFREG | 0o4755},
		"ln":       {1504, 2504, unix.S_IFLNK | 0o777},
		"null":     {0, 0, unix.S_IFCHR | 0o666},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dst, p), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != want[0] || st.Gid != want[1] || st.Mode != want[2] {
			t.Errorf("%q: uid %d gid %d mode %o, want %d %d %o", p, st.Uid, st.Gid, st.Mode, want[0], want[1], want[2])
		}
	}
	var st syscall.Stat_t
	_ = syscall.Stat(filepath.Join(dst, "null"), &st)
	if unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Errorf("device %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if xattrOK {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(dst, "sub/data"), "user.peapod", buf)
		if err != nil || string(buf[:n]) != "v" {
			t.Errorf("xattr = %q, %v", buf[:n], err)
		}
	} else {
		t.Log("filesystem under TempDir has no user xattrs; xattr copy not checked")
	}
}
