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
// Importing this package for the Client does not link libcontainer: the Server receives its
// Runtime from cmd/peapod-shim.
//
// Files under a pod's state dir:
//
//	shim.sock        ttrpc socket (SocketPath)
//	shim.log         the shim's own JSON log, and its stderr
//	shim.lock        held (flock) for the shim's lifetime
//	libct/           libcontainer's state root
//	containers/<id>.json  each container's record, rewritten atomically on create, start, exit
package shim
