package libct

import (
	"os/exec"
	"strings"
	"testing"
)

// libct is a leaf: it speaks OCI runtime-spec and imports no peapod package.
func TestLibctDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/peapod-runtime/peapod/shim/libct").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/peapod-runtime/peapod/") && pkg != "github.com/peapod-runtime/peapod/shim/libct" {
			t.Errorf("libct imports %s", pkg)
		}
	}
}
