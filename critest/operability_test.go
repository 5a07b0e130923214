package critest

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
	"github.com/peapod-runtime/peapod/internal/testutil/promtext"
)

// metricsAddr is the address the daemon's log says its metrics endpoint serves on.
func metricsAddr(t *testing.T, d *framework.Daemon) string {
	t.Helper()
	re := regexp.MustCompile(`"msg":"metrics endpoint serving"[^\n]*"address":"([^"]+)"`)
	m := re.FindStringSubmatch(d.Stderr())
	if m == nil {
		t.Fatalf("the daemon's log names no metrics address:\n%s", d.Stderr())
	}
	return m[1]
}

// scrapeMetrics reads /metrics and parses it with Prometheus' own text parser.
func scrapeMetrics(t *testing.T, addr string) (promtext.Families, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %v %s", err, resp.Status)
	}
	fams, err := promtext.Parse(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return fams, string(raw)
}

type wantSample struct {
	name   string
	labels []string
	want   float64
}

func checkSamples(t *testing.T, fams promtext.Families, wants []wantSample) {
	t.Helper()
	for _, w := range wants {
		got, ok := fams.Sample(w.name, w.labels...)
		if !ok {
			t.Errorf("no series %s%v", w.name, w.labels)
		} else if got != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.want)
		}
	}
}

