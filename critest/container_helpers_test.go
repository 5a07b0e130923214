package critest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// containerInfo is what peapod's verbose ContainerStatus tells about a container.
type containerInfo struct {
	Pid         int             `json:"pid"`
	SandboxID   string          `json:"sandboxID"`
	RuntimeSpec json.RawMessage `json:"runtimeSpec"`
	CgroupPath  string          `json:"cgroup_path"`
	Dir         string          `json:"dir"`
}

// ctrInfo returns the container's verbose info.
func (p *testPod) ctrInfo(t *testing.T, id string) containerInfo {
	t.Helper()
	st, err := p.rt.ContainerStatus(framework.Context(t), id, true)
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	var info containerInfo
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("container info %q: %v", st.GetInfo()["info"], err)
	}
	return info
}

// pid is the container's init process on the host, from the verbose info.
func (p *testPod) pid(t *testing.T, id string) int {
	t.Helper()
	info := p.ctrInfo(t, id)
	if info.Pid <= 0 {
		t.Fatalf("container %s: verbose info has no pid", id)
	}
	return info.Pid
}

// status returns the container's status.
func (p *testPod) status(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	st, err := p.rt.ContainerStatus(framework.Context(t), id, false)
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return st.GetStatus()
}

// waitExited polls until the container has exited and returns its status.
func (p *testPod) waitExited(t *testing.T, id string, timeout time.Duration) *runtimeapi.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := p.status(t, id)
		if st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %v after %v", id, st.GetState(), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nsLink is the namespace a process is in, as "net:[4026531992]".
func nsLink(t *testing.T, pid int, ns string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatalf("namespace %s of pid %d: %v", ns, pid, err)
	}
	return l
}

// pinnedNS is the namespace pinned at path (a bind mount of an nsfs file), as "net:[ino]".
func pinnedNS(t *testing.T, kind, path string) string {
	t.Helper()
	var st os.FileInfo
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("pinned %s namespace: %v", kind, err)
	}
	return fmt.Sprintf("%s:[%d]", kind, inode(st))
}

// mountEntry is one line of /proc/<pid>/mountinfo.
type mountEntry struct {
	root, mountPoint, options, optional, fsType, source, superOptions string
}

// mountTable parses /proc/<pid>/mountinfo; later mounts at the same point win.
func mountTable(t *testing.T, pid int) map[string]mountEntry {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatalf("mountinfo: %v", err)
	}
	defer f.Close()
	out := map[string]mountEntry{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 6 || len(b) < 3 {
			continue
		}
		e := mountEntry{root: a[3], mountPoint: a[4], options: a[5], optional: strings.Join(a[6:], " "),
			fsType: b[0], source: b[1], superOptions: b[2]}
		out[e.mountPoint] = e
	}
	return out
}

// hasOpt says whether a comma-separated option list holds opt.
func hasOpt(list, opt string) bool {
	for o := range strings.SplitSeq(list, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// wantCode checks an RPC error's gRPC code and that its message names each of names.
func wantCode(t *testing.T, what string, err error, code codes.Code, names ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: %v (code %v), want %v", what, err, status.Code(err), code)
		return
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("%s: error %q does not name %q", what, err, n)
		}
	}
}

// logLine is one parsed CRI log entry.
type logLine struct {
	ts     time.Time
	stream string
	tag    string
	text   string
}

// readLog parses a CRI-format log file, failing t on any malformed line.
func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	var out []logLine
	for line := range strings.Lines(string(raw)) {
		if !strings.HasSuffix(line, "\n") {
			t.Fatalf("log line without newline: %q", line)
		}
		parts := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("malformed log line %q", line)
		}
		ts, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			t.Fatalf("log line %q: timestamp: %v", line, err)
		}
		if parts[1] != "stdout" && parts[1] != "stderr" || parts[2] != "P" && parts[2] != "F" {
			t.Fatalf("malformed log line %q", line)
		}
		out = append(out, logLine{ts: ts, stream: parts[1], tag: parts[2], text: parts[3]})
	}
	return out
}

// waitLog polls the log file until cond holds on its entries.
func waitLog(t *testing.T, path string, timeout time.Duration, cond func([]logLine) bool) []logLine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var lines []logLine
		if _, err := os.Stat(path); err == nil {
			lines = readLog(t, path)
			if cond(lines) {
				return lines
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s after %v: %+v", path, timeout, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logPath is the absolute log path of a container config in p.
func (p *testPod) logPath(cfg *runtimeapi.ContainerConfig) string {
	return filepath.Join(p.cfg.LogDirectory, cfg.LogPath)
}

// shell is a busybox container config running script with sh -c.
func shell(name, script string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: framework.ImageBusybox},
		Command:  []string{"sh", "-c", script},
		LogPath:  name + "/0.log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
