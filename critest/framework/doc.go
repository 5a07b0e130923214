// Package framework is the harness every peapod integration test and the benchmark driver use.
//
// It drives a CRI endpoint through the kubelet's own client (k8s.io/cri-client), either one the
// caller names with -endpoint (containerd, CRI-O, an installed peapod) or a peapod it starts
// itself from bin/peapod in a throwaway root, state directory and socket. It builds the test
// images in Go from the host's dynamic busybox and the libc it needs, and serves them from an
// in-process registry on 127.0.0.1 that counts requests and can demand auth or stall blobs.
//
// Tests call framework.Main from TestMain and Shared(t) to reach the suite's runtime; tests that
// need a daemon of their own (restarts, locks, bad configs) call StartDaemon. Everything that
// starts something has two forms: one returning an error for programs (critest/bench), and a
// testing.TB wrapper that fails the test and registers cleanup.
//
// A typical test:
//
//	func TestMain(m *testing.M) { framework.Main(m) }
//
//	func TestPull(t *testing.T) {
//		env := framework.Shared(t)                   // -endpoint runtime or the suite's peapod
//		img := env.Image(t)                          // kubelet's image client
//		env.Registry.ResetRequests()
//		_, err := img.PullImage(framework.Context(t), &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil)
//		...
//	}
//
//	func TestRestart(t *testing.T) {
//		framework.RequirePeapod(t)                   // skips with SKIP-REASON under -endpoint
//		d := framework.StartDaemon(t)                // own root/state/socket, stopped in cleanup
//		rs := framework.MustConnectRuntime(t, d.Endpoint())
//		...
//		if err := d.Restart(t.Context()); err != nil { t.Fatal(err) }
//	}
//
// The package keeps one piece of process-wide state: the suite started by Main (its flags and
// the shared daemon and registry), because test flags are process-wide by nature. The built
// test images are memoized once per process, since they never change while it runs.
package framework
