package config

import (
	"errors"
	"reflect"
	"regexp"
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
[images]
max_layer_size = 1073741824
max_image_size = 2147483648
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
	if c.Images.MaxLayerSize != 1<<30 || c.Images.MaxImageSize != 2<<30 {
		t.Errorf("images = %+v", c.Images)
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
	if got := c.CDI.SpecDirs; len(got) != 2 || got[0] != "/etc/cdi" || got[1] != "/var/run/cdi" {
		t.Errorf("cdi.spec_dirs %q, want the CDI specification's /etc/cdi and /var/run/cdi", got)
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
		{"relative cdi spec dir", "[cdi]\nspec_dirs = [\"cdi\"]\n", []string{`"cdi.spec_dirs"`}},
		{"bad mirror", "[registries.\"a.io\"]\nmirrors = [\"127.0.0.1:5000\"]\n", []string{"registries.a.io.mirrors"}},
		{"bad level", "log_level = \"loud\"\n", []string{"log_level"}},
		{"listen socket too long", "listen = \"/" + strings.Repeat("l", 107) + "\"\n", []string{`"listen"`, "107-byte limit", "108 bytes", "/" + strings.Repeat("l", 107)}},
		{"debug socket too long", "[debug]\naddress = \"/" + strings.Repeat("d", 107) + "\"\n", []string{"debug.address", "107-byte limit"}},
		{"negative layer size", "[images]\nmax_layer_size = -1\n", []string{"images.max_layer_size"}},
		{"negative image size", "[images]\nmax_image_size = -5\n", []string{"images.max_image_size"}},
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

func TestDefaultTOMLParsesBackToDefaults(t *testing.T) {
	text, err := DefaultTOML()
	if err != nil {
		t.Fatal(err)
	}
	c, problems := Check(text)
	if len(problems) > 0 {
		t.Fatalf("config default has problems: %v\n%s", problems, text)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("config default parses to\n%+v\nwant\n%+v", c, Default())
	}
}

// TestEveryKeyHasAComment: config default prints every key with its comment, so a key added
// without one fails here.
func TestEveryKeyHasAComment(t *testing.T) {
	text, err := DefaultTOML()
	if err != nil {
		t.Fatal(err)
	}
	var walk func(rt reflect.Type, path string)
	walk = func(rt reflect.Type, path string) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			name := tomlName(f)
			if name == "" {
				continue
			}
			key := strings.TrimPrefix(path+"."+name, ".")
			comment := f.Tag.Get("comment")
			if strings.TrimSpace(comment) == "" {
				t.Errorf("key %s has no comment tag", key)
			} else if first, _, _ := strings.Cut(comment, "\n"); !strings.Contains(string(text), strings.Fields(first)[0]) {
				t.Errorf("key %s: its comment is not in config default", key)
			}
			ft := f.Type
			switch ft.Kind() {
			case reflect.Struct:
				if !strings.Contains(string(text), "\n["+key+"]\n") {
					t.Errorf("table [%s] is not in config default", key)
				}
				walk(ft, key)
				continue
			case reflect.Map:
				walk(ft.Elem(), key+".HOST")
				continue
			}
			if !regexp.MustCompile(`(?m)^(#   |# )?` + regexp.QuoteMeta(name) + ` = `).Match(text) {
				t.Errorf("key %s is not in config default", key)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
}

// TestCheckListsEveryProblem: one pass reports every unknown key, wrong type and impossible
// value, each with its key and line, sorted by line.
func TestCheckListsEveryProblem(t *testing.T) {
	file := `root = "var/lib/peapod"
state = "/run/peapod"
listen = "/run/` + strings.Repeat("x", 120) + `.sock"
log_level = 3
bogus = true

[network]
conf_dir = "/etc/cni/net.d"
bin_dir = ["/opt/cni/bin"]

[metrics]
address = "127.0.0.1"

[runtime]
pids_limit = -1
shim_binary = ["a"]
handlers = ["test-handler", "Bad_Name"]
`
	c, problems := Check([]byte(file))
	want := []struct {
		key  string
		line int
		msg  string
	}{
		{"root", 1, "must be an absolute path"},
		{"listen", 3, "over the kernel's 107-byte limit"},
		{"log_level", 4, "must be a string, not an integer"},
		{"bogus", 5, "unknown key"},
		{"network.bin_dir", 9, "unknown key"},
		{"metrics.address", 12, "missing port"},
		{"runtime.pids_limit", 15, "must not be negative"},
		{"runtime.shim_binary", 16, "must be a string, not an array"},
		{"runtime.handlers", 17, `"Bad_Name" must be a DNS label`},
	}
	if len(problems) != len(want) {
		t.Fatalf("got %d problems, want %d: %v", len(problems), len(want), problems)
	}
	for i, w := range want {
		p := problems[i]
		if p.Key != w.key || p.Line != w.line || !strings.Contains(p.Msg, w.msg) {
			t.Errorf("problem %d = %+v, want key %s line %d with %q", i, p, w.key, w.line, w.msg)
		}
	}
	if c.State != "/run/peapod" || c.Network.ConfDir != "/etc/cni/net.d" {
		t.Errorf("the good keys were not decoded: %+v", c)
	}
	_, err := Parse("x.toml", []byte(file))
	if err == nil || !strings.Contains(err.Error(), `x.toml:9: key "network.bin_dir": unknown key`) {
		t.Errorf("Parse error: %v", err)
	}
}

func TestSocketPathLimits(t *testing.T) {
	for _, tc := range []struct {
		name, file, key string
	}{
		{"listen at 108 bytes", `listen = "/` + strings.Repeat("l", 107) + `"`, "listen"},
		{"debug socket at 108 bytes", "[debug]\naddress = \"/" + strings.Repeat("d", 107) + `"`, "debug.address"},
		// 26 bytes + /pods/<64>/stream.sock (82) = 108.
		{"state too long for the pod sockets", `state = "/` + strings.Repeat("s", 25) + `"`, "state"},
		{"pprof on metrics without metrics", "[debug]\npprof_on_metrics = true\n", "debug.pprof_on_metrics"},
		{"relative shim", "[runtime]\nshim_binary = \"bin/peapod-shim\"\n", "runtime.shim_binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, problems := Check([]byte(tc.file + "\n"))
			if len(problems) != 1 || problems[0].Key != tc.key || problems[0].Line == 0 {
				t.Errorf("problems = %+v, want one for %s with its line", problems, tc.key)
			}
		})
	}
	// The limits themselves pass.
	for _, file := range []string{
		`listen = "/` + strings.Repeat("l", 106) + `"`,
		`state = "/` + strings.Repeat("s", 24) + `"`,
	} {
		if _, problems := Check([]byte(file)); len(problems) != 0 {
			t.Errorf("%s: %v", file, problems)
		}
	}
}
