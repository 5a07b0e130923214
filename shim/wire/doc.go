// Package wire is everything that crosses between the daemon and a pod's shim: the call
// protocol of the daemon's API to the shim (call.go), the stream protocol of interactive exec
// and attach sessions (frame.go), the message a starting shim writes on its ready fd, the
// helper protocol, and the one table of errdefs classes that cross the process boundary
// (by name). Both sides import it.
package wire
