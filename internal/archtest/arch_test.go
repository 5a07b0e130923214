package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/peapod-runtime/peapod"

type pkg struct {
	ImportPath string
	Dir        string
	Doc        string
	Name       string
	Imports    []string
	GoFiles    []string
	// TestImports and XTestImports are the imports of the package's _test files.
	TestImports  []string
	XTestImports []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func rel(importPath string) string {
	return strings.TrimPrefix(strings.TrimPrefix(importPath, module), "/")
}

// exclusive lists third-party import prefixes and the only peapod packages that may import
// them directly (critest, which drives a daemon from outside, is exempt where noted).
var exclusive = []struct {
	prefix  string
	allowed []string
}{
	{"github.com/opencontainers/runc/libcontainer", []string{"shim/libct", "cmd/peapod-shim-runc"}},
	// shim/libct registers libcontainer's device-rule manager (a blank import).
	{"github.com/opencontainers/cgroups/devices", []string{"cgroups", "shim/libct"}},
	{"github.com/opencontainers/cgroups", []string{"cgroups", "shim/libct"}},
	{"github.com/containernetworking/cni/libcni", []string{"netns/cni"}},
	{"go.etcd.io/bbolt", []string{"store"}},
	{"k8s.io/cri-api", []string{"cri", "critest", "chaos"}},
	{"k8s.io/cri-streaming", []string{"stream"}},
	{"k8s.io/streaming", []string{"stream"}},
	// client-go is only the client side of the streaming protocols, in tests, and the e2e
	// suite's client of the cluster's apiserver.
	{"k8s.io/client-go", []string{"critest", "e2e"}},
	{"github.com/google/go-containerregistry", []string{"images", "critest"}},
	// The Prometheus client and the gRPC ecosystem's interceptors: metrics reports for
	// everyone else through hooks; critest parses scrapes.
	{"github.com/prometheus/client_golang", []string{"metrics"}},
	{"github.com/grpc-ecosystem/go-grpc-middleware", []string{"metrics"}},
	{"github.com/prometheus/", []string{"metrics", "internal/testutil/promtext"}},
	{"tags.cncf.io/container-device-interface", []string{"container/spec"}},
}

// leaves never import each other (they exchange OCI runtime-spec types).
var leaves = []string{"netns", "cgroups", "volumes", "store", "shim/libct"}

// sides are the packages of one process of the pod monitor, and the only packages that may
// import them: the daemon never links the shim's server half, the shim never its client half.
var sides = []struct {
	pkg     string
	allowed []string
}{
	{"shim/server", []string{"shim/server", "shim/serve"}},
	{"shim/serve", []string{"shim/serve", "cmd/peapod-shim", "cmd/peapod-shim-runc"}},
	{"shim/libct", []string{"shim/libct", "cmd/peapod-shim-runc", "cmd/peapod-checkpoint"}},
	{"shim/client", []string{"shim/client", "container", "critest"}},
}

func under(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }

// blackBoxSuites drive a runtime from outside, over its socket, as critest does: they may use
// critest/framework.
var blackBoxSuites = []string{"critest", "chaos", "e2e"}

// TestImportRules checks every package's imports, its tests' included: a rule a test may
// break is a rule the next reader cannot trust.
func TestImportRules(t *testing.T) {
	for _, p := range listPackages(t) {
		me := rel(p.ImportPath)
		for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
			for _, rule := range exclusive {
				if !strings.HasPrefix(imp, rule.prefix) {
					continue
				}
				ok := false
				for _, a := range rule.allowed {
					ok = ok || under(me, a)
				}
				if !ok {
					t.Errorf("%s imports %s: only %v may", me, imp, rule.allowed)
				}
			}
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			them := rel(imp)
			for _, leaf := range leaves {
				if !under(me, leaf) || under(them, leaf) || under(them, "internal/log") {
					continue
				}
				if leaf == "netns" && under(me, "netns/cni") && under(them, "netns") {
					continue
				}
				for _, other := range leaves {
					if under(them, other) {
						t.Errorf("leaf %s imports leaf %s: leaves exchange OCI types, never each other", me, them)
					}
				}
			}
			for _, side := range sides {
				if !under(them, side.pkg) {
					continue
				}
				ok := false
				for _, a := range side.allowed {
					ok = ok || under(me, a)
				}
				if !ok {
					t.Errorf("%s imports %s: only %v may (each side of the shim runs in its own process)", me, them, side.allowed)
				}
			}
			if under(them, "cmd") {
				t.Errorf("%s imports %s: nothing imports cmd", me, them)
			}
			if under(them, "critest") && !slices.ContainsFunc(blackBoxSuites, func(s string) bool { return under(me, s) }) {
				t.Errorf("%s imports %s: critest is a black box over the socket", me, them)
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Name == "main" && strings.HasPrefix(rel(p.ImportPath), "critest/") {
			continue
		}
		if len(p.GoFiles) > 0 && strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", rel(p.ImportPath))
		}
	}
}
