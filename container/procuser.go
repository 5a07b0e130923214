package container

import (
	"errors"
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
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return spec.User{}, fmt.Errorf("read the ids of pid %d: %w", pid, err)
	}
	u, err := parseProcUser(string(b))
	if err != nil {
		return spec.User{}, err
	}
	// /proc/<pid>/status shows the node's ids; a process in its pod's own user namespace is
	// who it is there. Its maps, read from the node's namespace, say how to go back.
	uidMap, uerr := os.ReadFile(filepath.Join(dir, "uid_map"))
	gidMap, gerr := os.ReadFile(filepath.Join(dir, "gid_map"))
	if uerr != nil || gerr != nil {
		return spec.User{}, fmt.Errorf("read the id maps of pid %d: %w", pid, errors.Join(uerr, gerr))
	}
	return u.inNamespace(string(uidMap), string(gidMap)), nil
}

// overflowID is what the kernel shows for an id a user namespace does not map.
const overflowID = 65534

// inNamespace translates host ids into those of the user namespace whose uid_map and gid_map
// (as the node's namespace reads them) are given: the identity map changes nothing, an id
// the namespace does not map becomes the overflow id.
func (u procUser) inNamespace(uidMap, gidMap string) spec.User {
	out := spec.User(u)
	out.UID = mapBack(uidMap, u.UID)
	out.GID = mapBack(gidMap, u.GID)
	out.AdditionalGids = nil
	for _, g := range u.AdditionalGids {
		out.AdditionalGids = append(out.AdditionalGids, mapBack(gidMap, g))
	}
	slices.Sort(out.AdditionalGids)
	return out
}

// mapBack finds host id in a uid_map or gid_map ("inside outside length" lines) and returns
// the id inside.
func mapBack(idMap string, id uint32) uint32 {
	for line := range strings.Lines(idMap) {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		inside, err1 := strconv.ParseUint(f[0], 10, 32)
		outside, err2 := strconv.ParseUint(f[1], 10, 32)
		length, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if uint64(id) >= outside && uint64(id)-outside < length {
			return uint32(inside + (uint64(id) - outside))
		}
	}
	return overflowID
}

// procUser is a process's ids as the node's user namespace sees them.
type procUser spec.User

// parseProcUser parses the Uid, Gid and Groups lines of a /proc/<pid>/status file.
func parseProcUser(status string) (procUser, error) {
	var u procUser
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
				return procUser{}, fmt.Errorf("parse /proc status %s line %q", key, val)
			}
			id, err := strconv.ParseUint(fields[1], 10, 32)
			if err != nil {
				return procUser{}, fmt.Errorf("parse /proc status %s line %q: %w", key, val, err)
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
					return procUser{}, fmt.Errorf("parse /proc status Groups line %q: %w", val, err)
				}
				u.AdditionalGids = append(u.AdditionalGids, uint32(id))
			}
		}
	}
	if !haveUID || !haveGID || !haveGroups {
		return procUser{}, fmt.Errorf("parse /proc status: no Uid, Gid or Groups line")
	}
	slices.Sort(u.AdditionalGids)
	u.AdditionalGids = slices.Compact(u.AdditionalGids)
	return u, nil
}
