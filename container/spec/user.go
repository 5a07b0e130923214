package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"
)

// GroupsPolicy says where supplementary groups come from (the CRI's SupplementalGroupsPolicy).
type GroupsPolicy int

// The CRI policies; Merge is the zero value and the default.
const (
	// GroupsMerge: the request's groups plus those /etc/group in the image lists the user in.
	GroupsMerge GroupsPolicy = iota
	// GroupsStrict: the request's groups only.
	GroupsStrict
)

// UserRequest is what decides a container's identity.
type UserRequest struct {
	RunAsUser     *int64
	RunAsUsername string
	// RunAsGroup overrides the primary group; it needs RunAsUser or RunAsUsername.
	RunAsGroup *int64
	// ImageUser is the image's USER, used when neither RunAsUser nor RunAsUsername is set.
	ImageUser          string
	SupplementalGroups []int64
	Policy             GroupsPolicy
	RunAsNonRoot       bool
}

// User is a resolved identity, as the spec and the CRI status report it.
type User struct {
	UID uint32
	GID uint32
	// AdditionalGids are the supplementary groups, sorted, and always include GID (the
	// kernel otherwise drops the primary group from getgroups, unlike a login).
	AdditionalGids []uint32
	// Username is the passwd name of UID in the image, if any.
	Username string
}

// maxID is the largest valid uid or gid; (uid_t)-1 means "unchanged" to the kernel.
const maxID = 1<<32 - 2

// ResolveUser resolves a container's uid, gid and groups against the image's /etc/passwd and
// /etc/group under rootfs. Those files are opened inside rootfs as if it were "/": a symlink
// in a hostile image (/etc/passwd → /etc/shadow) resolves within rootfs, never to the host's
// files. Missing files are empty files.
//
// Errors: RunAsGroup alone, a negative or too large id, a malformed image USER, a name
// missing from the image's files, or uid 0 with RunAsNonRoot are all ErrInvalidArgument
// naming the culprit.
func ResolveUser(rootfs string, req UserRequest) (User, error) {
	if req.RunAsGroup != nil && req.RunAsUser == nil && req.RunAsUsername == "" {
		return User{}, fmt.Errorf("run_as_group needs run_as_user or run_as_username: %w", errdefs.ErrInvalidArgument)
	}
	db, err := loadUserDB(rootfs)
	if err != nil {
		return User{}, err
	}

	var u User
	switch {
	case req.RunAsUsername != "":
		pw, ok := db.userByName(req.RunAsUsername)
		if !ok {
			return User{}, fmt.Errorf("run_as_username %q is not in the image's /etc/passwd: %w", req.RunAsUsername, errdefs.ErrInvalidArgument)
		}
		u = User{UID: uint32(pw.Uid), GID: uint32(pw.Gid), Username: pw.Name}
	case req.RunAsUser != nil:
		uid, err := checkID("run_as_user", *req.RunAsUser)
		if err != nil {
			return User{}, err
		}
		u = db.byUID(uid)
	default:
		if u, err = db.parseImageUser(req.ImageUser); err != nil {
			return User{}, err
		}
	}
	if req.RunAsGroup != nil {
		gid, err := checkID("run_as_group", *req.RunAsGroup)
		if err != nil {
			return User{}, err
		}
		u.GID = gid
	}
	if req.RunAsNonRoot && u.UID == 0 {
		who := "the image's user"
		if req.RunAsUsername != "" || req.RunAsUser != nil {
			who = "the requested user"
		}
		return User{}, fmt.Errorf("run_as_non_root is set but %s is root (uid 0): %w", who, errdefs.ErrInvalidArgument)
	}

	groups := []uint32{u.GID}
	for _, g := range req.SupplementalGroups {
		gid, err := checkID("supplemental group", g)
		if err != nil {
			return User{}, err
		}
		groups = append(groups, gid)
	}
	if req.Policy == GroupsMerge && u.Username != "" {
		for _, g := range db.groups {
			if slices.Contains(g.List, u.Username) && g.Gid >= 0 && g.Gid <= maxID {
				groups = append(groups, uint32(g.Gid))
			}
		}
	} else if req.Policy != GroupsMerge && req.Policy != GroupsStrict {
		return User{}, fmt.Errorf("unknown supplemental groups policy %d: %w", int(req.Policy), errdefs.ErrInvalidArgument)
	}
	slices.Sort(groups)
	u.AdditionalGids = slices.Compact(groups)
	return u, nil
}

