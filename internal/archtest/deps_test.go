package archtest

import (
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// leafLibraries belong to one package each (see exclusive in arch_test.go); a package that
// must stay small links none of them, even indirectly.
var leafLibraries = []string{"k8s.io/cri-api", "github.com/opencontainers/runc", "github.com/opencontainers/cgroups",
	"github.com/containernetworking/cni", "go.etcd.io/bbolt", "google.golang.org/grpc"}

// TestTransitiveDependencies checks whole import graphs (go list -deps), not just direct
// imports: the peapod packages each package may reach, and the libraries it must never link.
func TestTransitiveDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP-REASON: -short skips go list")
	}
	tests := []struct {
		pkg  string
		tags string
		own  []string // peapod packages it may reach besides itself
		// banned: import-path prefixes never linked; bannedExact: exact paths.
		banned      []string
		bannedExact []string
	}{
		// Leaves below the daemon.
		{pkg: "volumes", own: []string{"internal/log"}, banned: leafLibraries},
		{pkg: "container/spec", own: []string{"internal/log", "volumes"}, banned: leafLibraries},
		{pkg: "shim/libct", own: []string{"internal/log/corelog"}},
		// The daemon links the shim's client half: it must not bring libcontainer, nor the
		// server half, with it.
		{pkg: "shim", banned: []string{"github.com/opencontainers/runc"}},
		{pkg: "shim/wire", own: []string{"shim"}, banned: []string{"github.com/opencontainers/runc"}},
		{
			pkg: "shim/client", own: []string{"shim", "shim/wire", "internal/log"},
			banned: []string{"github.com/opencontainers/runc"},
		},
		// One shim runs per pod on every node, for the pod's whole life: its graph stays
		// small, and libcontainer is its helper's. Its API is shim/wire's call protocol:
		// no protobuf, ttrpc or gRPC. It logs through internal/log/corelog on zapcore:
		// package zap links net/http and crypto/tls.
		{
			pkg: "cmd/peapod-shim",
			own: []string{"internal/log/corelog", "internal/version", "shim", "shim/serve", "shim/server", "shim/wire"},
			banned: []string{"k8s.io/", "github.com/google/go-containerregistry", "go.etcd.io/bbolt",
				"github.com/containernetworking", "google.golang.org/", "github.com/containerd/ttrpc",
				"github.com/sirupsen/logrus", "github.com/opencontainers/runc", "github.com/opencontainers/cgroups",
				"github.com/seccomp", "crypto/tls", "crypto/x509"},
			bannedExact: []string{"go.uber.org/zap", "net/http"},
		},
		// Every pod's first stage and every container's init start this binary: package
		// zap's net/http and crypto/tls would cost each start 0.2 ms of cpu and 25 page
		// faults before main.
		{
			pkg: "cmd/peapod-shim-runc", tags: "seccomp",
			own: []string{"internal/log/corelog", "internal/version", "shim", "shim/libct", "shim/serve", "shim/server", "shim/wire"},
			banned: []string{"k8s.io/", "github.com/google/go-containerregistry", "go.etcd.io/bbolt",
				"github.com/containernetworking", "google.golang.org/", "crypto/tls", "crypto/x509"},
			bannedExact: []string{"go.uber.org/zap", "net/http"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.pkg, func(t *testing.T) {
			pkg := module + "/" + tc.pkg
			args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
			if tc.tags != "" {
				args = append(args, "-tags", tc.tags)
			}
			cmd := exec.Command("go", append(args, pkg)...)
			cmd.Dir = repoRoot(t)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				if dep == pkg {
					continue
				}
				if rest, ok := strings.CutPrefix(dep, module+"/"); ok {
					allowed := false
					for _, a := range tc.own {
						allowed = allowed || rest == a
					}
					if !allowed {
						t.Errorf("%s reaches peapod package %s", tc.pkg, rest)
					}
				}
				for _, b := range tc.banned {
					if b = strings.TrimSuffix(b, "/"); dep == b || strings.HasPrefix(dep, b+"/") {
						t.Errorf("%s links %s", tc.pkg, dep)
					}
				}
				for _, b := range tc.bannedExact {
					if dep == b {
						t.Errorf("%s links %s", tc.pkg, dep)
					}
				}
			}
		})
	}
}

// TestCritestIsABlackBox: critest (its tests, framework, bench and tools) measures any CRI
// runtime, containerd's too, so its whole graph, tests included, reaches no peapod package
// outside critest/ but internal/testutil's helpers (kernel gates, tar and scrape readers).
func TestCritestIsABlackBox(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP-REASON: -short skips go list")
	}
	cmd := exec.Command("go", "list", "-test", "-deps", "-f", "{{.ImportPath}}", "./critest/...")
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	bad := map[string]bool{}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "[") {
			continue // the " [critest.test]" tail of a test variant
		}
		rest, ok := strings.CutPrefix(strings.TrimSuffix(dep, ".test"), module+"/")
		if !ok || under(rest, "critest") || under(rest, "internal/testutil") {
			continue
		}
		bad[rest] = true
	}
	for _, p := range slices.Sorted(maps.Keys(bad)) {
		t.Errorf("critest reaches peapod package %s: it must drive a runtime through the CRI only", p)
	}
}
