package archtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMELayoutListsEveryPackage: the README's layout table names every package, so a new
// package without a line there fails here.
func TestREADMELayoutListsEveryPackage(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "## Layout")
	if start < 0 {
		t.Fatal("README.md has no ## Layout section")
	}
	layout := readme[start:]
	if end := strings.Index(layout[len("## Layout"):], "\n## "); end >= 0 {
		layout = layout[:len("## Layout")+end]
	}
	for _, p := range listPackages(t) {
		name := rel(p.ImportPath)
		if name == "" {
			continue
		}
		if !strings.Contains(layout, "`"+name+"`") {
			t.Errorf("README.md's layout table does not list %s", name)
		}
	}
}