// excerpt is the scrape's lines of the families named (for the test log).
func excerpt(raw string, prefixes ...string) string {
	var out []string
	for _, line := range strings.Split(raw, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
				break
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestMetricsDuringLifecycle scrapes /metrics while a pod goes through a lifecycle and checks,
// family by family, that the values are what was done: one Completed, one Error and one
// OOMKilled container, one pull, the RPCs by method and code, an exec session open, then a
// shim killed.
func TestMetricsDuringLifecycle(t *testing.T) {
	framework.RequirePeapod(t)
	requireCgroupV1(t)
	d := framework.StartDaemon(t, framework.WithConfig("[metrics]\naddress = \"127.0.0.1:0\"\n[debug]\npprof_on_metrics = true\n"))
	addr := metricsAddr(t, d)
	fams, _ := scrapeMetrics(t, addr)
	checkSamples(t, fams, []wantSample{
		{"peapod_pods", []string{"state", "ready"}, 0},
		{"peapod_container_exits_total", []string{"reason", "Completed"}, 0},
		// Every method's series exists before its first call.
		{"peapod_grpc_server_handled_total", []string{"grpc_method", "RunPodSandbox", "grpc_code", "OK"}, 0},
	})

	pod := ownPod(t, d, "metrics")
	ctx := framework.Context(t)
	completed := pod.run(t, shell("completed", "exit 0"))
	failed := pod.run(t, shell("failed", "exit 3"))
	oomCfg := withResources("oom", &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 20 * mib, MemorySwapLimitInBytes: 20 * mib})
	oomCfg.Command = []string{"sh", "-c", "head -c 200m /dev/zero | tail"}
	oom := pod.run(t, oomCfg)
	for id, reason := range map[string]string{completed: "Completed", failed: "Error", oom: "OOMKilled"} {
		if st := pod.waitExited(t, id, 30*time.Second); st.GetReason() != reason {
			t.Fatalf("container %s: reason %q, want %s", st.GetMetadata().GetName(), st.GetReason(), reason)
		}
	}
	sleeperID := pod.run(t, sleeper("sleeper", framework.ImageBusybox, nil))
	if _, err := pod.rt.ContainerStatus(ctx, "no-such-container", false); status.Code(err) != codes.NotFound {
		t.Fatalf("ContainerStatus of a missing container: %v", err)
	}
	img, err := pod.img.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, false)
	if err != nil {
		t.Fatal(err)
	}

	// An exec session held open.
	execCtx, endExec := context.WithCancel(ctx)
	defer endExec()
	url := execURL(t, pod.rt, &runtimeapi.ExecRequest{ContainerId: sleeperID, Cmd: []string{"sleep", "60"}, Stdout: true, Stderr: true})
	execDone := make(chan streamResult, 1)
	go func() { execDone <- runStream(execCtx, t, url, protoSPDY, nil, false, nil) }()
	if !waitFor(10*time.Second, func() bool {
		f, _ := scrapeMetrics(t, addr)
		v, _ := f.Sample("peapod_stream_sessions_open", "kind", "exec")
		return v == 1
	}) {
		t.Error("the open exec session was never counted")
	}

	fams, raw := scrapeMetrics(t, addr)
	t.Logf("scrape during the run (excerpt):\n%s", excerpt(raw,
		"peapod_container_exits_total", "peapod_pods", "peapod_containers", "peapod_image_pull",
		"peapod_shims", "peapod_stream_sessions_open",
		`peapod_grpc_server_handled_total{grpc_code="OK",grpc_method="CreateContainer"`,
		`peapod_grpc_server_handled_total{grpc_code="NotFound",grpc_method="ContainerStatus"`,
		`peapod_grpc_server_handling_seconds_count{grpc_method="CreateContainer"`,
		"go_goroutines", "process_resident_memory_bytes"))
	checkSamples(t, fams, []wantSample{
		{"peapod_container_exits_total", []string{"reason", "Completed"}, 1},
		{"peapod_container_exits_total", []string{"reason", "Error"}, 1},
		{"peapod_container_exits_total", []string{"reason", "OOMKilled"}, 1},
		{"peapod_container_exits_total", []string{"reason", "StartError"}, 0},
		{"peapod_pods", []string{"state", "ready"}, 1},
		{"peapod_pods", []string{"state", "notready"}, 0},
		{"peapod_containers", []string{"state", "exited"}, 3},
		{"peapod_containers", []string{"state", "running"}, 1},
		{"peapod_containers", []string{"state", "created"}, 0},
		{"peapod_image_pulls_total", []string{"result", "success"}, 1},
		{"peapod_image_pulls_total", []string{"result", "failure"}, 0},
		{"peapod_image_pull_bytes_total", nil, float64(img.GetImage().GetSize())},
		{"peapod_image_pull_duration_seconds", nil, 1},
		{"peapod_shims_running", nil, 1},
		{"peapod_shims_lost_total", nil, 0},
		{"peapod_stream_sessions_open", []string{"kind", "exec"}, 1},
		{"peapod_stream_sessions_open", []string{"kind", "attach"}, 0},
		{"peapod_grpc_server_handled_total", []string{"grpc_method", "RunPodSandbox", "grpc_code", "OK"}, 1},
		{"peapod_grpc_server_handled_total", []string{"grpc_method", "CreateContainer", "grpc_code", "OK"}, 4},
		{"peapod_grpc_server_handled_total", []string{"grpc_method", "StartContainer", "grpc_code", "OK"}, 4},
		{"peapod_grpc_server_handled_total", []string{"grpc_method", "PullImage", "grpc_code", "OK"}, 1},
		{"peapod_grpc_server_handled_total", []string{"grpc_method", "ContainerStatus", "grpc_code", "NotFound"}, 1},
		{"peapod_grpc_server_handling_seconds", []string{"grpc_method", "CreateContainer"}, 4},
		{"peapod_grpc_server_handled_total", []string{"grpc_method", "Exec", "grpc_code", "OK"}, 1},
	})
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "process_open_fds"} {
		if v, ok := fams.Sample(name); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v), want > 0", name, v, ok)
		}
	}

	// pprof on the metrics address, as [debug] pprof_on_metrics asks.
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("pprof on the metrics address: %s\n%.200s", resp.Status, body)
	}

	endExec()
	<-execDone
	if !waitFor(10*time.Second, func() bool {
		f, _ := scrapeMetrics(t, addr)
		v, _ := f.Sample("peapod_stream_sessions_open", "kind", "exec")
		return v == 0
	}) {
		t.Error("the ended exec session is still counted")
	}

	// A shim killed: its running container is reported exited (Error, monitor lost).
	shim := shimPid(t, pod.id)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	processGone(t, shim, 5*time.Second)
	pod.waitExited(t, sleeperID, 10*time.Second)
	fams, _ = scrapeMetrics(t, addr)
	checkSamples(t, fams, []wantSample{
		{"peapod_shims_lost_total", nil, 1},
		{"peapod_shims_running", nil, 0},
		{"peapod_container_exits_total", []string{"reason", "Error"}, 2},
		{"peapod_containers", []string{"state", "exited"}, 4},
	})
}

// notifyListener plays systemd's side of sd_notify: a unixgram socket whose datagrams arrive
// on the returned channel.
func notifyListener(t *testing.T) (string, <-chan string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ppn-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		os.RemoveAll(dir)
	})
	ch := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

func nextNotify(t *testing.T, ch <-chan string, timeout time.Duration) string {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			t.Fatal("notify socket closed")
		}
		return msg
	case <-time.After(timeout):
		t.Fatalf("no sd_notify message within %v", timeout)
	}
	return ""
}

