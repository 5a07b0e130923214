package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:alice:/home/alice:/bin/sh
bob:x:1001:100:bob:/home/bob:/bin/sh
`

const testGroup = `root:x:0:
daemon:x:1:
users:x:100:
alice:x:1000:
wheel:x:10:alice,root
video:x:44:alice,bob
`

func userRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/passwd"), testPasswd)
	writeFile(t, filepath.Join(root, "etc/group"), testGroup)
	return root
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func i64(v int64) *int64 { return &v }

func TestResolveUser(t *testing.T) {
	root := userRootfs(t)
	for _, tc := range []struct {
		name    string
		req     UserRequest
		want    User
		wantErr string // substring of an InvalidArgument error
	}{
		{name: "default is root with its groups", req: UserRequest{},
			want: User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}, Username: "root"}},
		{name: "image uid", req: UserRequest{ImageUser: "1000"},
			want: User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000}, Username: "alice"}},
		{name: "image name", req: UserRequest{ImageUser: "bob"},
			want: User{UID: 1001, GID: 100, AdditionalGids: []uint32{44, 100}, Username: "bob"}},
		{name: "image uid:gid", req: UserRequest{ImageUser: "1000:44"},
			want: User{UID: 1000, GID: 44, AdditionalGids: []uint32{10, 44}, Username: "alice"}},
		{name: "image name:group", req: UserRequest{ImageUser: "alice:users"},
			want: User{UID: 1000, GID: 100, AdditionalGids: []uint32{10, 44, 100}, Username: "alice"}},
		{name: "image uid unknown to passwd", req: UserRequest{ImageUser: "4242"},
			want: User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}}},
		{name: "run_as_user overrides the image", req: UserRequest{ImageUser: "bob", RunAsUser: i64(1000)},
			want: User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000}, Username: "alice"}},
		{name: "run_as_user, run_as_group and supplemental (pods.md §5)",
			req:  UserRequest{RunAsUser: i64(1000), RunAsGroup: i64(3000), SupplementalGroups: []int64{2000}},
			want: User{UID: 1000, GID: 3000, AdditionalGids: []uint32{10, 44, 2000, 3000}, Username: "alice"}},
		{name: "strict policy ignores /etc/group",
			req:  UserRequest{RunAsUser: i64(1000), RunAsGroup: i64(3000), SupplementalGroups: []int64{2000}, Policy: GroupsStrict},
			want: User{UID: 1000, GID: 3000, AdditionalGids: []uint32{2000, 3000}, Username: "alice"}},
		{name: "run_as_username", req: UserRequest{RunAsUsername: "bob", RunAsGroup: i64(5)},
			want: User{UID: 1001, GID: 5, AdditionalGids: []uint32{5, 44}, Username: "bob"}},
		{name: "non-root ok", req: UserRequest{ImageUser: "1000", RunAsNonRoot: true},
			want: User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000}, Username: "alice"}},

		{name: "missing username", req: UserRequest{RunAsUsername: "mallory"}, wantErr: `"mallory"`},
		{name: "missing image user", req: UserRequest{ImageUser: "nobody"}, wantErr: `"nobody"`},
		{name: "missing image group", req: UserRequest{ImageUser: "alice:staff"}, wantErr: `"staff"`},
		{name: "group without user", req: UserRequest{ImageUser: ":100"}, wantErr: "no user"},
		{name: "run_as_group alone", req: UserRequest{RunAsGroup: i64(5)}, wantErr: "run_as_group"},
		{name: "negative uid", req: UserRequest{RunAsUser: i64(-1)}, wantErr: "run_as_user -1"},
		{name: "negative group", req: UserRequest{RunAsUser: i64(1), SupplementalGroups: []int64{-5}}, wantErr: "-5"},
		{name: "non-root refuses root image", req: UserRequest{RunAsNonRoot: true}, wantErr: "run_as_non_root"},
		{name: "non-root refuses named root", req: UserRequest{RunAsUsername: "root", RunAsNonRoot: true}, wantErr: "run_as_non_root"},
		{name: "non-root refuses uid 0", req: UserRequest{RunAsUser: i64(0), RunAsNonRoot: true}, wantErr: "run_as_non_root"},
		{name: "unknown policy", req: UserRequest{Policy: 7}, wantErr: "policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveUser(root, tc.req)
			if tc.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want InvalidArgument mentioning %s", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != tc.want.UID || got.GID != tc.want.GID || got.Username != tc.want.Username ||
				!slices.Equal(got.AdditionalGids, tc.want.AdditionalGids) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestResolveUserHostileSymlinks: an image whose /etc/passwd and /etc/group are symlinks to
// host paths must be read inside its rootfs, never from the host.
func TestResolveUserHostileSymlinks(t *testing.T) {
	host := t.TempDir()
	hostPasswd := filepath.Join(host, "shadow-like")
	writeFile(t, hostPasswd, "evil:x:0:0::/:/bin/sh\n")
	hostGroup := filepath.Join(host, "group-like")
	writeFile(t, hostGroup, "evilgroup:x:0:evil\n")

	for _, tc := range []struct {
		name         string
		passwdTarget string
		groupTarget  string
	}{
		{"absolute", hostPasswd, hostGroup},
		{"relative", "../../../../../../../../../../" + hostPasswd, "../../../../../../../../../../" + hostGroup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.passwdTarget, filepath.Join(root, "etc/passwd")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.groupTarget, filepath.Join(root, "etc/group")); err != nil {
				t.Fatal(err)
			}
			if _, err := ResolveUser(root, UserRequest{RunAsUsername: "evil"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("username from a host file resolved: err = %v", err)
			}
			if _, err := ResolveUser(root, UserRequest{ImageUser: "0:evilgroup"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("group from a host file resolved: err = %v", err)
			}
			// Once the target exists inside the rootfs, that copy is what is read.
			writeFile(t, filepath.Join(root, hostPasswd), "evil:x:4000:4000::/:/bin/sh\n")
			u, err := ResolveUser(root, UserRequest{RunAsUsername: "evil"})
			if err != nil || u.UID != 4000 {
				t.Fatalf("got %+v, %v; want the rootfs copy's uid 4000", u, err)
			}
		})
	}
}

func TestResolveUserOddFiles(t *testing.T) {
	t.Run("no passwd at all", func(t *testing.T) {
		u, err := ResolveUser(t.TempDir(), UserRequest{ImageUser: "123:456"})
		if err != nil || u.UID != 123 || u.GID != 456 || !slices.Equal(u.AdditionalGids, []uint32{456}) {
			t.Fatalf("got %+v, %v", u, err)
		}
	})
	t.Run("passwd is a directory", func(t *testing.T) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc/passwd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := ResolveUser(root, UserRequest{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("etc is a file", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "etc"), "")
		if _, err := ResolveUser(root, UserRequest{RunAsUser: i64(7)}); err != nil {
			t.Fatalf("err = %v", err)
		}
	})
}
