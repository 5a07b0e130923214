package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's config reference from DefaultTOML")

const readmeMarker = "<!-- config default: generated;"

// TestREADMEConfig: the README's config reference is `peapod config default`, byte for byte
// (run with -update-readme to regenerate it after changing the schema).
func TestREADMEConfig(t *testing.T) {
	path := filepath.Join("..", "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := DefaultTOML()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(readme, []byte(readmeMarker))
	if i < 0 {
		t.Fatalf("README.md has no %q line", readmeMarker)
	}
	open := []byte("```toml\n")
	j := bytes.Index(readme[i:], open)
	if j < 0 {
		t.Fatal("no ```toml block after the marker")
	}
	start := i + j + len(open)
	k := bytes.Index(readme[start:], []byte("```\n"))
	if k < 0 {
		t.Fatal("the README's config block does not end")
	}
	got := readme[start : start+k]
	if bytes.Equal(got, want) {
		return
	}
	if *updateReadme {
		out := append(append(append([]byte(nil), readme[:start]...), want...), readme[start+k:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the config reference in %s", path)
		return
	}
	t.Errorf("README.md's config reference differs from `peapod config default`; run go test ./config -run TestREADMEConfig -update-readme\nREADME:\n%s\nconfig default:\n%s", got, want)
}
