package volumes

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestResolvConf(t *testing.T) {
	for _, tc := range []struct {
		name string
		dns  *DNSConfig
		want string // "" means nil: copy the host's
	}{
		{"nil", nil, ""},
		{"empty", &DNSConfig{}, ""},
		{"full", &DNSConfig{
			Servers:  []string{"10.96.0.10", "fd00::a"},
			Searches: []string{"default.svc.cluster.local", "svc.cluster.local"},
			Options:  []string{"ndots:5", "edns0"},
		}, "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5 edns0\n"},
		{"servers only", &DNSConfig{Servers: []string{"1.1.1.1"}}, "nameserver 1.1.1.1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ResolvConf(tc.dns)
			if tc.want == "" {
				if got != nil {
					t.Fatalf("got %q, want nil", got)
				}
				return
			}
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWritePodFiles(t *testing.T) {
	host := t.TempDir()
	hostResolv := filepath.Join(host, "resolv.conf")
	hostHosts := filepath.Join(host, "hosts")
	mustWrite(t, hostResolv, "nameserver 192.0.2.1\n", 0o644)
	mustWrite(t, hostHosts, "127.0.0.1 localhost node1\n", 0o644)

	for _, tc := range []struct {
		name       string
		files      PodFiles
		wantResolv string
		wantHosts  string
	}{
		{
			name:       "pod network, host dns",
			files:      PodFiles{Hostname: "web-0", IPs: []string{"10.89.0.5", "fd00::5"}},
			wantResolv: "nameserver 192.0.2.1\n",
			wantHosts: "# peapod-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
				"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n" +
				"10.89.0.5\tweb-0\nfd00::5\tweb-0\n",
		},
		{
			name:       "host network, cluster dns",
			files:      PodFiles{Hostname: "node1", HostNetwork: true, DNS: &DNSConfig{Servers: []string{"10.96.0.10"}}},
			wantResolv: "nameserver 10.96.0.10\n",
			wantHosts:  "127.0.0.1 localhost node1\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.files
			f.Dir = filepath.Join(t.TempDir(), "pod")
			f.HostResolvConf, f.HostHosts = hostResolv, hostHosts
			p, err := WritePodFiles(f)
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range map[string]string{
				p.Hostname: f.Hostname + "\n", p.ResolvConf: tc.wantResolv, p.Hosts: tc.wantHosts,
			} {
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want {
					t.Errorf("%s = %q, want %q", filepath.Base(path), got, want)
				}
				if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
					t.Errorf("%s mode %v", path, fi.Mode())
				}
			}
			// A second write (a retried pod creation) replaces in place.
			f.Hostname = "renamed"
			if _, err := WritePodFiles(f); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(p.Hostname); string(got) != "renamed\n" {
				t.Fatalf("rewritten hostname = %q", got)
			}
		})
	}
}

func TestWritePodFilesRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	mustWrite(t, victim, "keep", 0o644)
	mustSymlink(t, victim, filepath.Join(dir, "hostname"))
	if _, err := WritePodFiles(PodFiles{Dir: dir, Hostname: "x", DNS: &DNSConfig{Servers: []string{"1.1.1.1"}}}); err == nil {
		t.Fatal("wrote through a symlink")
	}
	if got, _ := os.ReadFile(victim); string(got) != "keep" {
		t.Fatalf("victim changed: %q", got)
	}
}

func TestPodMounts(t *testing.T) {
	p := PodFilePaths{Hostname: "/pod/hostname", ResolvConf: "/pod/resolv.conf", Hosts: "/pod/hosts", Shm: "/pod/shm"}
	dests := func(ro bool, cm []Mount) (out []string) {
		for _, m := range PodMounts(p, ro, cm) {
			out = append(out, m.Destination+":"+m.Options[2])
		}
		return out
	}
	if got, want := dests(false, nil), []string{"/etc/hostname:rw", "/etc/resolv.conf:rw", "/etc/hosts:rw", "/dev/shm:rw"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// The kubelet's own /etc/hosts wins; a read-only rootfs makes the files read-only but not shm.
	got := dests(true, []Mount{{ContainerPath: "/etc/hosts", HostPath: "/k/etc-hosts"}})
	if want := []string{"/etc/hostname:ro", "/etc/resolv.conf:ro", "/dev/shm:rw"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, m := range PodMounts(p, false, nil) {
		if m.Destination == DevShm && !slices.Equal(m.Options, []string{"rbind", "rprivate", "rw", "nosuid", "nodev", "noexec"}) {
			t.Fatalf("shm options %v", m.Options)
		}
	}
	if got := PodMounts(PodFilePaths{}, false, nil); len(got) != 0 {
		t.Fatalf("empty paths gave %v", got)
	}
}
