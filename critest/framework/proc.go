package framework

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// ProcessStatus returns the fields of /proc/<pid>/status (e.g. "VmRSS": "12345 kB").
func ProcessStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, nil
}

// ProcessRSS is the resident set size (VmRSS) of pid in bytes.
func ProcessRSS(pid int) (int64, error) {
	return statusKiB(pid, "VmRSS")
}

// ProcessPSS is the proportional set size (Pss of /proc/<pid>/smaps_rollup) of pid in bytes.
func ProcessPSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, fmt.Errorf("read smaps_rollup of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			return parseKiB(v)
		}
	}
	return 0, fmt.Errorf("no Pss line for pid %d", pid)
}

func statusKiB(pid int, key string) (int64, error) {
	st, err := ProcessStatus(pid)
	if err != nil {
		return 0, err
	}
	v, ok := st[key]
	if !ok {
		return 0, fmt.Errorf("pid %d has no %s (a zombie or a kernel thread)", pid, key)
	}
	return parseKiB(v)
}

func parseKiB(v string) (int64, error) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0, fmt.Errorf("empty size %q", v)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse size %q: %w", v, err)
	}
	return n * 1024, nil
}

// ProcessThreads is the number of threads of pid. A Go process's goroutines are not visible
// from outside; threads are the closest external proxy.
func ProcessThreads(pid int) (int, error) {
	st, err := ProcessStatus(pid)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(st["Threads"])
	if err != nil {
		return 0, fmt.Errorf("threads of pid %d: %w", pid, err)
	}
	return n, nil
}

// ProcessFDs lists the open file descriptors of pid with what they point to
// (fd -> readlink target, e.g. "socket:[1234]", "/tmp/pp-1/root/meta.db").
func ProcessFDs(pid int) (map[int]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list fds of pid %d: %w", pid, err)
	}
	out := make(map[int]string, len(ents))
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		out[fd] = target
	}
	return out, nil
}

// ChildPIDs lists the direct children of pid.
func ChildPIDs(pid int) ([]int, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, fmt.Errorf("list tasks of pid %d: %w", pid, err)
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	sort.Ints(out)
	return out, nil
}

// ProcessInfo is one process found by ProcessesReferencing.
type ProcessInfo struct {
	PID     int
	Cmdline []string
	Cwd     string
}

// ProcessesReferencing lists the processes other than this one whose command line mentions
// dir or whose working directory is under dir.
func ProcessesReferencing(dir string) ([]ProcessInfo, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	self := os.Getpid()
	var out []ProcessInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if !mentionsPath(string(raw), dir) && !hasPathPrefix(cwd, dir) {
			continue
		}
		out = append(out, ProcessInfo{PID: pid, Cmdline: strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), Cwd: cwd})
	}
	return out, nil
}

// mentionsPath reports whether s contains dir as a whole path or a path prefix: followed by
// "/", the end, or a character that cannot continue a file name component here.
func mentionsPath(s, dir string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], dir)
		if j < 0 {
			return false
		}
		end := i + j + len(dir)
		if end == len(s) {
			return true
		}
		switch c := s[end]; {
		case c == '/', c == 0, c == '"', c == '\'', c == ' ', c == ',', c == ':', c == '=':
			return true
		}
		i = end
	}
}

// KillProcessesReferencing SIGKILLs every process ProcessesReferencing(dir) finds and all
// their descendants (a shim's PID holder and containers name neither dir nor a cwd under it,
// and once their shim is dead they could not be told from anyone's), each by its PID; it
// waits up to 5s for them to go and returns what it killed.
func KillProcessesReferencing(dir string) ([]ProcessInfo, error) {
	procs, err := ProcessesReferencing(dir)
	if err != nil || len(procs) == 0 {
		return nil, err
	}
	procs = withDescendants(procs)
	for _, p := range procs {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range procs {
		for time.Now().Before(deadline) {
			if err := syscall.Kill(p.PID, 0); errors.Is(err, syscall.ESRCH) {
				break
			}
			// A zombie child of ours would linger; those of others are reaped by them.
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p.PID, &ws, syscall.WNOHANG, nil)
			if st, err := ProcessStatus(p.PID); err != nil || strings.HasPrefix(st["State"], "Z") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return procs, nil
}

// withDescendants adds to procs every descendant of theirs not listed yet (parents first).
func withDescendants(procs []ProcessInfo) []ProcessInfo {
	seen := make(map[int]bool, len(procs))
	for _, p := range procs {
		seen[p.PID] = true
	}
	for i := 0; i < len(procs); i++ {
		kids, _ := ChildPIDs(procs[i].PID) // gone meanwhile: nothing to add
		for _, k := range kids {
			if seen[k] {
				continue
			}
			seen[k] = true
			raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", k))
			procs = append(procs, ProcessInfo{PID: k, Cmdline: strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")})
		}
	}
	return procs
}

// MountsUnder lists the mount points at or below dir (from /proc/self/mountinfo), deepest
// first.
func MountsUnder(dir string) ([]string, error) {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	out := make([]string, 0, len(infos))
	for _, m := range infos {
		out = append(out, m.Mountpoint)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] > out[j]
	})
	return out, nil
}

// UnmountAll lazily unmounts everything mounted at or below dir, deepest first, and fails if
// anything remains.
func UnmountAll(dir string) error {
	for range 5 {
		mounts, err := MountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		for _, mp := range mounts {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("unmount %s: %w", mp, err)
			}
		}
	}
	mounts, err := MountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("still mounted under %s: %v", dir, mounts)
	}
	return nil
}
