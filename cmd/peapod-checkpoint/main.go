// Command peapod-checkpoint is the helper a pod's shim runs, through a peapod-shim-runc
// helper, to checkpoint one of its containers with CRIU through libcontainer
// (shim/libct.Checkpoint). It lives beside peapod-shim-runc and runs only for the length of
// a checkpoint, so that the helper that runs for every create and exec does not carry
// libcontainer's CRIU code (see shim/libct.CheckpointHelper).
//
//	peapod-checkpoint -root DIR -id ID -images-dir DIR -work-dir DIR [-leave-running]
//
// It exits 0 when the dump is written; otherwise it prints why on stderr and exits 2 for
// what this node cannot do (no CRIU, `criu check` failing, a failed dump), 3 for a bad
// request, 1 for anything else.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/shim/libct"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("peapod-checkpoint", flag.ContinueOnError)
	root := fs.String("root", "", "libcontainer's state directory (the shim's <pod state dir>/libct)")
	id := fs.String("id", "", "the container to checkpoint")
	images := fs.String("images-dir", "", "where CRIU writes its images (created if missing)")
	work := fs.String("work-dir", "", "where CRIU writes its log, dump.log (created if missing)")
	leave := fs.Bool("leave-running", false, "let the container run on after the dump")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 3
	}
	if *root == "" || *id == "" || *images == "" || *work == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "peapod-checkpoint: -root, -id, -images-dir and -work-dir are required")
		return 3
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	if err := libct.Checkpoint(ctx, *root, *id, *images, *work, *leave); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return libct.CheckpointExitCode(err)
	}
	return 0
}
