package stats

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Processes is what a container's processes hold, read from /proc: cadvisor's process
// metrics.
type Processes struct {
	At time.Time
	// Count is how many processes (thread groups) are in the cgroup.
	Count uint64
	// FDs counts their open file descriptors, Sockets those that are sockets.
	FDs, Sockets uint64
	// MaxOpenFiles is the container init's soft RLIMIT_NOFILE ("Max open files" in
	// /proc/<pid>/limits); HasMaxOpenFiles is false when it could not be read.
	MaxOpenFiles    uint64
	HasMaxOpenFiles bool
}

// ReadProcesses counts the file descriptors and sockets of pids under procRoot (/proc) and
// reads the soft open-files limit of initPid (0: none). A process that exits meanwhile is
// skipped: the cgroup's list is a moment's.
func ReadProcesses(procRoot string, pids []int, initPid int) Processes {
	out := Processes{At: time.Now(), Count: uint64(len(pids))}
	for _, pid := range pids {
		fds, sockets := countFDs(procRoot + "/" + strconv.Itoa(pid) + "/fd")
		out.FDs += fds
		out.Sockets += sockets
	}
	if initPid > 0 {
		if raw, err := os.ReadFile(procRoot + "/" + strconv.Itoa(initPid) + "/limits"); err == nil {
			out.MaxOpenFiles, out.HasMaxOpenFiles = parseLimit(string(raw), "Max open files")
		}
	}
	return out
}

// countFDs counts the entries of a /proc/<pid>/fd directory and those linking to a socket
// ("socket:[inode]"), as cadvisor does. Readdirnames does not sort, and no entry is stat'ed.
func countFDs(dir string) (fds, sockets uint64) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, 0
	}
	names, _ := f.Readdirnames(-1) // what was read before an error (the process exited) counts
	f.Close()
	buf := make([]byte, 0, len(dir)+12)
	for _, n := range names {
		fds++
		buf = append(append(append(buf[:0], dir...), '/'), n...)
		if target, err := os.Readlink(string(buf)); err == nil && strings.HasPrefix(target, "socket:") {
			sockets++
		}
	}
	return fds, sockets
}

// parseLimit returns the soft limit of the resource named like a line of /proc/<pid>/limits
// ("Max open files  1024  4096  files"); ok is false when the line is missing, malformed or
// the limit is "unlimited" (CRI's unsigned values cannot say -1).
func parseLimit(limits, name string) (soft uint64, ok bool) {
	for line := range strings.Lines(limits) {
		rest, found := strings.CutPrefix(line, name)
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return 0, false
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		return v, err == nil
	}
	return 0, false
}
