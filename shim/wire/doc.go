// Package wire is what crosses between the daemon and a pod's shim besides the ttrpc
// messages of shim/api: the framed protocol of interactive exec and attach sessions, the
// message a starting shim writes on its ready fd, and the one table of errdefs classes that
// cross the process boundary (as ttrpc status codes and as names). Both sides import it.
package wire
