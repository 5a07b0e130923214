// Command peapod-shim is peapod's per-pod monitor (shim/server's Server over shim/libct).
// The daemon starts one per pod with `peapod-shim serve`; it runs detached, in its own
// session, and outlives the daemon. The same binary answers two re-executions:
//
//	peapod-shim init    libcontainer's container init (nsenter's constructor, then Go)
//	peapod-shim pause [UID:GID]
//	                    PID 1 of a pod's shared PID namespace: reaps and sleeps, as the
//	                    pod's user when given, without capabilities; it is handled in C
//	                    before the Go runtime starts (pause.go), so it costs almost no memory
//
// Build: cgo and Debian's libseccomp-dev; -tags seccomp enables seccomp profiles. `make build`
// links it statically (see SHIM_TAGS in the Makefile); a plain dynamic build works the same:
//
//	go build -tags "seccomp netgo osusergo" -ldflags "-s -w -linkmode external -extldflags -static" \
//	    -o bin/peapod-shim ./cmd/peapod-shim
//
// `serve` starts with one P (procs.go) and tunes the GC (serve.go): one shim runs per pod.
package main

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// init is libcontainer's re-exec hook, the one init() peapod allows: `peapod-shim init` has
// already been through nsenter's C constructor and must become the container's init before
// main runs.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
}

func main() {
	os.Exit(run(os.Args[1:]))
}
