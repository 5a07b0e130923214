package main

import (
	"os/exec"
	"strings"
	"testing"
)

// One shim runs per pod on every node: its import graph stays small. These must never be
// linked into it.
func TestShimDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "seccomp", "-deps", "github.com/peapod-runtime/peapod/cmd/peapod-shim").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbiddenPrefixes := map[string]string{
		"k8s.io/":                                   "Kubernetes packages belong to the daemon",
		"github.com/google/go-containerregistry":    "the registry client belongs to images/",
		"go.etcd.io/bbolt":                          "the store belongs to the daemon",
		"github.com/containernetworking":            "CNI belongs to netns/cni",
		"google.golang.org/grpc/internal/transport": "gRPC's transport: the shim speaks ttrpc",
	}
	// ttrpc carries errors as gRPC status codes, so grpc/status and grpc/codes are linked;
	// the gRPC package itself (server, client, transport) is not.
	forbiddenExact := map[string]string{
		"google.golang.org/grpc": "gRPC: the shim speaks ttrpc",
	}
	allowedOwn := map[string]bool{
		"github.com/peapod-runtime/peapod/cmd/peapod-shim": true,
		"github.com/peapod-runtime/peapod/internal/log":    true,
		"github.com/peapod-runtime/peapod/shim":            true,
		"github.com/peapod-runtime/peapod/shim/api":        true,
		"github.com/peapod-runtime/peapod/shim/libct":      true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		if why, bad := forbiddenExact[pkg]; bad {
			t.Errorf("peapod-shim links %s (%s)", pkg, why)
		}
		for prefix, why := range forbiddenPrefixes {
			if strings.HasPrefix(pkg, prefix) {
				t.Errorf("peapod-shim links %s (%s)", pkg, why)
			}
		}
		if strings.HasPrefix(pkg, "github.com/peapod-runtime/peapod/") && !allowedOwn[pkg] {
			t.Errorf("peapod-shim links peapod package %s", pkg)
		}
	}
}
