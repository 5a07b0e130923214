package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestSummary(t *testing.T) {
	old := Skips
	t.Cleanup(func() { Skips = old })
	Skips = []Skip{{Spec: "Foo cannot run here", Reason: "test"}}
	report := `<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="E2eNode Suite">
    <testcase name="[SynchronizedBeforeSuite]" status="passed"></testcase>
    <testcase name="[It] a passes [NodeConformance]" status="passed"></testcase>
    <testcase name="[It] b fails [NodeConformance]" status="failed"><failure type="failed">boom</failure></testcase>
    <testcase name="[It] c times out [NodeConformance]" status="timedout"></testcase>
    <testcase name="[It] d skips itself [NodeConformance]" status="skipped"><skipped message="skipped - no GPU"></skipped></testcase>
    <testcase name="[It] e is not selected [Serial]" status="skipped"><skipped message="skipped"></skipped></testcase>
    <testcase name="Foo [It] cannot run here [NodeConformance]" status="skipped"><skipped message="skipped"></skipped></testcase>
    <testcase name="[SynchronizedAfterSuite]" status="passed"></testcase>
  </testsuite>
</testsuites>`
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	failed, err := summary(path)
	os.Stdout = stdout
	_ = w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 4096)
	n, _ := r.Read(out)
	if failed != 2 {
		t.Errorf("failed = %d, want 2", failed)
	}
	if want := regexp.MustCompile(`(?m)^1 passed, 2 failed, 2 skipped$`); !want.Match(out[:n]) {
		t.Errorf("output:\n%s\nwant the closing line 1 passed, 2 failed, 2 skipped", out[:n])
	}
}

func TestSkipRegexMatchesEverySkip(t *testing.T) {
	re := regexp.MustCompile(SkipRegex())
	for _, s := range Skips {
		if s.Reason == "" {
			t.Errorf("%q has no reason", s.Spec)
		}
		if !re.MatchString("[sig-node] " + s.Spec + " [NodeConformance]") {
			t.Errorf("the skip regex does not match %q", s.Spec)
		}
	}
	if re.MatchString("[sig-node] Pods should get a host IP [NodeConformance]") {
		t.Errorf("the skip regex matches a spec not listed")
	}
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	write := func(name, cases string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(`<testsuites><testsuite name="s">`+cases+`</testsuite></testsuites>`), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ref := write("a.xml", `<testcase name="x" status="passed"></testcase><testcase name="y" status="passed"></testcase><testcase name="z" status="failed"><failure/></testcase>`)
	got := write("b.xml", `<testcase name="x" status="passed"></testcase><testcase name="y" status="failed"><failure/></testcase><testcase name="z" status="passed"></testcase>`)
	stdout := os.Stdout
	null, _ := os.Open(os.DevNull)
	os.Stdout = null
	n, err := compare(ref, got)
	os.Stdout = stdout
	if err != nil || n != 1 {
		t.Errorf("compare = %d, %v; want 1 (y)", n, err)
	}
}
