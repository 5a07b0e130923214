package netns_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/netns"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// mountsUnder lists the mount points at or below dir in this mount namespace.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// strayThreads lists this process's threads whose net, ipc or uts namespace is not the one of
// the main thread: a namespace switch that leaked into the Go scheduler's thread pool. Threads
// that unshared exit a moment after their goroutine, so it retries for a while.
func strayThreads(t *testing.T) []string {
	t.Helper()
	var stray []string
	for range 100 {
		stray = stray[:0]
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			for _, k := range netns.PodKinds() {
				want, err1 := os.Readlink("/proc/self/ns/" + string(k))
				got, err2 := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns", string(k)))
				if err1 != nil || err2 != nil {
					continue // the thread just exited
				}
				if got != want {
					stray = append(stray, fmt.Sprintf("tid %s in %s", task.Name(), got))
				}
			}
		}
		if len(stray) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return stray
}

func pin(t *testing.T, hostname string, kinds ...netns.Kind) (string, map[netns.Kind]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ns")
	paths, err := netns.NewPinned(t.Context(), dir, hostname, kinds...)
	if err != nil {
		t.Fatalf("NewPinned: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.RemoveAll(dir); err != nil {
			t.Errorf("RemoveAll: %v", err)
		}
		if m := mountsUnder(t, dir); len(m) > 0 {
			t.Errorf("mounts left under %s: %v", dir, m)
		}
	})
	return dir, paths
}

func TestNewPinned(t *testing.T) {
	testutil.RequireRoot(t)
	dir, paths := pin(t, "pod-host-1", netns.PodKinds()...)

	for _, k := range netns.PodKinds() {
		p := paths[k]
		if p != filepath.Join(dir, string(k)) {
			t.Errorf("path of %s = %q", k, p)
		}
		if inode(t, p) == inode(t, "/proc/self/ns/"+string(k)) {
			t.Errorf("%s pin %s is the host's namespace", k, p)
		}
		if ok, err := netns.IsPinned(p); err != nil || !ok {
			t.Errorf("IsPinned(%s) = %v, %v; want an nsfs mount", p, ok, err)
		}
	}
	if m := mountsUnder(t, dir); len(m) != 3 {
		t.Errorf("mounts under %s: %v, want 3", dir, m)
	}
	loaded, err := netns.Load(dir)
	if err != nil || len(loaded) != 3 || loaded[netns.Net] != paths[netns.Net] {
		t.Errorf("Load = %v, %v", loaded, err)
	}

	var uts unix.Utsname
	err = netns.Do(paths[netns.UTS], func() error { return unix.Uname(&uts) })
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if got := unix.ByteSliceToString(uts.Nodename[:]); got != "pod-host-1" {
		t.Errorf("hostname inside = %q, want pod-host-1", got)
	}
	host, _ := os.Hostname()
	if host == "pod-host-1" {
		t.Errorf("host's hostname changed")
	}

	// Only lo, and it is down, in a fresh network namespace.
	var ifaces []net.Interface
	err = netns.Do(paths[netns.Net], func() error {
		var err error
		ifaces, err = net.Interfaces()
		return err
	})
	if err != nil || len(ifaces) != 1 || ifaces[0].Name != "lo" {
		t.Errorf("interfaces inside = %v, %v; want only lo", ifaces, err)
	}
	if s := strayThreads(t); len(s) > 0 {
		t.Errorf("threads left in other namespaces: %v", s)
	}

	for i := range 2 {
		if err := netns.Remove(paths[netns.Net]); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(paths[netns.Net]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin file still there: %v", err)
	}
	for i := range 2 {
		if err := netns.RemoveAll(dir); err != nil {
			t.Fatalf("RemoveAll #%d: %v", i+1, err)
		}
	}
	if m := mountsUnder(t, dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir still there: %v", err)
	}
}

func TestNewPinnedErrors(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := t.Context()

	t.Run("existing pin undoes everything", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ns")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "uts"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := netns.NewPinned(ctx, dir, "", netns.Net, netns.IPC, netns.UTS)
		if !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Fatalf("NewPinned = %v, want ErrAlreadyExists", err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || entries[0].Name() != "uts" {
			t.Errorf("left in dir: %v", entries)
		}
		if m := mountsUnder(t, dir); len(m) > 0 {
			t.Errorf("mounts left: %v", m)
		}
	})
	t.Run("unusable dir", func(t *testing.T) {
		// A path below a regular file cannot become a directory.
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := netns.NewPinned(ctx, filepath.Join(file, "ns"), "", netns.Net); err == nil {
			t.Fatal("NewPinned under a file succeeded")
		}
	})
	for _, tc := range []struct {
		name     string
		hostname string
		kinds    []netns.Kind
	}{
		{name: "no kinds"},
		{name: "hostname without uts", hostname: "x", kinds: []netns.Kind{netns.Net}},
		{name: "unknown kind", kinds: []netns.Kind{"pid"}},
		{name: "twice", kinds: []netns.Kind{netns.Net, netns.Net}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ns")
			_, err := netns.NewPinned(ctx, dir, tc.hostname, tc.kinds...)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("NewPinned = %v, want ErrInvalidArgument", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dir created: %v", err)
			}
		})
	}
}

