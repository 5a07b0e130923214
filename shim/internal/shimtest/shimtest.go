// Package shimtest builds what the shim's kernel tests need without the image or sandbox
// packages: a busybox rootfs, minimal OCI specs, a throwaway cgroup parent, and the
// peapod-shim binary. Imported from _test.go files only.
package shimtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BuildShim builds cmd/peapod-shim (pure Go) and, beside it, cmd/peapod-shim-runc (with
// seccomp) into dir and returns the shim's path.
func BuildShim(dir string) (string, error) {
	bin := filepath.Join(dir, "peapod-shim")
	for _, b := range []struct {
		out  string
		args []string
	}{
		{bin, []string{"build", "-ldflags", "-s -w", "-o", bin, "github.com/peapod-runtime/peapod/cmd/peapod-shim"}},
		{filepath.Join(dir, "peapod-shim-runc"), []string{"build", "-tags", "seccomp", "-ldflags", "-s -w", "-o", filepath.Join(dir, "peapod-shim-runc"),
			"github.com/peapod-runtime/peapod/cmd/peapod-shim-runc"}},
	} {
		cmd := exec.Command("go", b.args...)
		if b.out == bin {
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build: pure Go
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", filepath.Base(b.out), err, out.String())
		}
	}
	return bin, nil
}

// BuildRootfs makes a busybox rootfs in dir from Debian's dynamic busybox: the binary, the
// libraries ldd lists, every applet as a hard link in /bin, and empty /proc /sys /dev /tmp.
func BuildRootfs(dir string) error {
	const bb = "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		return fmt.Errorf("SKIP-REASON: %s missing (apt-get install busybox): %w", bb, err)
	}
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := copyFile(bb, filepath.Join(dir, "bin/busybox")); err != nil {
		return err
	}
	out, err := exec.Command("ldd", bb).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", bb, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				if err := copyFile(f, filepath.Join(dir, f)); err != nil {
					return err
				}
			}
		}
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, name := range strings.Fields(string(list)) {
		if name == "busybox" {
			continue
		}
		if err := os.Link(filepath.Join(dir, "bin/busybox"), filepath.Join(dir, "bin", name)); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src) // follows symlinks: the rootfs gets the real file
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// RandomSuffix is 8 hex digits for kernel object names.
func RandomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CgroupParent returns a fresh cgroupfs parent path (/peapod-shimtest-<rand>) and removes it
// from every hierarchy in t.Cleanup.
func CgroupParent(t testing.TB) string {
	t.Helper()
	name := "peapod-shimtest-" + RandomSuffix()
	t.Cleanup(func() { RemoveCgroups(t, name) })
	return "/" + name
}

// RemoveCgroups removes /sys/fs/cgroup/*/<name> (and /sys/fs/cgroup/<name>) bottom-up.
func RemoveCgroups(t testing.TB, name string) {
	t.Helper()
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, r := range roots {
		top := filepath.Join(r, name)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range dirs {
			if err := os.Remove(d); err != nil {
				t.Errorf("remove cgroup %s: %v", d, err)
			}
		}
	}
}

// DefaultCaps is the usual container capability set.
func DefaultCaps() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// Spec is a minimal container spec running args in fresh mount, pid, ipc, uts and net
// namespaces under cgroupParent/id. Root.Path is left for the shim to fill in.
func Spec(cgroupParent, id string, args ...string) *specs.Spec {
	caps := DefaultCaps()
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: id,
		Root:     &specs.Root{},
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/bin", "HOME=/root"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroupParent + "/" + id,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace},
			},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
		},
	}
}