// TestNotifyReadyAfterRecovery: under systemd (Type=notify) the daemon sends READY=1 only
// once it has recovered its state and serves every RPC, and STOPPING=1 when it stops. The
// recovery is held up by stopping a pod's shim (SIGSTOP): no READY=1 while RPCs still
// answer Unavailable, then READY=1 once the shim goes on.
func TestNotifyReadyAfterRecovery(t *testing.T) {
	framework.RequirePeapod(t)
	sock, notes := notifyListener(t)
	d := framework.StartDaemon(t, framework.WithEnv("NOTIFY_SOCKET="+sock))
	if msg := nextNotify(t, notes, 10*time.Second); msg != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	pod := ownPod(t, d, "notify")
	id := pod.run(t, sleeper("sleeper", framework.ImageBusybox, nil))
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if msg := nextNotify(t, notes, 10*time.Second); msg != "STOPPING=1" {
		t.Fatalf("notification on stop %q, want STOPPING=1", msg)
	}

	resume := stopShim(t, pod.id)
	started := make(chan error, 1)
	go func() { started <- d.Start(context.Background()) }()
	// Recovery waits on the stopped shim: no READY=1, and RPCs answer Unavailable.
	deadline := time.Now().Add(2 * time.Second)
	sawUnavailable := false
	for time.Now().Before(deadline) {
		select {
		case msg := <-notes:
			t.Fatalf("notification %q while recovery waits on a stopped shim", msg)
		case <-time.After(100 * time.Millisecond):
		}
		_, err := pod.rt.ListPodSandbox(framework.Quiet(shortCtx(t)), nil)
		if status.Code(err) == codes.Unavailable {
			sawUnavailable = true
		}
	}
	if !sawUnavailable {
		t.Error("RPCs never answered Unavailable while recovery waited")
	}
	resume()
	if msg := nextNotify(t, notes, 20*time.Second); msg != "READY=1" {
		t.Fatalf("notification after recovery %q, want READY=1", msg)
	}
	// Ready means recovered: the running container is known at once.
	resp, err := pod.rt.ContainerStatus(framework.Context(t), id, false)
	if err != nil || resp.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("ContainerStatus right after READY=1: %v, %v", resp.GetStatus().GetState(), err)
	}
	if err := <-started; err != nil {
		t.Fatalf("restart: %v", err)
	}
}

// shortCtx bounds one RPC to 2 s.
func shortCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestSignalsStacksAndLogLevel: SIGUSR1 writes every goroutine's stack to the log whatever
// the level; SIGHUP re-reads log_level from the config file, and a broken file changes
// nothing.
func TestSignalsStacksAndLogLevel(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t, framework.WithLogLevel("error"))
	rs := framework.MustConnectRuntime(t, d.Endpoint())

	off := d.StderrLen()
	if err := d.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return strings.Contains(d.StderrSince(off), "goroutine stacks (SIGUSR1)") }) {
		t.Fatalf("no stacks in the log after SIGUSR1:\n%s", d.StderrSince(off))
	}
	if out := d.StderrSince(off); !strings.Contains(out, `goroutine 1 [`) || !strings.Contains(out, "main.runDaemon") {
		t.Errorf("the dump lacks goroutine 1 or runDaemon:\n%.2000s", out)
	}

	rpcLogged := func() bool {
		off := d.StderrLen()
		if _, err := rs.Version(framework.Context(t), "v1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		return strings.Contains(d.StderrSince(off), `"msg":"rpc"`)
	}
	if rpcLogged() {
		t.Fatal("a Version call is logged at log level error")
	}
	setLevel := func(line string) {
		raw, err := os.ReadFile(d.ConfigPath())
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`(?m)^log_level = .*$`)
		if !re.Match(raw) {
			t.Fatalf("no log_level line in %s:\n%s", d.ConfigPath(), raw)
		}
		if err := os.WriteFile(d.ConfigPath(), re.ReplaceAll(raw, []byte(line)), 0o644); err != nil {
			t.Fatal(err)
		}
		off := d.StderrLen()
		if err := d.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if !waitFor(5*time.Second, func() bool { return strings.Contains(d.StderrSince(off), "SIGHUP") }) {
			t.Fatalf("nothing logged after SIGHUP:\n%s", d.StderrSince(off))
		}
	}
	setLevel(`log_level = "debug"`)
	if !rpcLogged() {
		t.Error("after SIGHUP with log_level = debug, a Version call is not logged")
	}
	setLevel(`log_level = "loud"`)
	if !rpcLogged() {
		t.Error("a broken config changed the log level")
	}
	if !strings.Contains(d.Stderr(), "SIGHUP: config not reloaded") {
		t.Error("the broken config's problems were not logged")
	}
	setLevel(`log_level = "error"`)
	if rpcLogged() {
		t.Error("after SIGHUP with log_level = error, a Version call is still logged")
	}
}
