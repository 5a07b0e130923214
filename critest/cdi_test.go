package critest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestCDIDevices: a container's CDI_devices are resolved from the configured CDI spec dirs
// and injected: the device node (here /dev/null under another name) is in the container and
// usable through its cgroup, the spec's env edits are in its environment, and a device no
// spec defines is InvalidArgument naming it, leaving nothing behind.
func TestCDIDevices(t *testing.T) {
	framework.RequirePeapod(t)
	dir := t.TempDir()
	spec := `cdiVersion: "0.6.0"
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
	if err := os.WriteFile(filepath.Join(dir, "peapod-null.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	d := framework.StartDaemon(t, framework.WithConfig(fmt.Sprintf("[cdi]\nspec_dirs = [%q]\n", dir)))
	c := framework.MustConnect(t, d.Endpoint())
	pod := newTestPodOn(t, &testPod{rt: c.Runtime, img: c.Image, daemon: d}, "cdi", nil)

	cfg := sleeper("cdi", framework.ImageBusybox, nil)
	cfg.CDIDevices = []*runtimeapi.CDIDevice{{Name: "peapod.test/null=one"}}
	id := pod.run(t, cfg)
	if got := pod.sh(t, id, "stat -c '%F %t:%T' /dev/peapod-null; echo x > /dev/peapod-null && echo written; echo $PEAPOD_CDI $PEAPOD_CDI_VENDOR"); got != "character special file 1:3\nwritten\none yes" {
		t.Errorf("inside: %q, want the char device 1:3, writable, and the env edits", got)
	}

	bad := sleeper("cdi-unknown", framework.ImageBusybox, nil)
	bad.CDIDevices = []*runtimeapi.CDIDevice{{Name: "peapod.test/null=two"}}
	pod.refused(t, bad, codes.InvalidArgument, "peapod.test/null=two")
}
