package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

func (k Kind) cloneFlag() int {
	switch k {
	case Net:
		return unix.CLONE_NEWNET
	case IPC:
		return unix.CLONE_NEWIPC
	case UTS:
		return unix.CLONE_NEWUTS
	}
	return 0
}

func kindOfCloneFlag(flag int) (Kind, bool) {
	for _, k := range PodKinds() {
		if k.cloneFlag() == flag {
			return k, true
		}
	}
	return "", false
}

// NewPinned creates fresh namespaces of the given kinds and pins each one by bind-mounting it
// onto dir/<kind>, a file it creates with O_EXCL. It returns the pin paths by kind. When
// hostname is not empty it becomes the hostname of the new UTS namespace (kinds must then
// include UTS), so nobody has to enter the namespace again to set it. A new network
// namespace comes with lo up.
//
// A pin file that already exists is ErrAlreadyExists. On any failure NewPinned undoes all it
// did: unmounts, pin files, and dir if it created it.
func NewPinned(ctx context.Context, dir, hostname string, kinds ...Kind) (_ map[Kind]string, retErr error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("pin namespaces under %s: no kinds given: %w", dir, errdefs.ErrInvalidArgument)
	}
	flags, err := cloneFlags(dir, hostname, kinds)
	if err != nil {
		return nil, err
	}

	paths, undo, err := pinFiles(dir, kinds)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			undo()
		}
	}()
	onLockedThread(func() bool {
		err = pinOnThisThread(flags, hostname, kinds, paths)
		// This thread has left the process's namespaces for good: keep it locked so the
		// runtime ends it instead of reusing it.
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("pin namespaces under %s: %w", dir, err)
	}
	return paths, nil
}

func pinOnThisThread(flags int, hostname string, kinds []Kind, paths map[Kind]string) error {
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	if flags&unix.CLONE_NEWNET != 0 {
		// Every pod needs lo up; doing it here, on the thread already inside the new
		// namespace, saves a CNI loopback plugin run on each pod's start and stop.
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	for _, k := range kinds {
		src := "/proc/thread-self/ns/" + string(k)
		if err := unix.Mount(src, paths[k], "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", src, paths[k], err)
		}
	}
	return nil
}

// loopbackUp brings up lo in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up lo: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: set flags: %w", err)
	}
	return nil
}

// Remove unmounts the pin at path and deletes the file. A path that does not exist, or that is
// no longer mounted, is not an error, so Remove can be called again after a partial failure.
func Remove(path string) error {
	// MNT_DETACH so a process still holding the file open does not make removal fail; the
	// namespace itself lives on only while something still uses it.
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount namespace pin %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace pin: %w", err)
	}
	return nil
}

// RemoveAll removes every pin in dir (see Remove) and then dir itself. A missing dir is not an
// error.
func RemoveAll(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove namespace pins: %w", err)
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, Remove(filepath.Join(dir, e.Name())))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace pins: %w", err)
	}
	return nil
}

// IsPinned reports whether path is a namespace file (a pin made by NewPinned or any other
// nsfs file such as /proc/<pid>/ns/net). A missing path is false with no error.
func IsPinned(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

// Load returns the pins found in dir by kind, for a daemon that restarts and finds its pods'
// namespaces still pinned. Files in dir that are not mounted namespaces are left out.
func Load(dir string) (map[Kind]string, error) {
	paths := map[Kind]string{}
	for _, k := range PodKinds() {
		p := filepath.Join(dir, string(k))
		ok, err := IsPinned(p)
		if err != nil {
			return nil, err
		}
		if ok {
			paths[k] = p
		}
	}
	return paths, nil
}

// Do runs fn on a fresh goroutine locked to its thread, with that thread inside the namespace
// pinned at path (any nsfs file: a pin or /proc/<pid>/ns/<kind>, of kind net, ipc or uts).
// Goroutines that fn starts run outside the namespace. If the thread cannot switch back it is
// abandoned: it stays locked and dies with the goroutine.
func Do(path string, fn func() error) error {
	return DoAll(map[Kind]string{"": path}, fn)
}

// DoAll is Do for several namespaces at once, given by kind. An empty kind means: find out
// from the file.
func DoAll(paths map[Kind]string, fn func() error) error {
	var targets []target
	defer func() {
		for _, t := range targets {
			_ = unix.Close(t.fd)
		}
	}()
	for k, p := range paths {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("enter namespace %s: %w", p, errdefs.ErrNotFound)
			}
			return fmt.Errorf("enter namespace %s: %w", p, err)
		}
		targets = append(targets, target{fd: fd})
		nstype, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
		if err != nil {
			return fmt.Errorf("enter namespace %s: not a namespace file: %w", p, errdefs.ErrInvalidArgument)
		}
		actual, ok := kindOfCloneFlag(nstype)
		if !ok || (k != "" && k != actual) {
			return fmt.Errorf("enter namespace %s: want %s namespace, got type %#x: %w", p, k, nstype, errdefs.ErrInvalidArgument)
		}
		for _, t := range targets {
			if t.kind == actual {
				return fmt.Errorf("enter namespace %s: a %s namespace is given twice: %w", p, actual, errdefs.ErrInvalidArgument)
			}
		}
		targets[len(targets)-1].kind = actual
	}
	// Enter in a fixed order so a failure half-way is the same every time.
	slices.SortFunc(targets, func(a, b target) int { return int(a.kind.cloneFlag() - b.kind.cloneFlag()) })

	var err error
	onLockedThread(func() bool {
		err = doOnThisThread(targets, fn)
		return err == nil || !errors.Is(err, errNotSwitchedBack)
	})
	return err
}

