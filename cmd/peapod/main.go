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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runDaemon(ctx, cfg, f.configPath, stderr); err != nil {
		fmt.Fprintf(stderr, "peapod: %v\n", err)
		return 1
	}
	return 0
}
