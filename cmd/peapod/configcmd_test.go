package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigDefaultChecksClean: what `peapod config default` prints, `peapod config check`
// accepts (exit 0, nothing printed).
func TestConfigDefaultChecksClean(t *testing.T) {
	var out, errOut bytes.Buffer
	if rc := run([]string{"config", "default"}, &out, &errOut); rc != 0 {
		t.Fatalf("config default: exit %d: %s", rc, errOut.String())
	}
	file := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var checkOut bytes.Buffer
	if rc := run([]string{"config", "check", file}, &checkOut, &errOut); rc != 0 || checkOut.Len() != 0 {
		t.Errorf("config check of config default: exit %d\n%s%s", rc, checkOut.String(), errOut.String())
	}
}

// TestConfigCheckListsEachProblem: a broken file exits 1 with one line per problem, each
// naming the file, the line and the key.
func TestConfigCheckListsEachProblem(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.toml")
	doc := "root = \"relative/root\"\nlog_level = 2\n[network]\nconf_dirs = \"/etc/cni/net.d\"\n[debug]\naddress = \"/" + strings.Repeat("d", 110) + "\"\n"
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	rc := run([]string{"config", "check", file}, &out, &errOut)
	if rc != 1 {
		t.Errorf("exit %d, want 1", rc)
	}
	want := []string{
		file + `:1: key "root": "relative/root" must be an absolute path`,
		file + `:2: key "log_level": must be a string, not an integer`,
		file + `:4: key "network.conf_dirs": unknown key`,
		file + `:6: key "debug.address": socket path`,
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], w)
		}
	}
	if !strings.Contains(errOut.String(), "4 problem(s)") {
		t.Errorf("stderr: %q", errOut.String())
	}
}

func TestConfigUsage(t *testing.T) {
	for _, args := range [][]string{{"config"}, {"config", "check"}, {"config", "show"}} {
		var out, errOut bytes.Buffer
		if rc := run(args, &out, &errOut); rc != 2 || !strings.Contains(errOut.String(), "usage") {
			t.Errorf("%v: exit %d, %q", args, rc, errOut.String())
		}
	}
}
