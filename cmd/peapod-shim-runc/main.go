// Command peapod-shim-runc does peapod-shim's libcontainer work, so that the long-lived
// per-pod monitor links no libcontainer (see shim/server's helperRuntime). It answers:
//
//	peapod-shim-runc serve --pod-id ID --state-dir DIR [--lean BINARY] ...
//	                    a pod's monitor, first stage (shim/serve): it creates the pod's
//	                    first containers in its own process, then re-executes into the lean
//	                    peapod-shim beside it once idle
//	peapod-shim-runc helper --root DIR [--warm]
//	                    one libcontainer job for the shim that started it (create, exec,
//	                    signal, destroy; shim/wire's helper protocol on fd 3), then exits:
//	                    the processes it started are reparented to the shim; --warm (a
//	                    helper started ahead of use) builds its json caches while it waits
//	peapod-shim-runc init
//	                    libcontainer's container init (nsenter's constructor, then Go)
//	peapod-shim-runc pause [UID:GID]
//	                    PID 1 of a pod's shared PID namespace: reaps and sleeps, as the
//	                    pod's user when given, without capabilities; it is handled in C
//	                    before the Go runtime starts (pause.go), so it costs almost no memory
//
// Build: cgo and Debian's libseccomp-dev; -tags seccomp enables seccomp profiles. `make build`
// links it statically (see SHIM_TAGS in the Makefile); a plain dynamic build works the same:
//
//	go build -tags "seccomp netgo osusergo" -ldflags "-s -w -linkmode external -extldflags -static" \
//	    -o bin/peapod-shim-runc ./cmd/peapod-shim-runc
package main

import (
	"fmt"
	"os"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/peapod-runtime/peapod/internal/version"
)

// init is libcontainer's re-exec hook, the one init() peapod allows: `peapod-shim-runc init`
// has already been through nsenter's C constructor and must become the container's init
// before main runs.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: peapod-shim-runc serve ... | helper --root DIR | version")
		return 2
	}
	switch args[0] {
	case "helper":
		return helper(args[1:])
	case "serve":
		return firstStage(args[1:])
	case "version", "--version":
		fmt.Println("peapod-shim-runc", version.String())
		return 0
	case "pause":
		// pause.go's constructor runs the holder before Go starts; getting here means the
		// binary was built without it.
		fmt.Fprintln(os.Stderr, "peapod-shim-runc: pause holder not compiled in")
		return 1
	}
	fmt.Fprintf(os.Stderr, "peapod-shim-runc: unknown command %q\n", args[0])
	return 2
}