// errNotSwitchedBack marks a thread that is stuck in a namespace it entered.
var errNotSwitchedBack = errors.New("thread could not switch back to its namespaces")

type target struct {
	kind Kind
	fd   int
}

func doOnThisThread(targets []target, fn func() error) error {
	// Open the thread's own namespaces on the locked thread: /proc/thread-self is whichever
	// thread asks.
	var origs []int
	defer func() {
		for _, fd := range origs {
			_ = unix.Close(fd)
		}
	}()
	for _, t := range targets {
		fd, err := unix.Open("/proc/thread-self/ns/"+string(t.kind), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open current %s namespace: %w", t.kind, err)
		}
		origs = append(origs, fd)
	}
	var err error
	entered := 0
	for _, t := range targets {
		if err = unix.Setns(t.fd, t.kind.cloneFlag()); err != nil {
			err = fmt.Errorf("setns %s: %w", t.kind, err)
			break
		}
		entered++
	}
	if err == nil {
		err = fn()
	}
	for i := range entered {
		if rerr := unix.Setns(origs[i], targets[i].kind.cloneFlag()); rerr != nil {
			return errors.Join(err, fmt.Errorf("switch back to original %s namespace: %w: %w", targets[i].kind, rerr, errNotSwitchedBack))
		}
	}
	return err
}

// onLockedThread runs fn on a new goroutine locked to an OS thread other than the process's
// main thread, and waits for it. If fn returns false the thread stays locked, so the runtime
// ends it when the goroutine exits instead of handing it to other goroutines.
func onLockedThread(fn func() (unlock bool)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The runtime never ends the main thread (it parks it for good instead), so a
			// namespace left on it would be held, and leaked, forever. Keep the main thread
			// busy here so the nested goroutine gets another one.
			onLockedThread(fn)
			runtime.UnlockOSThread()
			return
		}
		if fn() {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}

// cloneFlags checks kinds (each valid, none twice; a hostname needs UTS) and returns their
// clone flags.
func cloneFlags(dir, hostname string, kinds []Kind) (int, error) {
	flags := 0
	for _, k := range kinds {
		if err := k.valid(); err != nil {
			return 0, err
		}
		if flags&k.cloneFlag() != 0 {
			return 0, fmt.Errorf("pin namespaces under %s: %s given twice: %w", dir, k, errdefs.ErrInvalidArgument)
		}
		flags |= k.cloneFlag()
	}
	if hostname != "" && !slices.Contains(kinds, UTS) {
		return 0, fmt.Errorf("pin namespaces under %s: hostname %q needs a new uts namespace: %w", dir, hostname, errdefs.ErrInvalidArgument)
	}
	return flags, nil
}

// pinFiles makes dir (if missing) and an empty file in it for each kind, the mount points of
// the pins; undo removes them, and dir if pinFiles made it. An existing pin is
// errdefs.ErrAlreadyExists.
func pinFiles(dir string, kinds []Kind) (paths map[Kind]string, undo func(), err error) {
	createdDir := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		createdDir = true
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, nil, fmt.Errorf("pin namespaces: %w", err)
	}
	paths = make(map[Kind]string, len(kinds))
	undo = func() {
		for _, p := range paths {
			_ = Remove(p)
		}
		if createdDir {
			_ = os.Remove(dir)
		}
	}
	for _, k := range kinds {
		p := filepath.Join(dir, string(k))
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if errors.Is(err, os.ErrExist) {
			undo()
			return nil, nil, fmt.Errorf("pin %s namespace at %s: %w", k, p, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			undo()
			return nil, nil, fmt.Errorf("pin %s namespace: %w", k, err)
		}
		_ = f.Close()
		paths[k] = p
	}
	return paths, undo, nil
}
