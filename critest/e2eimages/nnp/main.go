// Command nnp prints the effective uid it runs with ("Effective uid: N"). critest/e2eimages
// installs it setuid root in the nonewprivs image: run by a non-root user it prints 0 unless
// no_new_privs stopped the setuid bit (allowPrivilegeEscalation: false).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
