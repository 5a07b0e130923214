package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A /proc/sysvipc/shm as kernel 6.18 writes it (perms in octal).
const sysvShm = `       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
-1431937716          4   644                  4096  2316     0      0     0     0     0     0          0          0 1796601000                     0                     0
         0      32769  1600               1048576  2400  2401      1  1000  1000  1000  1000          0          0 1796601001                     0                     0
`

func TestIpcsListsSegments(t *testing.T) {
	p := filepath.Join(t.TempDir(), "shm")
	if err := os.WriteFile(p, []byte(sysvShm), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := ipcs(&out, p); err != nil {
		t.Fatalf("ipcs: %v", err)
	}
	lines := strings.Split(out.String(), "\n")
	want := [][]string{
		{"0xaaa65d4c", "4", "0", "644", "4096", "0"},
		{"0x00000000", "32769", "1000", "1600", "1048576", "1"},
	}
	var got [][]string
	for _, l := range lines {
		if strings.HasPrefix(l, "0x") {
			got = append(got, strings.Fields(l))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("ipcs printed %d segments, want %d:\n%s", len(got), len(want), out.String())
	}
	for i := range want {
		if strings.Join(got[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("segment %d: %q, want %q", i, got[i], want[i])
		}
	}
	if !strings.Contains(out.String(), "------ Shared Memory Segments --------") {
		t.Errorf("no util-linux header:\n%s", out.String())
	}
}

func TestNginxPort(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "default.conf")
	if p, err := nginxPort(conf); err != nil || p != 80 {
		t.Errorf("no config: %d, %v; want 80", p, err)
	}
	for body, want := range map[string]int{
		"server {\n    listen       12003;\n    server_name  localhost;\n}\n": 12003,
		"server {\n    server_name  localhost;\n}\n":                          80,
	} {
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if p, err := nginxPort(conf); err != nil || p != want {
			t.Errorf("%q: %d, %v; want %d", body, p, err, want)
		}
	}
	if err := os.WriteFile(conf, []byte("listen 99999;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := nginxPort(conf); err == nil {
		t.Error("port 99999 accepted")
	}
}

func TestUnknownApplet(t *testing.T) {
	if err := run("standin", "/standin", nil); err == nil || !strings.Contains(err.Error(), "unknown applet") {
		t.Errorf("run as standin: %v, want unknown applet", err)
	}
}
