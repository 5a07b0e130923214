package spec

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps container/spec below the daemon: of peapod it may use volumes and
// internal/log only, and none of the libraries that belong to one other package (cri-api,
// libcontainer, the cgroups library, libcni, bbolt).
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP-REASON: -short skips go list")
	}
	checkDeps(t, "github.com/peapod-runtime/peapod/container/spec", []string{"internal/log", "volumes"})
}

func checkDeps(t *testing.T, pkg string, allowed []string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const self = "github.com/peapod-runtime/peapod/"
	banned := []string{"k8s.io/cri-api", "github.com/opencontainers/runc", "github.com/opencontainers/cgroups",
		"github.com/containernetworking/cni", "go.etcd.io/bbolt", "google.golang.org/grpc"}
	for _, dep := range strings.Fields(string(out)) {
		if dep == pkg {
			continue
		}
		if rest, ok := strings.CutPrefix(dep, self); ok {
			ok := false
			for _, a := range allowed {
				ok = ok || rest == a
			}
			if !ok {
				t.Errorf("%s imports peapod package %s", pkg, dep)
			}
		}
		for _, b := range banned {
			if dep == b || strings.HasPrefix(dep, b+"/") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
