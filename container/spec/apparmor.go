package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/containerd/errdefs"
)

// AppArmor resolves the AppArmor profile name for a container.
//
// On a node without AppArmor (enabled false) only "not set" and Unconfined are accepted:
// anything else is ErrInvalidArgument, because silently running a container without the
// confinement it asked for is worse than refusing it (containerd does the same).
//
// With AppArmor: Unconfined gives "" (no profile); RuntimeDefault, or nothing at all, gives
// defaultProfile (the profile the daemon loaded for its containers; "" if it loaded none)
// except for privileged containers, which run unconfined; Localhost gives its LocalhostRef,
// which must name a loaded profile: exists reports that (LoadedAppArmorProfile is the real
// check), and a missing one is ErrInvalidArgument.
func AppArmor(sp *SecurityProfile, privileged, enabled bool, defaultProfile string, exists func(string) (bool, error)) (string, error) {
	if !enabled {
		if sp != nil && sp.Type != ProfileUnconfined {
			return "", fmt.Errorf("an AppArmor profile was requested but AppArmor is not enabled on this node: %w", errdefs.ErrInvalidArgument)
		}
		return "", nil
	}
	if sp == nil {
		sp = &SecurityProfile{Type: ProfileRuntimeDefault}
	}
	switch sp.Type {
	case ProfileUnconfined:
		return "", nil
	case ProfileRuntimeDefault:
		if privileged {
			return "", nil
		}
		return defaultProfile, nil
	case ProfileLocalhost:
		name := strings.TrimPrefix(sp.LocalhostRef, "localhost/")
		if name == "" {
			return "", fmt.Errorf("localhost AppArmor profile without a name: %w", errdefs.ErrInvalidArgument)
		}
		if exists == nil {
			exists = LoadedAppArmorProfile
		}
		ok, err := exists(name)
		if err != nil {
			return "", fmt.Errorf("look up AppArmor profile %q: %w", name, err)
		}
		if !ok {
			return "", fmt.Errorf("AppArmor profile %q is not loaded on this node: %w", name, errdefs.ErrInvalidArgument)
		}
		return name, nil
	}
	return "", fmt.Errorf("unknown AppArmor profile type %d: %w", int(sp.Type), errdefs.ErrInvalidArgument)
}

// AppArmorEnabled reports whether the kernel has AppArmor switched on.
func AppArmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(b), "Y")
}

// LoadedAppArmorProfile reports whether a profile of that name is loaded in the kernel.
func LoadedAppArmorProfile(name string) (bool, error) {
	f, err := os.Open("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Lines read "name (mode)".
		if p, _, _ := strings.Cut(sc.Text(), " ("); p == name {
			return true, nil
		}
	}
	return false, sc.Err()
}
