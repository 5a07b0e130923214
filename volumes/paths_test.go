package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestSecureJoinStaysInRoot(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	mustMkdir(t, filepath.Join(root, "etc"))
	mustSymlink(t, filepath.Join(outside, "secret"), filepath.Join(root, "etc", "abs"))
	mustSymlink(t, "../../../../../../"+outside, filepath.Join(root, "etc", "rel"))

	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "/etc/passwd", filepath.Join(root, "etc/passwd")},
		{"dotdot", "/../../etc/passwd", filepath.Join(root, "etc/passwd")},
		{"absolute symlink", "/etc/abs", filepath.Join(root, outside, "secret")},
		{"relative symlink", "/etc/rel/x", filepath.Join(root, outside, "x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SecureJoin(root, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("SecureJoin(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestWithinRoot(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	mustMkdir(t, filepath.Join(root, "logs"))
	mustSymlink(t, outside, filepath.Join(root, "escape"))
	mustSymlink(t, "logs", filepath.Join(root, "inner"))

	for _, tc := range []struct {
		name    string
		in      string
		want    string // "" means an InvalidArgument error
		wantErr bool
	}{
		{name: "relative", in: "logs/0.log", want: filepath.Join(root, "logs/0.log")},
		{name: "absolute inside", in: filepath.Join(root, "logs/x/y.log"), want: filepath.Join(root, "logs/x/y.log")},
		{name: "inner symlink", in: "inner/0.log", want: filepath.Join(root, "logs/0.log")},
		{name: "dotdot out", in: "../x.log", wantErr: true},
		{name: "dotdot through", in: "logs/../../x.log", wantErr: true},
		{name: "absolute outside", in: "/etc/passwd", wantErr: true},
		{name: "symlink out", in: "escape/x.log", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := WithinRoot(root, tc.in)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("WithinRoot(%q) = %q, %v; want InvalidArgument", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, _ := filepath.EvalSymlinks(root)
			want = filepath.Join(want, tc.want[len(root):])
			if got != want {
				t.Fatalf("WithinRoot(%q) = %q, want %q", tc.in, got, want)
			}
		})
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	mustMkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}
