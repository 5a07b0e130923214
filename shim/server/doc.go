// Package server is the shim's side of the pod monitor: it runs in peapod-shim, and in the
// monitor's first stage, peapod-shim-runc serve (shim/serve). A Server serves the pod's call
// socket and stream socket (shim/wire), owns the pod's containers (created by short-lived
// peapod-shim-runc helpers, see helperRuntime), holds their stdio, writes
// their CRI logs, reaps every child as the pod's subreaper, persists each exit as a record
// before it reports it, and holds the pod's PID namespace when asked.
//
// The Server links no libcontainer: it lives as long as the pod, and every pod pays for its
// memory. libcontainer's work (create, exec, signalling every process, destroy) runs in a
// helper process per operation, whose container processes are reparented to the Server, the
// pod's child subreaper, when the helper exits; starting a created container (its exec fifo)
// and signalling an init need no helper.
//
// A monitor starts as its first stage, a process of peapod-shim-runc, which links
// libcontainer: there the same work runs in the Server's own process (Options.InProcess),
// which saves a process per create on a pod's start. Once idle, the first stage re-executes
// into the lean peapod-shim (reexec_linux.go), which holds the pod from then on.
package server