func checkID(what string, id int64) (uint32, error) {
	if id < 0 || id > maxID {
		return 0, fmt.Errorf("%s %d is outside 0..%d: %w", what, id, maxID, errdefs.ErrInvalidArgument)
	}
	return uint32(id), nil
}

type userDB struct {
	users  []user.User
	groups []user.Group
}

func (db userDB) userByName(name string) (user.User, bool) {
	for _, u := range db.users {
		if u.Name == name && u.Uid >= 0 && u.Uid <= maxID && u.Gid >= 0 && u.Gid <= maxID {
			return u, true
		}
	}
	return user.User{}, false
}

// byUID is the identity of a numeric uid: its passwd entry's group and name when it has one,
// else group 0 (what Docker and containerd do).
func (db userDB) byUID(uid uint32) User {
	for _, u := range db.users {
		if u.Uid == int(uid) && u.Gid >= 0 && u.Gid <= maxID {
			return User{UID: uid, GID: uint32(u.Gid), Username: u.Name}
		}
	}
	return User{UID: uid}
}

// parseImageUser resolves an image USER: "", "uid", "name", "uid:gid", "name:group", ...
func (db userDB) parseImageUser(spec string) (User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var u User
	switch {
	case userPart == "":
		if hasGroup {
			return User{}, fmt.Errorf("image user %q has a group but no user: %w", spec, errdefs.ErrInvalidArgument)
		}
		u = db.byUID(0)
	case isNumeric(userPart):
		n, err := strconv.ParseInt(userPart, 10, 64)
		if err != nil {
			return User{}, fmt.Errorf("image user %q: %w", spec, errdefs.ErrInvalidArgument)
		}
		uid, err := checkID("image uid", n)
		if err != nil {
			return User{}, err
		}
		u = db.byUID(uid)
	default:
		pw, ok := db.userByName(userPart)
		if !ok {
			return User{}, fmt.Errorf("image user %q is not in the image's /etc/passwd: %w", userPart, errdefs.ErrInvalidArgument)
		}
		u = User{UID: uint32(pw.Uid), GID: uint32(pw.Gid), Username: pw.Name}
	}
	if !hasGroup {
		return u, nil
	}
	if isNumeric(groupPart) {
		n, err := strconv.ParseInt(groupPart, 10, 64)
		if err != nil {
			return User{}, fmt.Errorf("image group %q: %w", groupPart, errdefs.ErrInvalidArgument)
		}
		if u.GID, err = checkID("image gid", n); err != nil {
			return User{}, err
		}
		return u, nil
	}
	for _, g := range db.groups {
		if g.Name == groupPart && g.Gid >= 0 && g.Gid <= maxID {
			u.GID = uint32(g.Gid)
			return u, nil
		}
	}
	return User{}, fmt.Errorf("image group %q is not in the image's /etc/group: %w", groupPart, errdefs.ErrInvalidArgument)
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func loadUserDB(rootfs string) (userDB, error) {
	var db userDB
	if rootfs == "" {
		return db, nil
	}
	if err := readInRoot(rootfs, "/etc/passwd", func(r io.Reader) (err error) {
		db.users, err = user.ParsePasswd(r)
		return err
	}); err != nil {
		return db, err
	}
	if err := readInRoot(rootfs, "/etc/group", func(r io.Reader) (err error) {
		db.groups, err = user.ParseGroup(r)
		return err
	}); err != nil {
		return db, err
	}
	return db, nil
}

// maxUserFile bounds how much of an image's passwd or group file is read.
const maxUserFile = 16 << 20

// readInRoot opens path inside rootfs with every symlink resolved inside it (openat2
// RESOLVE_IN_ROOT, or its userspace equivalent) and hands parse its content. A missing file
// is skipped; anything but a regular file (a fifo would block us) is an error.
func readInRoot(rootfs, path string, parse func(io.Reader) error) error {
	h, err := pathrs.OpenInRoot(rootfs, path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("open %s in the image: %w", path, err)
	}
	defer h.Close()
	fi, err := h.Stat()
	if err != nil {
		return fmt.Errorf("stat %s in the image: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s in the image is not a regular file: %w", path, errdefs.ErrInvalidArgument)
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open %s in the image: %w", path, err)
	}
	defer f.Close()
	if err := parse(io.LimitReader(f, maxUserFile)); err != nil {
		return fmt.Errorf("parse %s in the image: %w", path, err)
	}
	return nil
}
