// Package stats samples, in the background, what CRI's stats RPCs report: the cpu, memory,
// swap, pressure and process figures of every pod's and live container's cgroup, each
// container's writable layer, and each pod's network interfaces read inside its network
// namespace. RPCs answer from the last sample (Collector.Container, Collector.Pod): they never
// read the kernel and never wait behind a container operation, and cpu rates
// (usage_nano_cores) come from the two latest samples, so the first call after a container
// starts already has one.
//
// Cadence: cgroups and networks every Options.Interval (2 s by default); writable layers,
// which need a directory walk, every Options.DiskInterval (5 s by default) and at once for a
// container not measured yet.
package stats
