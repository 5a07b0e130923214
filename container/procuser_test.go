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

// TestProcUserInNamespace: the ids of a process in its pod's user namespace are reported as
// that namespace sees them; the node's identity map changes nothing; an unmapped id is the
// overflow id.
func TestProcUserInNamespace(t *testing.T) {
	u := procUser{UID: 3145728, GID: 3146728, AdditionalGids: []uint32{3150728, 12}}
	got := u.inNamespace("         0    3145728      65536\n", "0 3145728 65536\n")
	if got.UID != 0 || got.GID != 1000 || !slices.Equal(got.AdditionalGids, []uint32{5000, 65534}) {
		t.Errorf("in the pod's namespace: %+v, want uid 0 gid 1000 groups [5000 65534]", got)
	}
	identity := "0 0 4294967295\n"
	if got := (procUser{UID: 1003, GID: 5, AdditionalGids: []uint32{5}}).inNamespace(identity, identity); got.UID != 1003 || got.GID != 5 || !slices.Equal(got.AdditionalGids, []uint32{5}) {
		t.Errorf("identity map: %+v", got)
	}
}
