package spec

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// CDIDevices resolves fully-qualified CDI device names ("vendor.com/class=name") against the
// spec files in dirs (none: the CDI specification's /etc/cdi and /var/run/cdi), read afresh (a device plugin may have written one a moment ago). It
// returns the edits to apply with Inject; nothing is changed yet, so a refused request
// leaves nothing behind. A name no spec defines is ErrInvalidArgument naming it, with what
// is wrong in the spec files, if anything.
func CDIDevices(dirs []string, names []string) (*CDIEdits, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if len(dirs) == 0 {
		dirs = []string{cdi.DefaultStaticDir, cdi.DefaultDynamicDir}
	}
	// Manual refresh: no watcher goroutine outlives the request.
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		return nil, fmt.Errorf("read CDI specs in %s: %w", strings.Join(dirs, ", "), err)
	}
	var unknown []string
	for _, n := range names {
		if cache.GetDevice(n) == nil {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		msg := fmt.Sprintf("CDI device %s is not defined by any spec in %s", strings.Join(unknown, ", "), strings.Join(dirs, ", "))
		var specErrs []error
		for path, errs := range cache.GetErrors() {
			specErrs = append(specErrs, fmt.Errorf("%s: %w", path, errors.Join(errs...)))
		}
		if len(specErrs) > 0 {
			msg += " (spec errors: " + errors.Join(specErrs...).Error() + ")"
		}
		return nil, fmt.Errorf("%s: %w", msg, errdefs.ErrInvalidArgument)
	}
	return &CDIEdits{cache: cache, names: names}, nil
}

// CDIEdits are resolved CDI devices, ready to be applied to a spec.
type CDIEdits struct {
	cache *cdi.Cache
	names []string
}

// Inject applies the devices' edits (device nodes and their cgroup rules, env, mounts, hooks)
// to s. A nil CDIEdits does nothing.
func (e *CDIEdits) Inject(s *specs.Spec) error {
	if e == nil {
		return nil
	}
	if unresolved, err := e.cache.InjectDevices(s, e.names...); err != nil {
		if len(unresolved) > 0 {
			return fmt.Errorf("CDI devices %s: %w: %w", strings.Join(unresolved, ", "), err, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("inject CDI devices %s: %w", strings.Join(e.names, ", "), err)
	}
	return nil
}
