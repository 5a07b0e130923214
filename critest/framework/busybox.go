package framework

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultPath is the PATH of every busybox-based test image.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Users and groups of the busybox base layer's /etc/passwd and /etc/group.
const (
	WWWDataUID = 33
	WWWDataGID = 33
	NobodyUID  = 65534
	NogroupGID = 65534
)

// BusyboxLayer is the base layer of the busybox test images, built once per process from the
// host's dynamically linked busybox (Debian's busybox package): /bin/busybox plus every applet
// as a hard link to it in /bin (and /usr/bin/env), the ELF interpreter and the shared
// libraries busybox needs at their host paths (symlinks kept as symlinks), /etc/passwd and
// /etc/group (root, www-data 33, nobody 65534), /etc/nsswitch.conf, /tmp (1777) and empty
// /proc, /sys, /dev, /root, /run, /var/www.
func BusyboxLayer() (v1.Layer, error) { return busyboxLayerOnce() }

// busyboxLayerOnce memoizes the base layer: the layer depends only on the host's busybox, and
// every image and test in the process shares it.
var busyboxLayerOnce = sync.OnceValues(func() (v1.Layer, error) {
	entries, err := busyboxEntries()
	if err != nil {
		return nil, err
	}
	return NewLayer(entries)
})

// BusyboxBinary returns the host path of the dynamic busybox the images are built from.
func BusyboxBinary() (string, error) {
	// Where Debian's dynamic busybox package installs the binary (before and after usrmerge).
	busyboxCandidates := []string{"/bin/busybox", "/usr/bin/busybox"}
	for _, p := range busyboxCandidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			f, err := elf.Open(p)
			if err != nil {
				return "", fmt.Errorf("busybox %s: %w", p, err)
			}
			interp := elfInterpreter(f)
			_ = f.Close()
			if interp == "" {
				return "", fmt.Errorf("busybox %s is statically linked; install Debian's dynamic busybox package (apt-get install -y busybox), not busybox-static", p)
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("no busybox at %s: install Debian's busybox package (apt-get install -y busybox)", strings.Join(busyboxCandidates, " or "))
}

func busyboxEntries() ([]TarEntry, error) {
	bin, err := BusyboxBinary()
	if err != nil {
		return nil, err
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)

	b := &rootfsBuilder{seen: map[string]bool{}}
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"home", 0o755}, {"proc", 0o555},
		{"root", 0o700}, {"run", 0o755}, {"sbin", 0o755}, {"sys", 0o555}, {"tmp", 0o1777},
		{"usr", 0o755}, {"usr/bin", 0o755}, {"usr/sbin", 0o755}, {"usr/local", 0o755},
		{"usr/local/bin", 0o755}, {"var", 0o755}, {"var/tmp", 0o1777}, {"var/www", 0o755},
	} {
		b.add(Dir(d.name, d.mode))
	}
	b.add(File("etc/passwd", 0o644, strings.Join([]string{
		"root:x:0:0:root:/root:/bin/sh",
		"www-data:x:33:33:www-data:/var/www:/bin/sh",
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
	}, "\n")+"\n"))
	b.add(File("etc/group", 0o644, strings.Join([]string{
		"root:x:0:",
		"www-data:x:33:",
		"users:x:100:",
		"nogroup:x:65534:",
	}, "\n")+"\n"))
	b.add(File("etc/nsswitch.conf", 0o644, "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"))

	b.add(TarEntry{Name: "bin/busybox", Type: tar.TypeReg, Mode: 0o755, Body: body})
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		b.add(HardLink("bin/"+a, "bin/busybox"))
	}
	// Scripts start with #!/usr/bin/env; keep it the same inode as every other applet.
	b.add(HardLink("usr/bin/env", "bin/busybox"))
	// Debian's busybox has no pgrep applet, which upstream critest's busybox image has and
	// its ExecSync timeout test runs: a stand-in that prints the pids whose command name
	// contains the pattern, exiting 1 when there is none.
	if !slices.Contains(applets, "pgrep") {
		b.add(File("bin/pgrep", 0o755, pgrepStandIn))
	}

	if err := b.addELFDeps(bin); err != nil {
		return nil, err
	}
	return b.entries, nil
}

// rootfsBuilder collects tar entries, creating parent directories once.
type rootfsBuilder struct {
	entries []TarEntry
	seen    map[string]bool
}

