// Package idprefix finds an object by its full id or a unique prefix of it, the way every
// CRI id may be abbreviated (crictl passes prefixes).
package idprefix

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// Lookup returns the value whose key is id or the only key starting with id. kind names the
// object in errors: an empty id and an ambiguous prefix are ErrInvalidArgument, no match is
// ErrNotFound.
func Lookup[T any](m map[string]T, id, kind string) (T, error) {
	var zero T
	if id == "" {
		return zero, fmt.Errorf("%s id is required: %w", kind, errdefs.ErrInvalidArgument)
	}
	if v, ok := m[id]; ok {
		return v, nil
	}
	found, n := zero, 0
	for full, v := range m {
		if strings.HasPrefix(full, id) {
			found, n = v, n+1
		}
	}
	switch n {
	case 0:
		return zero, fmt.Errorf("%s %q: %w", kind, id, errdefs.ErrNotFound)
	case 1:
		return found, nil
	}
	return zero, fmt.Errorf("%s id prefix %q is ambiguous: %w", kind, id, errdefs.ErrInvalidArgument)
}
