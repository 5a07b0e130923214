package spec

import (
	"errors"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
)

func TestProcessArgs(t *testing.T) {
	img := Image{Entrypoint: []string{"/entry", "-x"}, Cmd: []string{"cmd-a", "cmd-b"}}
	for _, tc := range []struct {
		name          string
		img           Image
		command, args []string
		want          []string
	}{
		{"neither: entrypoint + cmd", img, nil, nil, []string{"/entry", "-x", "cmd-a", "cmd-b"}},
		{"only args: entrypoint + args", img, nil, []string{"a1"}, []string{"/entry", "-x", "a1"}},
		{"command: command only", img, []string{"/bin/sh"}, nil, []string{"/bin/sh"}},
		{"command and args", img, []string{"/bin/sh", "-c"}, []string{"echo hi"}, []string{"/bin/sh", "-c", "echo hi"}},
		{"no entrypoint: cmd", Image{Cmd: []string{"/bin/sh"}}, nil, nil, []string{"/bin/sh"}},
		{"no entrypoint, args replace cmd", Image{Cmd: []string{"/bin/sh"}}, nil, []string{"/bin/true"}, []string{"/bin/true"}},
		{"empty-string entrypoint ignored", Image{Entrypoint: []string{""}, Cmd: []string{"/bin/sh"}}, nil, nil, []string{"/bin/sh"}},
		{"nothing at all", Image{}, nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ProcessArgs(tc.img, tc.command, tc.args)
			if tc.want == nil {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %v, %v; want InvalidArgument", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// The image's slices are not aliased by the result.
	out, _ := ProcessArgs(img, nil, nil)
	out[0] = "changed"
	if img.Entrypoint[0] != "/entry" {
		t.Fatal("ProcessArgs aliased the image's entrypoint")
	}
}

func TestProcessEnv(t *testing.T) {
	for _, tc := range []struct {
		name   string
		img    []string
		tty    bool
		config []EnvVar
		want   []string
	}{
		{
			name: "defaults",
			want: []string{"PATH=" + DefaultPath, "HOSTNAME=pod-a"},
		},
		{
			name: "image path and vars",
			img:  []string{"PATH=/opt/bin", "LANG=C.UTF-8", "A=1"},
			want: []string{"PATH=/opt/bin", "HOSTNAME=pod-a", "LANG=C.UTF-8", "A=1"},
		},
		{
			name:   "config overrides by key in place, new keys appended",
			img:    []string{"A=1", "B=2"},
			config: []EnvVar{{"B", "config"}, {"C", "3"}, {"HOSTNAME", "custom"}},
			want:   []string{"PATH=" + DefaultPath, "HOSTNAME=custom", "A=1", "B=config", "C=3"},
		},
		{
			name:   "tty adds TERM",
			tty:    true,
			config: []EnvVar{{"EMPTY", ""}},
			want:   []string{"PATH=" + DefaultPath, "HOSTNAME=pod-a", "TERM=xterm", "EMPTY="},
		},
		{
			name: "value with equals signs",
			img:  []string{"OPTS=a=b=c"},
			want: []string{"PATH=" + DefaultPath, "HOSTNAME=pod-a", "OPTS=a=b=c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ProcessEnv(Image{Env: tc.img}, "pod-a", tc.tty, tc.config)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestProcessCwd(t *testing.T) {
	for _, tc := range []struct{ image, config, want string }{
		{"", "", "/"},
		{"/app", "", "/app"},
		{"/app", "/work", "/work"},
	} {
		if got := ProcessCwd(Image{WorkingDir: tc.image}, tc.config); got != tc.want {
			t.Errorf("ProcessCwd(%q, %q) = %q, want %q", tc.image, tc.config, got, tc.want)
		}
	}
}