func TestDo(t *testing.T) {
	testutil.RequireRoot(t)
	_, paths := pin(t, "", netns.Net, netns.IPC)

	var inside [2]string
	err := netns.DoAll(paths, func() error {
		var err error
		inside[0], err = os.Readlink("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		inside[1], err = os.Readlink("/proc/thread-self/ns/ipc")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []netns.Kind{netns.Net, netns.IPC} {
		if want := fmt.Sprintf("%s:[%d]", k, inode(t, paths[k])); inside[i] != want {
			t.Errorf("inside %s = %s, want %s", k, inside[i], want)
		}
	}

	wantErr := errors.New("from fn")
	if err := netns.Do(paths[netns.Net], func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if err := netns.Do(filepath.Join(t.TempDir(), "missing"), func() error { return nil }); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Do on a missing path = %v, want ErrNotFound", err)
	}
	regular := filepath.Join(t.TempDir(), "regular")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := netns.Do(regular, func() error { return nil }); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Do on a regular file = %v, want ErrInvalidArgument", err)
	}
	if err := netns.DoAll(map[netns.Kind]string{netns.UTS: paths[netns.Net]}, func() error { return nil }); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("DoAll with the wrong kind = %v, want ErrInvalidArgument", err)
	}

	// Many switches in parallel leave every thread of the process where it was.
	errc := make(chan error, 50)
	for range 50 {
		go func() { errc <- netns.DoAll(paths, func() error { return nil }) }()
	}
	for range 50 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if s := strayThreads(t); len(s) > 0 {
		t.Errorf("threads left in other namespaces: %v", s)
	}
}

func readInt(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestSetSysctls(t *testing.T) {
	testutil.RequireRoot(t)
	_, paths := pin(t, "", netns.PodKinds()...)
	const portStart = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
	const rmidForced = "/proc/sys/kernel/shm_rmid_forced"
	hostPort, hostRmid := readInt(t, portStart), readInt(t, rmidForced)
	newPort, newRmid := "80", "1"
	if hostPort == newPort {
		newPort = "81"
	}
	if hostRmid == newRmid {
		newRmid = "0"
	}

	err := netns.SetSysctls(t.Context(), paths, map[string]string{
		"net.ipv4.ip_unprivileged_port_start": newPort,
		"kernel/shm_rmid_forced":              newRmid,
	})
	if err != nil {
		t.Fatalf("SetSysctls: %v", err)
	}
	if got := readInt(t, portStart); got != hostPort {
		t.Errorf("host %s changed to %s", portStart, got)
	}
	if got := readInt(t, rmidForced); got != hostRmid {
		t.Errorf("host %s changed to %s", rmidForced, got)
	}
	var gotPort, gotRmid string
	if err := netns.Do(paths[netns.Net], func() error { gotPort = readInt(t, portStart); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := netns.Do(paths[netns.IPC], func() error { gotRmid = readInt(t, rmidForced); return nil }); err != nil {
		t.Fatal(err)
	}
	if gotPort != newPort || gotRmid != newRmid {
		t.Errorf("inside: port start %s, shm_rmid_forced %s; want %s, %s", gotPort, gotRmid, newPort, newRmid)
	}

	for _, tc := range []struct {
		name    string
		paths   map[netns.Kind]string
		sysctls map[string]string
	}{
		{"not namespaced", paths, map[string]string{"kernel.panic": "1"}},
		{"net sysctl without netns", map[netns.Kind]string{netns.IPC: paths[netns.IPC]}, map[string]string{"net.ipv4.ip_forward": "1"}},
		{"ipc sysctl without ipc ns", map[netns.Kind]string{netns.Net: paths[netns.Net]}, map[string]string{"kernel.shmmni": "10"}},
		{"unknown to the kernel", paths, map[string]string{"net.ipv4.no_such_thing": "1"}},
		{"bad value", paths, map[string]string{"net.ipv4.ip_unprivileged_port_start": "many"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := netns.SetSysctls(context.Background(), tc.paths, tc.sysctls)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("SetSysctls = %v, want ErrInvalidArgument", err)
			}
		})
	}
	if s := strayThreads(t); len(s) > 0 {
		t.Errorf("threads left in other namespaces: %v", s)
	}
}

func BenchmarkNewPinnedRemove(b *testing.B) {
	testutil.RequireRoot(b)
	root := b.TempDir()
	for i := range b.N {
		dir := filepath.Join(root, fmt.Sprint(i))
		if _, err := netns.NewPinned(b.Context(), dir, "bench", netns.PodKinds()...); err != nil {
			b.Fatal(err)
		}
		if err := netns.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
	}
}
