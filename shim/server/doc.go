// Package server is the shim's side of the pod monitor: it runs in peapod-shim only. A
// Server serves the pod's ttrpc socket and stream socket, owns the pod's containers (created
// through a Runtime, which cmd/peapod-shim gives it from shim/libct), holds their stdio,
// writes their CRI logs, reaps every child as the pod's subreaper, persists each exit as a
// record before it reports it, and holds the pod's PID namespace when asked.
package server
