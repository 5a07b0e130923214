package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/peapod-runtime/peapod/config"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// makeIn runs make target in the repository with the go of this test on PATH.
func makeIn(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-s", "-C", root}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(runtime.GOROOT(), "bin")+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// files lists the regular files below dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestMakeInstall: make install DESTDIR= PREFIX= puts the binaries, the CNI plugins, the
// unit and the default config in place; systemd-analyze verify accepts the unit; a config
// already there is kept; make uninstall removes what install added and nothing else.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP-REASON: -short skips the build make install runs")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("SKIP-REASON: no make on PATH")
	}
	root := repoRoot(t)
	dest := t.TempDir()
	// Something of the operator's that uninstall must leave alone.
	other := filepath.Join(dest, "usr/local/bin/kubelet")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := files(t, dest)

	makeIn(t, root, "install", "DESTDIR="+dest)
	want := []string{
		"etc/peapod/config.toml", "etc/systemd/system/peapod.service",
		"usr/local/bin/kubelet", "usr/local/bin/peapod", "usr/local/bin/peapod-checkpoint", "usr/local/bin/peapod-shim", "usr/local/bin/peapod-shim-runc",
		"usr/local/lib/peapod/cni/bridge", "usr/local/lib/peapod/cni/host-local",
		"usr/local/lib/peapod/cni/loopback", "usr/local/lib/peapod/cni/portmap",
	}
	if got := files(t, dest); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("installed files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	def, err := config.DefaultTOML()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dest, "etc/peapod/config.toml")
	if got, _ := os.ReadFile(conf); !bytes.Equal(got, def) {
		t.Errorf("installed config.toml is not `peapod config default`:\n%s", got)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/peapod.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"Type=notify", "ExecStart=/usr/local/bin/peapod --config /etc/peapod/config.toml",
		"KillMode=process", "Delegate=yes", "Restart=on-failure", "LimitNOFILE=1048576",
		"unix:///run/peapod/peapod.sock",
	} {
		if !strings.Contains(string(unit), line) {
			t.Errorf("unit lacks %q:\n%s", line, unit)
		}
	}
	verifyUnit(t, dest, "/etc/systemd/system/peapod.service")

	// A config of the operator's survives install and uninstall.
	edited := append(append([]byte(nil), def...), []byte("# edited\n")...)
	if err := os.WriteFile(conf, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	makeIn(t, root, "install", "DESTDIR="+dest)
	if got, _ := os.ReadFile(conf); !bytes.Equal(got, edited) {
		t.Error("install replaced an existing config.toml")
	}
	makeIn(t, root, "uninstall", "DESTDIR="+dest)
	if got := files(t, dest); strings.Join(got, " ") != "etc/peapod/config.toml usr/local/bin/kubelet" {
		t.Errorf("after uninstall with an edited config: %v", got)
	}
	// An untouched default config goes with the rest.
	if err := os.WriteFile(conf, def, 0o644); err != nil {
		t.Fatal(err)
	}
	makeIn(t, root, "install", "DESTDIR="+dest)
	makeIn(t, root, "uninstall", "DESTDIR="+dest)
	if got := files(t, dest); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Errorf("after uninstall: %v, want what was there before install: %v", got, before)
	}
	for _, dir := range []string{"etc/peapod", "usr/local/lib/peapod"} {
		if _, err := os.Stat(filepath.Join(dest, dir)); err == nil {
			t.Errorf("uninstall left %s", dir)
		}
	}

	// PREFIX moves the binaries and the unit's ExecStart with them.
	dest2 := t.TempDir()
	makeIn(t, root, "install", "DESTDIR="+dest2, "PREFIX=/opt/peapod")
	unit2, err := os.ReadFile(filepath.Join(dest2, "etc/systemd/system/peapod.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit2), "ExecStart=/opt/peapod/bin/peapod --config /etc/peapod/config.toml") {
		t.Errorf("PREFIX=/opt/peapod unit:\n%s", unit2)
	}
	for _, f := range []string{"opt/peapod/bin/peapod", "opt/peapod/bin/peapod-shim", "opt/peapod/bin/peapod-shim-runc", "opt/peapod/lib/peapod/cni/bridge"} {
		if _, err := os.Stat(filepath.Join(dest2, f)); err != nil {
			t.Errorf("PREFIX=/opt/peapod: %v", err)
		}
	}
	verifyUnit(t, dest2, "/etc/systemd/system/peapod.service")
}

// verifyUnit runs systemd-analyze verify on the unit installed in the tree dest (its
// ExecStart is checked there), with the host's targets and /bin/kill copied in for the
// dependencies and the ExecReload it names, and fails on any complaint. It also checks that verify does complain about a
// broken copy of the unit, so a silent verify means something.
func verifyUnit(t *testing.T, dest, unit string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIP-REASON: no systemd-analyze (Debian's systemd package; hack/install-deps.sh installs it)")
	}
	targets, _ := filepath.Glob("/lib/systemd/system/*.target")
	if len(targets) == 0 {
		t.Skip("SKIP-REASON: no systemd targets in /lib/systemd/system to verify the unit's dependencies against")
	}
	lib := filepath.Join(dest, "lib/systemd/system")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(filepath.Join(dest, "lib"))
	for _, target := range targets {
		raw, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lib, filepath.Base(target)), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// ExecReload's /bin/kill is the host's: copy it in too.
	kill, err := os.ReadFile("/bin/kill")
	if err != nil {
		t.Skipf("SKIP-REASON: the unit's ExecReload runs /bin/kill: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dest, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(filepath.Join(dest, "bin"))
	if err := os.WriteFile(filepath.Join(dest, "bin/kill"), kill, 0o755); err != nil {
		t.Fatal(err)
	}
	verify := func(u string) (string, error) {
		out, err := exec.Command(analyze, "verify", "--root="+dest, u).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := verify(unit); err != nil || out != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dest, unit))
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(filepath.Dir(unit), "peapod-broken.service")
	bad := strings.Replace(string(raw), "KillMode=process", "KillMode=process\nKilMode=none", 1)
	bad = strings.Replace(bad, "/peapod --config", "/no-such-peapod --config", 1)
	if err := os.WriteFile(filepath.Join(dest, broken), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(dest, broken))
	if out, err := verify(broken); err == nil || !strings.Contains(out, "KilMode") || !strings.Contains(out, "no-such-peapod") {
		t.Errorf("systemd-analyze verify of a broken unit: %v\n%s", err, out)
	}
}
