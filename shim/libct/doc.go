// Package libct runs containers with runc's libcontainer for the peapod shim. It is the only
// package of peapod that imports github.com/opencontainers/runc/libcontainer (cmd/peapod-shim-runc
// only adds libcontainer's init hook). It speaks OCI runtime-spec: a specs.Spec is converted
// with libcontainer/specconv, and nothing of libcontainer's own types leaks out.
//
// Containers are created the way `runc create` does it: the init is started and waits on the
// exec fifo until Start. The processes are children of the calling shim, which reaps them:
// this package never waits for a container process, because the shim's subreaper loop
// (wait4 on any child) would race any per-process wait.
//
// A binary that uses this package must answer libcontainer's re-exec: import
// libcontainer/nsenter and call libcontainer.Init when os.Args[1] is "init" (see
// cmd/peapod-shim-runc). Seccomp needs cgo and the build tag "seccomp" (Debian's libseccomp-dev).
package libct
