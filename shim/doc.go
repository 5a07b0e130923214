// Package shim is peapod's per-pod monitor, seen from both of its processes: what the daemon
// and a pod's peapod-shim share. The monitor is split by the process a file runs in:
//
//	shim            (this package) both: the types of the API (ContainerState, the
//	                options), the state dir's paths and on-disk records, the log file
//	                opener, the PID-holder file
//	shim/client     the daemon: Start, Connect and the Client
//	shim/server     peapod-shim: the Server, reaping, stdio, CRI log writer, sessions,
//	                libcontainer's work through peapod-shim-runc helpers
//	shim/wire       both: the call protocol (the daemon's API to the shim), the framed
//	                stream protocol, the ready message, and the one table of error
//	                classes that cross the process boundary
//	shim/libct      peapod-shim-runc: containers through libcontainer (a leaf)
//
// One shim runs per pod, in its own session, and outlives daemon restarts. It is the parent
// and child subreaper of the pod's containers (created by short-lived peapod-shim-runc
// helpers with shim/libct, runc's libcontainer), holds their stdio, writes their output to
// CRI-format log files, reaps every child at once, and persists each container's exit before
// it reports it. The daemon reconnects after a restart and asks the shim for state: the
// shim's answer is authoritative. Before a create the daemon sends Prepare, so that the
// shim's helper starts while the daemon prepares the rootfs and spec.
//
// The daemon's calls share one connection to the shim's socket (shim/wire's call protocol:
// JSON requests and answers in frames, no protobuf: the shim links only what it needs).
// Interactive exec and attach (client.Client.Exec, Attach) do not share it: each session is a
// connection to a second socket, carrying shim/wire's framed stream protocol, so that
// backpressure is the socket's and one slow session never stalls the pod's calls. An exec's output waits
// for its client; a container's output never does: attached clients get it through bounded
// queues beside the log, and one that falls too far behind is detached.
//
// Only peapod-shim-runc links libcontainer: not the daemon (this package, shim/client), and
// not the long-lived monitor (shim/server, cmd/peapod-shim).
//
// Files under a pod's state dir:
//
//	call.sock        the call protocol's socket (SocketPath; shim.sock was ttrpc's)
//	stream.sock      interactive exec and attach sessions (StreamSocketPath)
//	shim.log         the shim's own JSON log, and its stderr (LogPath)
//	shim.lock        held (flock) for the shim's lifetime
//	pidns-holder     pid and start time of the pod's PID-namespace holder, if any
//	libct/           libcontainer's state root
//	containers/<id>.json  each container's record, rewritten atomically on create, start, exit
package shim
