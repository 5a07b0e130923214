package shim_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The daemon imports this package for the Client: it must not link libcontainer (only
// cmd/peapod-shim does, through shim/libct), and it imports no other peapod package than
// these.
func TestShimPackageDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/peapod-runtime/peapod/shim").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowedOwn := map[string]bool{
		"github.com/peapod-runtime/peapod/shim":         true,
		"github.com/peapod-runtime/peapod/shim/api":     true,
		"github.com/peapod-runtime/peapod/internal/log": true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/opencontainers/runc") {
			t.Errorf("package shim links %s: libcontainer belongs to shim/libct", pkg)
		}
		if strings.HasPrefix(pkg, "github.com/peapod-runtime/peapod/") && !allowedOwn[pkg] {
			t.Errorf("package shim imports %s", pkg)
		}
	}
}
