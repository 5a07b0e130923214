package volumes

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
)

func fakeLookup(optional string) MountLookup {
	return func(path string) (*mountinfo.Info, error) {
		return &mountinfo.Info{Mountpoint: "/fake", Optional: optional}, nil
	}
}

func TestToOCI(t *testing.T) {
	host := t.TempDir()
	dir := filepath.Join(host, "data")
	mustMkdir(t, dir)
	mustWrite(t, filepath.Join(host, "file"), "x", 0o644)
	mustSymlink(t, dir, filepath.Join(host, "link"))

	for _, tc := range []struct {
		name     string
		mounts   []Mount
		opts     MountOptions
		wantErr  error
		wantSrc  string
		wantOpts []string
	}{
		{
			name:     "private rw",
			mounts:   []Mount{{ContainerPath: "/data/", HostPath: dir}},
			opts:     MountOptions{Lookup: fakeLookup("")},
			wantSrc:  dir,
			wantOpts: []string{"rbind", "rprivate", "rw"},
		},
		{
			name:     "readonly file",
			mounts:   []Mount{{ContainerPath: "/f", HostPath: filepath.Join(host, "file"), Readonly: true}},
			wantSrc:  filepath.Join(host, "file"),
			wantOpts: []string{"rbind", "rprivate", "ro"},
		},
		{
			name:     "image volume",
			mounts:   []Mount{{ContainerPath: "/img", HostPath: dir, Image: "sha256:abc"}},
			wantSrc:  dir,
			wantOpts: []string{"rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"},
		},
		{
			name:     "symlink followed",
			mounts:   []Mount{{ContainerPath: "/data", HostPath: filepath.Join(host, "link")}},
			wantSrc:  dir,
			wantOpts: []string{"rbind", "rprivate", "rw"},
		},
		{
			name:    "missing host path",
			mounts:  []Mount{{ContainerPath: "/data", HostPath: filepath.Join(host, "nope")}},
			wantErr: errdefs.ErrNotFound,
		},
		{
			name:    "relative container path",
			mounts:  []Mount{{ContainerPath: "data", HostPath: dir}},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "relative host path",
			mounts:  []Mount{{ContainerPath: "/data", HostPath: "data"}},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "duplicate",
			mounts:  []Mount{{ContainerPath: "/data", HostPath: dir}, {ContainerPath: "/data/", HostPath: dir}},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "host to container on private mount",
			mounts:  []Mount{{ContainerPath: "/data", HostPath: dir, Propagation: PropagationHostToContainer}},
			opts:    MountOptions{Lookup: fakeLookup("")},
			wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name:     "host to container on slave mount",
			mounts:   []Mount{{ContainerPath: "/data", HostPath: dir, Propagation: PropagationHostToContainer}},
			opts:     MountOptions{Lookup: fakeLookup("master:7")},
			wantSrc:  dir,
			wantOpts: []string{"rbind", "rslave", "rw"},
		},
		{
			name:     "host to container on shared mount",
			mounts:   []Mount{{ContainerPath: "/data", HostPath: dir, Propagation: PropagationHostToContainer}},
			opts:     MountOptions{Lookup: fakeLookup("shared:1")},
			wantSrc:  dir,
			wantOpts: []string{"rbind", "rslave", "rw"},
		},
		{
			name:    "bidirectional on slave mount",
			mounts:  []Mount{{ContainerPath: "/data", HostPath: dir, Propagation: PropagationBidirectional}},
			opts:    MountOptions{Lookup: fakeLookup("master:7")},
			wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name:     "bidirectional on shared mount",
			mounts:   []Mount{{ContainerPath: "/data", HostPath: dir, Propagation: PropagationBidirectional}},
			opts:     MountOptions{Lookup: fakeLookup("shared:3 master:1")},
			wantSrc:  dir,
			wantOpts: []string{"rbind", "rshared", "rw"},
		},
		{
			name:    "unknown propagation",
			mounts:  []Mount{{ContainerPath: "/data", HostPath: dir, Propagation: 9}},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:     "recursive read-only",
			mounts:   []Mount{{ContainerPath: "/data", HostPath: dir, Readonly: true, RecursiveReadOnly: true}},
			opts:     MountOptions{RecursiveReadOnly: true},
			wantSrc:  dir,
			wantOpts: []string{"rbind", "rprivate", "ro", "rro"},
		},
		{
			name:    "recursive read-only unsupported",
			mounts:  []Mount{{ContainerPath: "/data", HostPath: dir, Readonly: true, RecursiveReadOnly: true}},
			wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name:    "recursive read-only without readonly",
			mounts:  []Mount{{ContainerPath: "/data", HostPath: dir, RecursiveReadOnly: true}},
			opts:    MountOptions{RecursiveReadOnly: true},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "recursive read-only with propagation",
			mounts: []Mount{{ContainerPath: "/data", HostPath: dir, Readonly: true, RecursiveReadOnly: true,
				Propagation: PropagationHostToContainer}},
			opts:    MountOptions{RecursiveReadOnly: true, Lookup: fakeLookup("shared:1")},
			wantErr: errdefs.ErrInvalidArgument,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Lookup == nil {
				tc.opts.Lookup = func(string) (*mountinfo.Info, error) {
					t.Fatal("lookup called for a private mount")
					return nil, nil
				}
			}
			got, err := ToOCI(tc.mounts, tc.opts)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d mounts", len(got))
			}
			m := got[0]
			if m.Type != "bind" || m.Source != tc.wantSrc || !slices.Equal(m.Options, tc.wantOpts) || m.Destination != filepath.Clean(tc.mounts[0].ContainerPath) {
				t.Fatalf("got %+v, want source %s options %v", m, tc.wantSrc, tc.wantOpts)
			}
		})
	}
}

func TestMissingHostPathNamesIt(t *testing.T) {
	_, err := ToOCI([]Mount{{ContainerPath: "/x", HostPath: "/no/such/peapod/dir"}}, MountOptions{})
	if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if want := "/no/such/peapod/dir"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}
