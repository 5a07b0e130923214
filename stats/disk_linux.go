package stats

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// statFS fills d's filesystem fields from the filesystem holding dir: its device numbers,
// capacity and inodes (what cadvisor reports as the container's fs limit and inodes).
func statFS(dir string, d *Disk) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	d.Major, d.Minor = uint64(unix.Major(st.Dev)), uint64(unix.Minor(st.Dev))
	d.CapacityBytes = fs.Blocks * uint64(fs.Bsize)
	d.InodesTotal, d.InodesFree = fs.Files, fs.Ffree
	return nil
}

// deviceNames names devices by number the way cadvisor labels them: "/dev/<name>" for a block
// device (from /sys/dev/block/M:m/uevent), else the source of the filesystem mounted from it
// ("overlay", "tmpfs"), else "M:m". Names are cached: devices come and go rarely, and a
// stale name only mislabels until the daemon restarts.
type deviceNames struct {
	mu     sync.Mutex
	byDev  map[[2]uint64]string
	sysDev string // /sys/dev/block
	mounts string // /proc/self/mountinfo
}

func newDeviceNames() *deviceNames {
	return &deviceNames{byDev: map[[2]uint64]string{}, sysDev: "/sys/dev/block", mounts: "/proc/self/mountinfo"}
}

func (n *deviceNames) name(major, minor uint64) string {
	k := [2]uint64{major, minor}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.byDev[k]; ok {
		return s
	}
	num := fmt.Sprintf("%d:%d", major, minor)
	s := num
	if raw, err := os.ReadFile(n.sysDev + "/" + num + "/uevent"); err == nil {
		if dev := ueventDevName(raw); dev != "" {
			s = "/dev/" + dev
		}
	} else if raw, err := os.ReadFile(n.mounts); err == nil {
		if src := mountSource(raw, num); src != "" {
			s = src
		}
	}
	n.byDev[k] = s
	return s
}

// ueventDevName returns DEVNAME from a sysfs uevent file.
func ueventDevName(raw []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "DEVNAME="); ok {
			return v
		}
	}
	return ""
}

// mountSource returns the source of the first mount of device num ("M:m") in a mountinfo
// file: "36 35 0:33 / /run rw - tmpfs tmpfs rw" has source "tmpfs".
func mountSource(raw []byte, num string) string {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[2] != num {
			continue
		}
		for i, v := range f {
			if v == "-" && i+2 < len(f) {
				return f[i+2]
			}
		}
	}
	return ""
}
