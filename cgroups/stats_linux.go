package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fscommon"
)

// readerIdle is how long a cached reader lives unused: a cgroup no pass asked about for this
// long is gone or no longer sampled.
const readerIdle = time.Minute

// statReaders caches, per cgroup path, the library manager Stats reads through. Building one
// resolves every controller's mount point, a quarter of a pass's cost when redone for each
// cgroup every 2 s. Readers unused for readerIdle are dropped, and so is the reader of a
// cgroup found gone.
type statReaders struct {
	mu        sync.Mutex
	byPath    map[string]*statReader
	lastSweep time.Time
}

type statReader struct {
	lib cgroups.Manager
	// dir is the cgroup's directory in one hierarchy (v1: pids, else memory, else cpu): its
	// presence says the cgroup still exists, and its cgroup.procs lists the processes.
	dir string
	// cpuFile holds the cumulative cpu time: v1's cpuacct.usage, v2's cpu.stat ("" when the
	// cgroup has no cpu accounting).
	cpuFile string
	used    time.Time
}

func newStatReaders() *statReaders {
	return &statReaders{byPath: map[string]*statReader{}}
}

// Stats reads the cpu, memory and pids figures of the cgroup at p, its subtree included, and
// what extra asks for. A missing cgroup is errdefs.ErrNotFound.
func (m *Manager) Stats(p string, extra Extra) (Stats, error) {
	rd, err := m.reader(p)
	if err != nil {
		return Stats{}, err
	}
	controllers := cgroups.CPU | cgroups.Memory | cgroups.Pids
	if m.v2 || extra&ExtraIO != 0 {
		// On v2 always, for io.pressure; v1's blkio files are many and only metrics want them.
		controllers |= cgroups.IO
	}
	st, err := rd.lib.Stats(&cgroups.StatsOptions{Controllers: controllers})
	if err != nil {
		return Stats{}, m.readError(p, err)
	}
	out := statsFrom(st, m.v2)
	if extra&ExtraIO == 0 {
		out.IO = nil
	}
	if extra&ExtraEvents != 0 {
		if err := m.readEvents(rd, &out); err != nil {
			return Stats{}, m.readError(p, err)
		}
	}
	if extra&ExtraProcs != 0 {
		if out.Procs, err = cgroups.GetPids(rd.dir); err != nil {
			return Stats{}, m.readError(p, err)
		}
	}
	return out, nil
}

// CPUUsage reads only the cumulative cpu time of the cgroup at p (its subtree included), in
// nanoseconds: one small file where Stats reads dozens, for a caller that wants to know
// whether anything in the cgroup ran since it last looked. A missing cgroup is
// errdefs.ErrNotFound.
func (m *Manager) CPUUsage(p string) (uint64, error) {
	rd, err := m.reader(p)
	if err != nil {
		return 0, err
	}
	if rd.cpuFile == "" {
		return 0, fmt.Errorf("cgroup %s: no cpu accounting: %w", p, errdefs.ErrNotFound)
	}
	raw, err := os.ReadFile(rd.cpuFile)
	if err != nil {
		return 0, m.readError(p, err)
	}
	n, err := parseCPUUsage(raw, m.v2)
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", p, err)
	}
	return n, nil
}

// cpuFile is the file of paths that holds the cumulative cpu time.
func cpuFile(paths map[string]string, v2 bool) string {
	if v2 {
		if d := paths[""]; d != "" {
			return filepath.Join(d, "cpu.stat")
		}
		return ""
	}
	if d := paths["cpuacct"]; d != "" {
		return filepath.Join(d, "cpuacct.usage")
	}
	return ""
}

// parseCPUUsage reads v1's cpuacct.usage (nanoseconds) or v2's cpu.stat (usage_usec).
func parseCPUUsage(raw []byte, v2 bool) (uint64, error) {
	if !v2 {
		n, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpuacct.usage: %w", err)
		}
		return n, nil
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cpu.stat usage_usec: %w", err)
			}
			return n * 1000, nil
		}
	}
	return 0, errors.New("cpu.stat has no usage_usec")
}

// readError is NotFound (and forgets the reader) when the cgroup went away while being read.
func (m *Manager) readError(p string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		m.readers.forget(p)
		return fmt.Errorf("cgroup %s: %w", p, errdefs.ErrNotFound)
	}
	return fmt.Errorf("read stats of cgroup %s: %w", p, err)
}

// readEvents reads the OOM kill count, and on v2 memory.events' "max" (how often usage hit
// memory.max), v2's counterpart of v1's memory.failcnt.
func (m *Manager) readEvents(rd *statReader, out *Stats) error {
	if !m.v2 {
		n, err := rd.lib.OOMKillCount()
		out.OOMKills = n
		return err
	}
	f, err := cgroups.OpenFile(rd.dir, "memory.events", os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, err := fscommon.ParseKeyValue(sc.Text())
		if err != nil {
			return fmt.Errorf("memory.events: %w", err)
		}
		switch k {
		case "max":
			out.MemoryFailcnt = v
		case "oom_kill":
			out.OOMKills = v
		}
	}
	return sc.Err()
}

// reader returns the cached reader of the cgroup at p, making one if needed, or
// errdefs.ErrNotFound when the cgroup does not exist.
func (m *Manager) reader(p string) (*statReader, error) {
	now := time.Now()
	rs := m.readers
	rs.mu.Lock()
	if now.Sub(rs.lastSweep) > readerIdle {
		for k, r := range rs.byPath {
			if now.Sub(r.used) > readerIdle {
				delete(rs.byPath, k)
			}
		}
		rs.lastSweep = now
	}
	r := rs.byPath[p]
	if r != nil {
		r.used = now
	}
	rs.mu.Unlock()
	if r != nil {
		if cgroups.PathExists(r.dir) {
			return r, nil
		}
		rs.forget(p)
		return nil, fmt.Errorf("cgroup %s: %w", p, errdefs.ErrNotFound)
	}
	lib, err := m.existing(p)
	if err != nil {
		return nil, err
	}
	paths := lib.GetPaths()
	r = &statReader{lib: lib, dir: procsDir(paths), cpuFile: cpuFile(paths, m.v2), used: now}
	if r.dir == "" {
		return nil, fmt.Errorf("cgroup %s: no hierarchy to read it in: %w", p, errdefs.ErrNotFound)
	}
	rs.mu.Lock()
	rs.byPath[p] = r
	rs.mu.Unlock()
	return r, nil
}

func (rs *statReaders) forget(p string) {
	rs.mu.Lock()
	delete(rs.byPath, p)
	rs.mu.Unlock()
}

// procsDir picks the hierarchy whose cgroup.procs Stats reads: v2's only one ("" key), else
// the pids, memory or cpu controller's, else any that exists.
func procsDir(paths map[string]string) string {
	for _, c := range []string{"", "pids", "memory", "cpu"} {
		if d := paths[c]; d != "" && cgroups.PathExists(d) {
			return d
		}
	}
	for _, d := range paths {
		if cgroups.PathExists(d) {
			return d
		}
	}
	return ""
}
