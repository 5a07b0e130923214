// Package shim is peapod's per-pod monitor: the API between the daemon and a pod's
// peapod-shim process, the daemon-side Client, and the shim-side Server.
//
// One shim runs per pod, in its own session, and outlives daemon restarts. It is the parent
// and child subreaper of the pod's containers (created through a Runtime, which shim/libct
// implements with runc's libcontainer), holds their stdio, writes their output to CRI-format
// log files, reaps every child at once, and persists each container's exit before it reports
// it. The daemon reconnects after a restart and asks the shim for state: the shim's answer is
// authoritative.
//
// Interactive exec and attach (Client.Exec, Client.Attach) do not go over ttrpc, whose streams
// have no flow control: each session is a connection to a second socket, carrying the small
// framed protocol of stream.go, so that backpressure is the socket's. An exec's output waits
// for its client; a container's output never does: attached clients get it through bounded
// queues beside the log, and one that falls too far behind is detached.
//
// Importing this package for the Client does not link libcontainer: the Server receives its
// Runtime from cmd/peapod-shim.
//
// Files under a pod's state dir:
//
//	shim.sock        ttrpc socket (SocketPath)
//	stream.sock      interactive exec and attach sessions (StreamSocketPath)
//	shim.log         the shim's own JSON log, and its stderr
//	shim.lock        held (flock) for the shim's lifetime
//	libct/           libcontainer's state root
//	containers/<id>.json  each container's record, rewritten atomically on create, start, exit
package shim
