// Package netns creates, pins, enters and removes the Linux namespaces a pod shares (net, ipc,
// uts), and applies a pod's namespaced sysctls inside them.
//
// Go schedules goroutines on threads it may reuse, and setns/unshare change only the calling
// thread. So every namespace switch here happens on a fresh goroutine locked to its thread: the
// thread goes back to the scheduler only after it is back in its original namespaces, and a
// thread that cannot get back (or that unshared new namespaces) stays locked and dies when its
// goroutine exits. Nothing in peapod calls setns anywhere else.
//
// Namespaces outlive the thread that made them because they are bind-mounted (pinned) onto
// files created with O_EXCL, by default under /run/peapod/ns/<pod-id>/{net,ipc,uts}. A pod with
// a user namespace of its own has it pinned there too (user), and its other namespaces are
// created inside it, so that the pod's root holds capabilities over them and nothing else.
package netns
