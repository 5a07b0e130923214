package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// SetSysctls writes each sysctl (name → value) inside the namespace that owns it: net.* in
// nsPaths[Net], the ipc ones in nsPaths[IPC]. /proc/sys resolves these files by the namespaces
// of the thread that opens them, so each group is written from inside Do. A sysctl that
// ValidateSysctl rejects, or whose namespace is missing from nsPaths (the pod shares the
// node's), is ErrInvalidArgument and nothing is written.
func SetSysctls(ctx context.Context, nsPaths map[Kind]string, sysctls map[string]string) error {
	byKind := map[Kind][]string{}
	for name := range sysctls {
		_, hasNet := nsPaths[Net]
		_, hasIPC := nsPaths[IPC]
		kind, err := resolveSysctl(name, !hasNet, !hasIPC)
		if err != nil {
			return err
		}
		byKind[kind] = append(byKind[kind], name)
	}
	for _, kind := range []Kind{Net, IPC} {
		names := byKind[kind]
		if len(names) == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		slices.Sort(names)
		err := DoAll(map[Kind]string{kind: nsPaths[kind]}, func() error {
			for _, name := range names {
				if err := writeSysctl(name, sysctls[name]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func writeSysctl(name, value string) error {
	p := sysctlPath(normalizeSysctl(name))
	// O_WRONLY without O_CREAT: a sysctl this kernel lacks is an error, not a new file.
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sysctl %q: not known to this kernel: %w", name, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("sysctl %q: %w", name, err)
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if errors.Is(werr, unix.EINVAL) || errors.Is(werr, unix.ERANGE) {
		return fmt.Errorf("sysctl %q = %q: value rejected by the kernel: %w", name, value, errdefs.ErrInvalidArgument)
	}
	if werr != nil {
		return fmt.Errorf("sysctl %q = %q: %w", name, value, werr)
	}
	if cerr != nil {
		return fmt.Errorf("sysctl %q = %q: %w", name, value, cerr)
	}
	return nil
}
