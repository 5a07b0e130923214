package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

// TestResolveHostPathRefusesOwnProc: host paths that lead into the runtime's own /proc
// entries are refused however they get there; other symlinks resolve as EvalSymlinks would.
func TestResolveHostPathRefusesOwnProc(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := strconv.Itoa(int(f.Fd()))
	host := t.TempDir()
	data := filepath.Join(host, "data")
	mustMkdir(t, data)
	mustSymlink(t, data, filepath.Join(host, "abs"))
	mustSymlink(t, "data", filepath.Join(host, "rel"))
	mustSymlink(t, "/proc/self/fd/"+fd, filepath.Join(host, "to-self-fd"))
	mustSymlink(t, strings.Repeat("../", 20)+"proc/"+strconv.Itoa(os.Getpid()), filepath.Join(data, "climb-to-pid"))
	mustSymlink(t, "/dev/fd", filepath.Join(host, "to-dev-fd"))

	refused := []string{
		"/proc/self/fd/" + fd,
		"/proc/self",
		"/proc/self/",
		"/proc/./self/root",
		"/proc/thread-self/fd/" + fd,
		"/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + fd,
		"/proc/" + strconv.Itoa(os.Getpid()) + "/task/" + strconv.Itoa(unix.Gettid()) + "/fd/" + fd,
		"/proc/" + strconv.Itoa(unix.Gettid()) + "/fd/" + fd, // a thread id reaches the process too
		"/tmp/../proc/self/fd/" + fd,
		"/dev/fd/" + fd,
		"/dev/stdin",
		filepath.Join(host, "to-self-fd"),
		filepath.Join(host, "to-dev-fd", fd),
		filepath.Join(data, "climb-to-pid", "root"),
	}
	for _, p := range refused {
		t.Run(p, func(t *testing.T) {
			got, err := ResolveHostPath(p)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ResolveHostPath(%q) = %q, %v; want ErrInvalidArgument", p, got, err)
			}
			if _, err := ToOCI([]Mount{{ContainerPath: "/x", HostPath: p}}, MountOptions{Lookup: fakeLookup("")}); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ToOCI of host path %q: %v; want ErrInvalidArgument", p, err)
			}
		})
	}

	for p, want := range map[string]string{
		data:                                      data,
		filepath.Join(host, "abs"):                data,
		filepath.Join(host, "rel"):                data,
		filepath.Join(host, "rel/"):               data,
		filepath.Join(host, "rel") + "/../data/.": data,
		"/proc/1":                                 "/proc/1", // another process: the caller's business
		"/proc/sys/kernel":                        "/proc/sys/kernel",
	} {
		got, err := ResolveHostPath(p)
		if err != nil || got != want {
			t.Errorf("ResolveHostPath(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	if _, err := ResolveHostPath(filepath.Join(host, "missing", "x")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing path: %v; want ErrNotFound", err)
	}
	loop := filepath.Join(host, "loop")
	mustSymlink(t, loop, loop)
	if _, err := ResolveHostPath(loop); err == nil {
		t.Errorf("a symlink loop resolved")
	}
}

// TestResolveHostPathOtherProcMount: the daemon's own entries are refused in any procfs
// mount, not only at /proc.
func TestResolveHostPathOtherProcMount(t *testing.T) {
	testutil.RequireRoot(t)
	proc := filepath.Join(t.TempDir(), "proc")
	mustMkdir(t, proc)
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Fatalf("mount procfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(proc, unix.MNT_DETACH) })
	for _, p := range []string{
		filepath.Join(proc, "self", "fd", "0"),
		filepath.Join(proc, strconv.Itoa(os.Getpid()), "root"),
		filepath.Join(proc, "thread-self"),
	} {
		if got, err := ResolveHostPath(p); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ResolveHostPath(%q) = %q, %v; want ErrInvalidArgument", p, got, err)
		}
	}
	if got, err := ResolveHostPath(filepath.Join(proc, "1")); err != nil {
		t.Errorf("another process in another procfs mount: %q, %v", got, err)
	}
}
