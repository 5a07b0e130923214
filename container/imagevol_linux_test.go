package container

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

// TestImageSubPath: an image_sub_path is resolved beneath the image's root: ".." and
// absolute paths are refused, symlinks (absolute or climbing) resolve inside the root, and a
// path the image lacks is NotFound, even when it exists on the node.
func TestImageSubPath(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"data/sub", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"data/abs": "/data/sub", "data/up": "../../../../data/sub", "data/host": "/usr/bin"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		sub  string
		want string
		err  error
	}{
		{"", root, nil},
		{"data/sub", filepath.Join(root, "data/sub"), nil},
		{"data/sub/", filepath.Join(root, "data/sub"), nil},
		{"./data", filepath.Join(root, "data"), nil},
		{"data/abs", filepath.Join(root, "data/sub"), nil},
		{"data/up", filepath.Join(root, "data/sub"), nil},
		{"data/host", "", errdefs.ErrNotFound},
		{"data/nope", "", errdefs.ErrNotFound},
		{"../etc", "", errdefs.ErrInvalidArgument},
		{"data/../../etc", "", errdefs.ErrInvalidArgument},
		{"/data", "", errdefs.ErrInvalidArgument},
	} {
		got, err := imageSubPath(root, tc.sub)
		switch {
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("imageSubPath(%q) = %q, %v; want %v", tc.sub, got, err, tc.err)
		case tc.err == nil && (err != nil || got != tc.want):
			t.Errorf("imageSubPath(%q) = %q, %v; want %q", tc.sub, got, err, tc.want)
		}
	}
}