func (b *rootfsBuilder) add(e TarEntry) {
	name := strings.Trim(e.Name, "/")
	if b.seen[name] {
		return
	}
	if dir := filepath.Dir(name); dir != "." {
		b.add(Dir(dir, 0o755))
	}
	b.seen[name] = true
	e.Name = name
	b.entries = append(b.entries, e)
}

// addELFDeps adds the interpreter and the DT_NEEDED closure of the ELF file at path.
func (b *rootfsBuilder) addELFDeps(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("open elf %s: %w", path, err)
	}
	defer f.Close()
	interp := elfInterpreter(f)
	if interp == "" {
		return fmt.Errorf("%s has no ELF interpreter (statically linked)", path)
	}
	if err := b.addHostPath(interp); err != nil {
		return err
	}
	dirs := libSearchDirs(interp)
	done := map[string]bool{}
	queue := []string{path}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		needed, err := elfNeeded(cur)
		if err != nil {
			return err
		}
		for _, lib := range needed {
			if done[lib] {
				continue
			}
			done[lib] = true
			found := ""
			for _, d := range dirs {
				p := filepath.Join(d, lib)
				if _, err := os.Stat(p); err == nil {
					found = p
					break
				}
			}
			if found == "" {
				return fmt.Errorf("shared library %s needed by %s not found in %v", lib, cur, dirs)
			}
			if err := b.addHostPath(found); err != nil {
				return err
			}
			real, err := filepath.EvalSymlinks(found)
			if err != nil {
				return fmt.Errorf("resolve %s: %w", found, err)
			}
			queue = append(queue, real)
		}
	}
	return nil
}

// addHostPath copies the host file at the absolute path p into the layer at the same path.
// If p's last component is a symlink, the symlink is kept and its target added too;
// symlinked directories on the way (Debian's /lib -> usr/lib) become real directories.
func (b *rootfsBuilder) addHostPath(p string) error {
	for range 16 {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", p)
			}
			body, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			b.add(TarEntry{Name: p, Type: tar.TypeReg, Mode: int64(fi.Mode().Perm()), Body: body})
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", p, err)
		}
		b.add(Symlink(p, target))
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = filepath.Clean(target)
	}
	return fmt.Errorf("too many symlinks at %s", p)
}

func elfInterpreter(f *elf.File) string {
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(prog.Open()); err != nil {
			return ""
		}
		return strings.TrimRight(buf.String(), "\x00")
	}
	return ""
}

func elfNeeded(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open elf %s: %w", path, err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("DT_NEEDED of %s: %w", path, err)
	}
	return libs, nil
}

// libSearchDirs is where the dynamic loader of a Debian system looks without ld.so.cache:
// the multiarch directories first, then the directory the interpreter itself lives in.
func libSearchDirs(interp string) []string {
	triplet := map[string]string{
		"amd64":   "x86_64-linux-gnu",
		"arm64":   "aarch64-linux-gnu",
		"386":     "i386-linux-gnu",
		"arm":     "arm-linux-gnueabihf",
		"ppc64le": "powerpc64le-linux-gnu",
		"s390x":   "s390x-linux-gnu",
		"riscv64": "riscv64-linux-gnu",
	}[runtime.GOARCH]
	var dirs []string
	if triplet != "" {
		dirs = append(dirs, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	if t, err := os.Readlink(interp); err == nil && filepath.IsAbs(t) {
		dirs = append(dirs, filepath.Dir(t))
	}
	return append(dirs, filepath.Dir(interp), "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

const pgrepStandIn = `#!/bin/sh
# pgrep PATTERN: the pids of the processes whose command name contains PATTERN.
found=1
for d in /proc/[0-9]*; do
	read -r name < "$d/comm" 2>/dev/null || continue
	case "$name" in *"$1"*) echo "${d#/proc/}"; found=0 ;; esac
done
exit $found
`

// HostFiles returns layer entries for host files at their host paths (e.g. "/usr/bin/curl"):
// each file, and for a dynamically linked ELF executable its interpreter and the closure of
// the shared libraries it needs, so that an image can carry a tool the busybox base lacks.
func HostFiles(paths ...string) ([]TarEntry, error) {
	b := &rootfsBuilder{seen: map[string]bool{}}
	for _, p := range paths {
		if err := b.addHostPath(p); err != nil {
			return nil, err
		}
		f, err := elf.Open(p)
		if err != nil {
			continue // not an ELF file: nothing more to add
		}
		interp := elfInterpreter(f)
		_ = f.Close()
		if interp == "" {
			continue
		}
		if err := b.addELFDeps(p); err != nil {
			return nil, err
		}
	}
	return b.entries, nil
}
