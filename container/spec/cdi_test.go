package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// testCDISpec describes /dev/null as /dev/peapod-null with an env edit, and a vendor-wide
// env edit.
const testCDISpec = `cdiVersion: "0.6.0"
kind: "peapod.test/null"
devices:
  - name: "one"
    containerEdits:
      deviceNodes:
        - path: "/dev/peapod-null"
          hostPath: "/dev/null"
      env:
        - "PEAPOD_CDI=one"
containerEdits:
  env:
    - "PEAPOD_CDI_VENDOR=yes"
`

func writeCDISpec(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "peapod-null.yaml"), []byte(testCDISpec), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCDIDevices(t *testing.T) {
	dir := writeCDISpec(t)
	edits, err := CDIDevices([]string{dir}, []string{"peapod.test/null=one"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := edits.Inject(s); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/peapod-null" })
	if i < 0 {
		t.Fatalf("no /dev/peapod-null in %+v", s.Linux.Devices)
	}
	if d := s.Linux.Devices[i]; d.Type != "c" || d.Major != 1 || d.Minor != 3 {
		t.Errorf("device %+v, want char 1:3 (/dev/null)", d)
	}
	if !slices.ContainsFunc(s.Linux.Resources.Devices, func(r specs.LinuxDeviceCgroup) bool {
		return r.Allow && r.Major != nil && *r.Major == 1 && r.Minor != nil && *r.Minor == 3
	}) {
		t.Errorf("no cgroup rule allows 1:3: %+v", s.Linux.Resources.Devices)
	}
	for _, kv := range []string{"PEAPOD_CDI=one", "PEAPOD_CDI_VENDOR=yes"} {
		if !slices.Contains(s.Process.Env, kv) {
			t.Errorf("env %q lacks %s", s.Process.Env, kv)
		}
	}

	for _, names := range [][]string{{"peapod.test/null=two"}, {"not-qualified"}, {"peapod.test/null=one", "other.test/x=y"}} {
		if _, err := CDIDevices([]string{dir}, names); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), names[len(names)-1]) {
			t.Errorf("CDIDevices(%q): %v, want InvalidArgument naming the device", names, err)
		}
	}
	if e, err := CDIDevices([]string{dir}, nil); e != nil || err != nil {
		t.Errorf("no devices: %v %v", e, err)
	}
}
