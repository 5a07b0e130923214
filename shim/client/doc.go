// Package client is the daemon's side of the pod monitor: Start launches a pod's
// peapod-shim, Connect reaches a running one (after a daemon restart too), and a Client makes
// the calls, over the call socket (shim/wire's call protocol) for control and over the stream
// socket for interactive exec and attach. It turns the wire's class names back into errdefs
// classes, and a shim
// that cannot be reached into errdefs.ErrUnavailable. It runs in the daemon only and never
// links libcontainer.
package client
