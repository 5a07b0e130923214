package container

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/netns"
)

// TestProbeUserNamespaces: on this kernel (6.13+) the probe passes, cleans up after itself
// and after a probe a killed daemon left behind (a mounted overlay, pinned namespaces), and
// fails, saying why, below a directory other users cannot search.
func TestProbeUserNamespaces(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	// The test's temp dirs (base and the one above, made for this test) are 0700.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	// Every directory above them must be searchable for the probe to pass at all.
	for d := filepath.Dir(filepath.Dir(base)); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("SKIP-REASON: %s, above the test's temp dir, is not searchable by others", d)
		}
	}
	root := filepath.Join(base, "root")
	if err := ProbeUserNamespaces(t.Context(), root); err != nil {
		t.Fatalf("probe: %v", err)
	}
	// A probe cut short: do its work again and leave it mounted.
	stale := filepath.Join(root, probePrefix+"stale")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(stale, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	one := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1 << 30, Size: 1}}
	if _, err := netns.NewPinnedInUserNamespace(t.Context(), filepath.Join(stale, "ns"), "", netns.IDMapping{UIDs: one, GIDs: one}); err != nil {
		t.Fatal(err)
	}
	if err := mountIDMappedOverlay(filepath.Join(stale, "merged"), []string{filepath.Join(stale, "lower")},
		filepath.Join(stale, "upper"), filepath.Join(stale, "work"), filepath.Join(stale, "ns", "user"), 0); err != nil {
		t.Fatal(err)
	}
	if err := ProbeUserNamespaces(t.Context(), root); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("probe left %d entries in %s", len(entries), root)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), root) {
		t.Errorf("probe left a mount under %s", root)
	}

	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	err := ProbeUserNamespaces(t.Context(), root)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "not searchable") {
		t.Errorf("probe below a 0700 directory: %v, want FailedPrecondition naming it", err)
	}
}
