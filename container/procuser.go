package container

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/peapod-runtime/peapod/container/spec"
)

// ProcessUser reads the effective uid, gid and supplementary groups of a process from
// /proc/<pid>/status: who a running container's process is now, which differs from the
// identity it was started with once it changes its own ids (setuid, setgroups).
// Username is left empty.
func ProcessUser(pid int) (spec.User, error) {
	if pid <= 0 {
		return spec.User{}, fmt.Errorf("read the ids of pid %d: not a process", pid)
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return spec.User{}, fmt.Errorf("read the ids of pid %d: %w", pid, err)
	}
	return parseProcUser(string(b))
}

// parseProcUser parses the Uid, Gid and Groups lines of a /proc/<pid>/status file.
func parseProcUser(status string) (spec.User, error) {
	var u spec.User
	var haveUID, haveGID, haveGroups bool
	for line := range strings.Lines(status) {
		key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			// real, effective, saved, filesystem: the effective one decides access.
			if len(fields) != 4 {
				return spec.User{}, fmt.Errorf("parse /proc status %s line %q", key, val)
			}
			id, err := strconv.ParseUint(fields[1], 10, 32)
			if err != nil {
				return spec.User{}, fmt.Errorf("parse /proc status %s line %q: %w", key, val, err)
			}
			if key == "Uid" {
				u.UID, haveUID = uint32(id), true
			} else {
				u.GID, haveGID = uint32(id), true
			}
		case "Groups":
			haveGroups = true
			for _, f := range fields {
				id, err := strconv.ParseUint(f, 10, 32)
				if err != nil {
					return spec.User{}, fmt.Errorf("parse /proc status Groups line %q: %w", val, err)
				}
				u.AdditionalGids = append(u.AdditionalGids, uint32(id))
			}
		}
	}
	if !haveUID || !haveGID || !haveGroups {
		return spec.User{}, fmt.Errorf("parse /proc status: no Uid, Gid or Groups line")
	}
	slices.Sort(u.AdditionalGids)
	u.AdditionalGids = slices.Compact(u.AdditionalGids)
	return u, nil
}
