package container

import (
	"os"
	"slices"
	"testing"
)

func TestParseProcUser(t *testing.T) {
	u, err := parseProcUser("Name:\tsleep\nUid:\t0\t1003\t1003\t1003\nGid:\t5\t1003\t1003\t1003\nFDSize:\t64\nGroups:\t50000 1003 \nNStgid:\t1\n")
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != 1003 || u.GID != 1003 || !slices.Equal(u.AdditionalGids, []uint32{1003, 50000}) {
		t.Errorf("parsed %+v, want effective uid 1003 gid 1003 groups [1003 50000]", u)
	}
	if u, err := parseProcUser("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n"); err != nil || len(u.AdditionalGids) != 0 {
		t.Errorf("no groups: %+v %v", u, err)
	}
	for _, bad := range []string{"", "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", "Uid:\tx\tx\tx\tx\nGid:\t0\t0\t0\t0\nGroups:\n", "Uid:\t0\nGid:\t0\t0\t0\t0\nGroups:\n"} {
		if u, err := parseProcUser(bad); err == nil {
			t.Errorf("parseProcUser(%q) = %+v, want an error", bad, u)
		}
	}
}

func TestProcessUserSelf(t *testing.T) {
	u, err := ProcessUser(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != uint32(os.Geteuid()) || u.GID != uint32(os.Getegid()) {
		t.Errorf("own ids %+v, want euid %d egid %d", u, os.Geteuid(), os.Getegid())
	}
	if _, err := ProcessUser(0); err == nil {
		t.Error("ProcessUser(0) succeeded")
	}
}
