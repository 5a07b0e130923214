// Command sh is /bin/sh of the node e2e busybox images (critest/e2eimages). Upstream's
// busybox 1.37 ash passes environment variables whose names are not shell identifiers
// ("data-1", what Secret and ConfigMap keys become) on to the commands it runs; Debian's 1.35
// ash, which these images carry, drops them. So sh runs busybox's ash, with the same
// arguments, unless the environment holds such a variable: then it runs bash, which passes
// them on. Everything else (ash's messages, which specs compare) stays ash's.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	target := "/bin/busybox"
	if hasNonIdentifier(os.Environ()) {
		target = "/bin/bash"
	}
	// argv[0] stays: busybox picks its applet from it, bash its POSIX mode ("sh").
	err := syscall.Exec(target, os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "sh: exec %s: %v\n", target, err)
	os.Exit(127)
}

// hasNonIdentifier says whether a variable's name is not [A-Za-z_][A-Za-z0-9_]*.
func hasNonIdentifier(env []string) bool {
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !identifier(name) {
			return true
		}
	}
	return false
}

func identifier(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
