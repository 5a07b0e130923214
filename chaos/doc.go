// Package chaos is peapod's reliability suite. Its tests drive a peapod of their own (own
// root, state and socket, the test registry and the busybox image of critest/framework)
// through the CRI only, the way a kubelet does, while they kill things: the daemon (kill -9
// at random points of a concurrent lifecycle churn), a pod's shim, a pod's PID namespace
// holder. After each kill they hold every container's reported state against the kernel,
// every exit code against what the container was told to exit with, and every log line
// against what was printed; at the end they check that nothing leaked. A soak samples the
// daemon's memory, fds, threads and goroutines over many create/start/exec/stop/remove
// cycles.
//
// `make test` runs the short form (a few kills and cycles); `make chaos` the long one:
//
//	go test ./chaos -chaos.kills=100 -chaos.cycles=1000
//
// Each test prints its figures on a line starting with "CHAOS-FIGURES".
package chaos
