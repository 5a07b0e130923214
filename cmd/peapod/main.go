// Command peapod is the peapod daemon: it serves the Kubernetes Container Runtime Interface
// on a unix socket and wires every package of the runtime together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/peapod-runtime/peapod/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, so that every deferred cleanup runs.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "config" {
		return configCommand(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "daemon" {
		args = args[1:]
	}
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintln(stderr, "peapod", version.String())
		return 0
	}
	fs := flag.NewFlagSet("peapod", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f flags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "peapod: unexpected argument %q (usage: peapod [daemon] [flags] | peapod config default | peapod config check FILE)\n", fs.Arg(0))
		return 2
	}
	cfg, err := f.config(fs)
	if err != nil {
		fmt.Fprintf(stderr, "peapod: %v\n", err)
		return 1
	}
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runDaemon(ctx, cfg, f.configPath, stderr); err != nil {
		fmt.Fprintf(stderr, "peapod: %v\n", err)
		return 1
	}
	return 0
}

// daemonGCPercent is the daemon's default GOGC. Its live heap is small (6 to 10 MiB with 110
// pods), so Go's default of 100 lets the heap, and the RSS that follows it, double before a
// collection. Measured on the 110-pod density bench (daemon RSS at idle; collections and the
// GC's share of the daemon's cpu while the pods start): 100: 47 MiB, 18 GCs, 1.5 %; 50: 43
// MiB, 49 GCs, 3.1 %; 25: 41 MiB, 90 GCs, 6.7 %. 50 takes most of the memory for little cpu
// on the start-up path; pulls and idle cpu are unchanged at either.
const daemonGCPercent = 50

// tuneGC sets the daemon's GC target unless GOGC in the environment chooses one.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
}
