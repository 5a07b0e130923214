package framework

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PeapodShim finds a peapod pod's monitor through /proc, by its command line
// ("peapod-shim serve --pod-id <id> ...", or its first stage's "peapod-shim-runc serve ..."
// until that re-executes into peapod-shim), and, when it holds one, its PID namespace holder
// (its child "peapod-shim-runc pause [UID:GID]"; 0 if none).
func PeapodShim(podID string) (shim, holder int, err error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	want := []byte("serve\x00--pod-id\x00" + podID + "\x00")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.SplitN(raw, []byte{0}, 2)
		if bin := string(args[0]); (strings.HasSuffix(bin, "peapod-shim") || strings.HasSuffix(bin, "peapod-shim-runc")) && bytes.Contains(raw, want) {
			shim = pid
			break
		}
	}
	if shim == 0 {
		return 0, 0, fmt.Errorf("no peapod-shim serves pod %s", podID)
	}
	kids, err := ChildPIDs(shim)
	if err != nil {
		return 0, 0, err
	}
	for _, k := range kids {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(k) + "/cmdline")
		if args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00"); err == nil && len(args) >= 2 && args[1] == "pause" {
			holder = k
		}
	}
	return shim, holder, nil
}
