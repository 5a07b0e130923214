package main

import (
	"fmt"
	"io"
	"os"

	"github.com/peapod-runtime/peapod/config"
)

// configCommand runs `peapod config default` (the whole default config, commented, on
// stdout) and `peapod config check FILE` (every problem of FILE with its key and line, exit
// 1 when there is one), the checks the daemon makes at start.
func configCommand(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: peapod config default | peapod config check FILE"
	switch {
	case len(args) == 1 && args[0] == "default":
		text, err := config.DefaultTOML()
		if err != nil {
			fmt.Fprintf(stderr, "peapod: %v\n", err)
			return 1
		}
		if _, err := stdout.Write(text); err != nil {
			return 1
		}
		return 0
	case len(args) == 2 && args[0] == "check":
		raw, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "peapod: %v\n", err)
			return 1
		}
		_, problems := config.Check(raw)
		for _, p := range problems {
			fmt.Fprintln(stdout, p.In(args[1]))
		}
		if len(problems) > 0 {
			fmt.Fprintf(stderr, "peapod: %s: %d problem(s)\n", args[1], len(problems))
			return 1
		}
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}
