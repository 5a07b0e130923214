// Command peapod-shim is peapod's per-pod monitor (shim/server's Server). The daemon starts a
// pod's monitor as its first stage, `peapod-shim-runc serve --lean peapod-shim`, which
// creates the pod's first containers itself and then re-executes into `peapod-shim serve`
// (shim/serve); `peapod-shim serve` also starts a monitor directly. It runs detached, in its
// own session, and outlives the daemon. It holds the pod's stdio, logs, exits and sockets for
// the pod's whole life, so it links no libcontainer: libcontainer's work (create, exec,
// destroy) runs in short-lived helpers of peapod-shim-runc, the binary beside it, whose
// `pause` is also the pod's PID namespace holder.
//
// It is pure Go: `make build` builds it with CGO_ENABLED=0. The daemon starts it with
// GOMAXPROCS=1 in its environment (shim/client), and `serve` tunes the GC (serve.go): one
// shim runs per pod.
package main

import (
	"fmt"
	"os"

	"github.com/peapod-runtime/peapod/internal/version"
	"github.com/peapod-runtime/peapod/shim/serve"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: peapod-shim serve --pod-id ID --state-dir DIR [--pid-namespace] | version")
		return 2
	}
	switch args[0] {
	case "serve":
		return serve.Serve(args[1:], nil)
	case "version", "--version":
		fmt.Println("peapod-shim", version.String())
		return 0
	}
	fmt.Fprintf(os.Stderr, "peapod-shim: unknown command %q\n", args[0])
	return 2
}
