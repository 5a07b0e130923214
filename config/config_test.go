package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

const full = `root = "/var/lib/peapod"
state = "/run/peapod"
listen = "/run/peapod/peapod.sock"
log_level = "info"
cgroup_driver = "cgroupfs"        # or "systemd"
pinned_images = ["registry.k8s.io/pause:3.10"]
[network]
conf_dir = "/etc/cni/net.d"       # no config there -> the built-in default network
bin_dirs = ["/opt/cni/bin"]
[streaming]
address = "127.0.0.1:0"           # 0 = a free port
[registries."registry.k8s.io"]
mirrors = ["http://127.0.0.1:5000"]
[registries."127.0.0.1:5000"]
insecure = true                   # plain HTTP allowed
`

func TestParseDocumentedFile(t *testing.T) {
	c, err := Parse("peapod.toml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Registries["registry.k8s.io"].Mirrors; len(got) != 1 || got[0] != "http://127.0.0.1:5000" {
		t.Errorf("mirrors = %v", got)
	}
	if !c.Registries["127.0.0.1:5000"].Insecure {
		t.Error("insecure not set")
	}
	if c.Streaming.Address != "127.0.0.1:0" || c.CgroupDriver != "cgroupfs" {
		t.Errorf("got %+v", c)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	c, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.Root != d.Root || c.Listen != d.Listen || len(c.PinnedImages) != 1 || len(c.Network.BinDirs) != 1 {
		t.Errorf("got %+v, want defaults %+v", c, d)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestBadFilesNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"unknown key", "root = \"/r\"\n\nbogus = 1\n", []string{"x.toml:3", `"bogus"`}},
		{"unknown nested key", "[network]\nconf_dir = \"/c\"\nbin_dir = [\"/b\"]\n", []string{"x.toml:3", "network.bin_dir"}},
		{"wrong type", "root = \"/r\"\nlog_level = 3\n", []string{"x.toml:2", "log_level"}},
		{"syntax", "root = \n", []string{"x.toml:1"}},
		{"bad driver", "cgroup_driver = \"docker\"\n", []string{"cgroup_driver"}},
		{"relative root", "root = \"var\"\n", []string{`"root"`}},
		{"bad mirror", "[registries.\"a.io\"]\nmirrors = [\"127.0.0.1:5000\"]\n", []string{"registries.a.io.mirrors"}},
		{"bad level", "log_level = \"loud\"\n", []string{"log_level"}},
		{"listen socket too long", "listen = \"/" + strings.Repeat("l", 107) + "\"\n", []string{`"listen"`, "107-byte limit", "108 bytes", "/" + strings.Repeat("l", 107)}},
		{"debug socket too long", "[debug]\naddress = \"/" + strings.Repeat("d", 107) + "\"\n", []string{"debug.address", "107-byte limit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.toml", []byte(tc.file))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error class: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestTolerateMissingHugetlbController(t *testing.T) {
	for _, tc := range []struct {
		file string
		want bool
	}{
		{"", true},
		{"[runtime]\ntolerate_missing_hugetlb_controller = false\n", false},
		{"[runtime]\ntolerate_missing_hugetlb_controller = true\n", true},
	} {
		c, err := Parse("peapod.toml", []byte(tc.file))
		if err != nil {
			t.Fatalf("%q: %v", tc.file, err)
		}
		if c.Runtime.TolerateMissingHugetlbController != tc.want {
			t.Errorf("%q: tolerate_missing_hugetlb_controller = %v, want %v", tc.file, c.Runtime.TolerateMissingHugetlbController, tc.want)
		}
	}
}

func TestSocketPathLimit(t *testing.T) {
	for n, ok := range map[int]bool{MaxSocketPath: true, MaxSocketPath + 1: false} {
		p := "/" + strings.Repeat("s", n-1)
		err := CheckSocketPath("listen", p)
		if (err == nil) != ok {
			t.Errorf("%d-byte path: %v", n, err)
		}
		if !ok && (!errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), p)) {
			t.Errorf("%d-byte path: %v; want InvalidArgument naming it", n, err)
		}
	}
}
