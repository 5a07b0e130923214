// Package stats samples, in the background, what CRI's stats and metrics RPCs report: the
// cpu, memory, swap, pressure and process figures of every pod's and live container's cgroup,
// a container's block I/O, OOM kills, CFS throttling and the file descriptors and sockets of
// its processes (from /proc), each container's writable layer and the filesystem holding it,
// and each pod's network interfaces read inside its network namespace. RPCs answer from the
// last sample (Collector.Container, Collector.Pod): they never wait behind a container
// operation, and cpu rates (usage_nano_cores) come from the two latest samples, so the first
// call after a container starts already has one. ContainerNow and PodNow read a container or
// pod started since the last pass at once, so that nothing new is reported empty.
//
// Cadence: cgroups and networks every Options.Interval (2 s by default); writable layers,
// which need a directory walk, and the /proc scan of each container's file descriptors, which
// needs a readlink per descriptor, every Options.DiskInterval (5 s by default) and at once for
// a container not measured yet. Reading a cgroup goes through a reader cached per path in
// cgroups.Manager.
//
// A pass scales with what changed: a pod whose cgroup used no cpu since it was last read in
// full (one file, cgroups.Manager.CPUUsage) is quiet, and so is every container below it;
// their samples are carried forward with a zero cpu rate, skipping the dozens of cgroup files,
// the writable layer and the /proc scan (a pod's interfaces are still read: packets reach it
// with no cpu time in its cgroup). When the cgroup the pods sit
// in (their QoS tier) used no cpu since the last pass, its one counter says so for all of
// them, and the pass reads nothing else. A quiet sample is read in
// full again after Options.QuietRefresh (30 s by default), for what changes with no cpu time
// in the cgroup (the kernel's reclaim). On a full node of
// idle pods this is what keeps the daemon's idle cpu low.
package stats
