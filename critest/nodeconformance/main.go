// Command nodeconformance is what hack/node-conformance.sh (make node-conformance) needs from
// Go:
//
//	nodeconformance registry -addr 127.0.0.1:5102 -agnhost BIN [-agnhost-src DIR]
//	    serves critest/framework's test images and every image critest/e2eimages builds for
//	    Kubernetes' node e2e suite until SIGTERM or SIGINT; prints "ready" on stdout once they
//	    are pushed, and at exit every image name that was asked for and not served.
//	nodeconformance skip-regex
//	    prints the ginkgo -skip regular expression of the specs skipped by name (skips.go).
//	nodeconformance skips
//	    prints each spec skipped by name with its reason.
//	nodeconformance compare -passed CONTAINERD.xml -failed PEAPOD.xml
//	    prints every spec that passed in the first report and did not pass in the second (and
//	    how many); exits 1 when there is one.
//	nodeconformance summary -junit FILE
//	    reads ginkgo's JUnit report and prints every failed spec, then one closing line
//	    "N passed, N failed, N skipped"; exits 1 when a spec failed.
package main

import (
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/peapod-runtime/peapod/critest/e2eimages"
	"github.com/peapod-runtime/peapod/critest/framework"
)

func main() { os.Exit(run()) }

// run does the command of os.Args and returns the exit code.
func run() int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nodeconformance registry|skip-regex|skips|summary [flags]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "registry":
		fs := flag.NewFlagSet("registry", flag.ExitOnError)
		addr := fs.String("addr", "127.0.0.1:5102", "address to serve the registry on")
		agnhost := fs.String("agnhost", "", "a static agnhost binary (hack/k8s-build.sh agnhost)")
		agnhostSrc := fs.String("agnhost-src", "", "k8s.io/kubernetes' test/images/agnhost directory (porter's certificates)")
		_ = fs.Parse(os.Args[2:])
		err = serveRegistry(ctx, *addr, e2eimages.Options{Agnhost: *agnhost, AgnhostSource: *agnhostSrc})
	case "skip-regex":
		fmt.Println(SkipRegex())
	case "skips":
		for _, s := range Skips {
			fmt.Printf("%s\n    %s\n", s.Spec, s.Reason)
		}
	case "compare":
		fs := flag.NewFlagSet("compare", flag.ExitOnError)
		ref := fs.String("passed", "", "the JUnit report of the reference runtime (e.g. containerd)")
		got := fs.String("failed", "", "the JUnit report of the runtime under test (peapod)")
		_ = fs.Parse(os.Args[2:])
		var n int
		n, err = compare(*ref, *got)
		if err == nil && n > 0 {
			return 1
		}
	case "summary":
		fs := flag.NewFlagSet("summary", flag.ExitOnError)
		junit := fs.String("junit", "", "ginkgo's JUnit report")
		_ = fs.Parse(os.Args[2:])
		var failed int
		failed, err = summary(*junit)
		if err == nil && failed > 0 {
			return 1
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeconformance:", err)
		return 1
	}
	return 0
}

func serveRegistry(ctx context.Context, addr string, o e2eimages.Options) error {
	reg, err := framework.NewRegistry(ctx, framework.WithRegistryAddr(addr))
	if err != nil {
		return err
	}
	defer reg.Close() //nolint:errcheck
	imgs, err := e2eimages.Build(ctx, o)
	if err != nil {
		return fmt.Errorf("build the node e2e images: %w", err)
	}
	todo := map[name.Reference]remote.Taggable{}
	for n, img := range imgs {
		ref, err := name.ParseReference(reg.Ref(n), name.Insecure)
		if err != nil {
			return fmt.Errorf("parse %s: %w", n, err)
		}
		todo[ref] = img
	}
	if err := remote.MultiWrite(todo, reg.RemoteOptions(ctx)...); err != nil {
		return fmt.Errorf("push the node e2e images: %w", err)
	}
	reg.ResetRequests()
	fmt.Println("ready")
	<-ctx.Done()
	missed := map[string]bool{}
	for _, r := range reg.Requests() {
		if r.Kind == "manifest" && r.Status == http.StatusNotFound {
			missed[r.Repo+":"+r.Ref] = true
		}
	}
	names := make([]string, 0, len(missed))
	for n := range missed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Println("not served:", n)
	}
	return nil
}

// junitSuites is the part of ginkgo's JUnit report read here.
type junitSuites struct {
	Suites []struct {
		Cases []struct {
			Name    string `xml:"name,attr"`
			Status  string `xml:"status,attr"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
			} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func summary(path string) (int, error) {
	if path == "" {
		return 0, errors.New("-junit is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read the JUnit report: %w", err)
	}
	var s junitSuites
	if err := xml.Unmarshal(b, &s); err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	skipRE := regexp.MustCompile(SkipRegex())
	var passed, failed, skipped int
	for _, suite := range s.Suites {
		for _, c := range suite.Cases {
			// The suite's own nodes ([SynchronizedBeforeSuite] ...) count only when they fail.
			node := strings.HasPrefix(c.Name, "[SynchronizedBeforeSuite]") || strings.HasPrefix(c.Name, "[SynchronizedAfterSuite]") ||
				strings.HasPrefix(c.Name, "[BeforeSuite]") || strings.HasPrefix(c.Name, "[AfterSuite]") || strings.HasPrefix(c.Name, "[ReportAfterSuite]")
			switch {
			case c.Failure != nil || c.Error != nil || c.Status == "failed" || c.Status == "panicked" || c.Status == "timedout" || c.Status == "interrupted" || c.Status == "aborted":
				failed++
				fmt.Println("FAILED:", c.Name)
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				// Specs outside the selection are reported as plain "skipped" too: only the
				// selection's count, those a spec skipped itself ("skipped - reason") and
				// those of the skip list.
				if !node && c.Skipped != nil && (strings.HasPrefix(c.Skipped.Message, "skipped - ") || skipRE.MatchString(strings.Replace(c.Name, "[It] ", "", 1))) {
					skipped++
				}
			default:
				if !node {
					passed++
				}
			}
		}
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	return failed, nil
}

// states reads a JUnit report into spec name -> "passed", "failed" or "skipped".
func states(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the JUnit report: %w", err)
	}
	var s junitSuites
	if err := xml.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	out := map[string]string{}
	for _, suite := range s.Suites {
		for _, c := range suite.Cases {
			switch {
			case c.Failure != nil || c.Error != nil || (c.Status != "passed" && c.Status != "skipped" && c.Status != "pending" && c.Status != ""):
				out[c.Name] = "failed"
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				out[c.Name] = "skipped"
			default:
				out[c.Name] = "passed"
			}
		}
	}
	return out, nil
}

func compare(passedPath, failedPath string) (int, error) {
	if passedPath == "" || failedPath == "" {
		return 0, errors.New("-passed and -failed are required")
	}
	ref, err := states(passedPath)
	if err != nil {
		return 0, err
	}
	got, err := states(failedPath)
	if err != nil {
		return 0, err
	}
	var names []string
	for n, st := range ref {
		if st == "passed" && got[n] != "passed" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("passed there, %s here: %s\n", got[n], n)
	}
	fmt.Printf("%d specs passed in %s and did not in %s\n", len(names), passedPath, failedPath)
	return len(names), nil
}
