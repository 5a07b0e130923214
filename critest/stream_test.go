package critest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestStreamExec runs kubectl-style exec sessions through the streaming URL, over SPDY and
// over WebSocket (v5), with the real client side of client-go.
func TestStreamExec(t *testing.T) {
	p := newTestPod(t, "stream-exec", nil)
	id := p.run(t, sleeper("main", framework.ImageBusybox, nil))
	ctx := framework.Context(t)
	for _, proto := range streamProtocols {
		t.Run(proto, func(t *testing.T) {
			exec := func(cmd []string, stdin io.Reader, tty bool, sizes *fixedSizes) streamResult {
				t.Helper()
				u := execURL(t, p.rt, &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd,
					Stdin: stdin != nil, Stdout: true, Stderr: !tty, Tty: tty})
				if sizes != nil {
					defer sizes.stop()
					return runStream(ctx, t, u, proto, stdin, tty, sizes)
				}
				return runStream(ctx, t, u, proto, stdin, tty, nil)
			}
			if r := exec([]string{"echo", "hello"}, nil, false, nil); r.err != nil || r.stdout != "hello\n" || r.stderr != "" {
				t.Errorf("echo hello: stdout %q stderr %q err %v", r.stdout, r.stderr, r.err)
			}
			r := exec([]string{"sh", "-c", "echo out; echo err >&2; exit 3"}, nil, false, nil)
			if r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
				t.Errorf("exit 3: code %d stdout %q stderr %q err %v", r.code, r.stdout, r.stderr, r.err)
			}
			in := "line one\nline two\n" + strings.Repeat("x", 100000) + "\n"
			if r := exec([]string{"cat"}, strings.NewReader(in), false, nil); r.err != nil || r.stdout != in {
				t.Errorf("stdin to cat: %d bytes back of %d, err %v", len(r.stdout), len(in), r.err)
			}
			if !framework.External() {
				if r := exec([]string{"no-such-command"}, nil, false, nil); r.code != 127 {
					t.Errorf("missing command: code %d err %v, want 127", r.code, r.err)
				}
			}
			// A terminal: the size the client sets is the terminal's, and stdin is typed input.
			sizes := newFixedSizes(100, 40)
			r = exec([]string{"sh"}, strings.NewReader("sleep 0.5; stty size; tty; exit 7\n"), true, sizes)
			if r.code != 7 || !strings.Contains(r.stdout, "40 100") || !strings.Contains(r.stdout, "/dev/pts/") {
				t.Errorf("tty shell: code %d err %v output %q, want exit 7, \"40 100\" and a /dev/pts tty", r.code, r.err, r.stdout)
			}
		})
	}
}

// TestStreamExecUserAndCapabilities: an exec session runs as the container's user with the
// container's capabilities, never more.
func TestStreamExecUserAndCapabilities(t *testing.T) {
	p := newTestPod(t, "stream-user", nil)
	uid := int64(1000)
	id := p.run(t, sleeper("main", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
		RunAsUser:    &runtimeapi.Int64Value{Value: uid},
		Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE", "CHOWN"}},
	}))
	// The init's own sets, once it runs sleep (StartContainer returns as it execs).
	pid := p.pid(t, id)
	if !waitFor(5*time.Second, func() bool {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return strings.HasPrefix(string(cmdline), "sleep\x00")
	}) {
		t.Fatalf("container init %d never ran sleep", pid)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	initCaps := capLines(string(status))
	for _, proto := range streamProtocols {
		u := execURL(t, p.rt, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "id -u; grep Cap /proc/self/status"}, Stdout: true, Stderr: true})
		r := runStream(framework.Context(t), t, u, proto, nil, false, nil)
		if r.err != nil {
			t.Fatalf("%s: %v (stderr %q)", proto, r.err, r.stderr)
		}
		first, rest, _ := strings.Cut(r.stdout, "\n")
		if first != strconv.FormatInt(uid, 10) {
			t.Errorf("%s: exec runs as uid %q, want %d", proto, first, uid)
		}
		if got := capLines(rest); got != initCaps {
			t.Errorf("%s: exec capabilities\n%s\nwant the container's\n%s", proto, got, initCaps)
		}
	}
}

// capLines keeps the capability sets of /proc/<pid>/status lines, in order.
func capLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "Cap") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, "\n")
}

// TestStreamErrors: the streaming RPCs refuse what cannot work with the right code, and a
// URL works once.
func TestStreamErrors(t *testing.T) {
	p := newTestPod(t, "stream-errors", nil)
	ctx := framework.Context(t)
	created, err := p.create(t, sleeper("created", framework.ImageBusybox, nil))
	if err != nil {
		t.Fatal(err)
	}
	running := p.run(t, sleeper("running", framework.ImageBusybox, nil))

	_, err = p.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "no-such-container", Cmd: []string{"true"}, Stdout: true})
	wantCode(t, "exec in unknown container", err, codes.NotFound)
	_, err = p.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: created, Cmd: []string{"true"}, Stdout: true})
	wantCode(t, "exec in created container", err, codes.FailedPrecondition)
	_, err = p.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: running, Stdout: true})
	wantCode(t, "exec without a command", err, codes.InvalidArgument)
	_, err = p.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: running, Cmd: []string{"true"}, Tty: true, Stdout: true, Stderr: true})
	wantCode(t, "exec with tty and stderr", err, codes.InvalidArgument)
	_, err = p.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: running, Cmd: []string{"true"}})
	wantCode(t, "exec with no stream", err, codes.InvalidArgument)
	_, err = p.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: created, Stdout: true})
	wantCode(t, "attach to created container", err, codes.FailedPrecondition)
	_, err = p.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "no-such-container", Stdout: true})
	wantCode(t, "attach to unknown container", err, codes.NotFound)
	_, err = p.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "no-such-pod", Port: []int32{80}})
	wantCode(t, "port forward to unknown pod", err, codes.NotFound)

	u := execURL(t, p.rt, &runtimeapi.ExecRequest{ContainerId: running, Cmd: []string{"echo", "once"}, Stdout: true, Stderr: true})
	if r := runStream(ctx, t, u, protoSPDY, nil, false, nil); r.err != nil || r.stdout != "once\n" {
		t.Fatalf("first use of the URL: %q %v", r.stdout, r.err)
	}
	if r := runStream(ctx, t, u, protoSPDY, nil, false, nil); r.err == nil {
		t.Errorf("second use of a one-time URL worked: %q", r.stdout)
	}
}

// TestStreamAttach attaches to containers' own stdio: output to several clients at once,
// stdin to a reading container, and stdin_once.
func TestStreamAttach(t *testing.T) {
	p := newTestPod(t, "stream-attach", nil)
	ctx := framework.Context(t)
	attachURL := func(id string, stdin, tty bool) string {
		t.Helper()
		resp, err := p.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: stdin, Stdout: true, Stderr: !tty, Tty: tty})
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		return resp.Url
	}

	t.Run("output to several clients", func(t *testing.T) {
		cfg := shell("ticker", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done")
		id := p.run(t, cfg)
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type session struct {
			out  syncBuffer
			done chan error
		}
		var sessions []*session
		for _, proto := range streamProtocols {
			s := &session{done: make(chan error, 1)}
			u := attachURL(id, false, false)
			ex := remoteExecutor(t, u, proto)
			go func() {
				s.done <- ex.StreamWithContext(sctx, remoteOpts(nil, &s.out, io.Discard, false))
			}()
			sessions = append(sessions, s)
		}
		for i, s := range sessions {
			if !waitFor(10*time.Second, func() bool { return strings.Count(s.out.String(), "tick") >= 3 }) {
				t.Errorf("%s attach got %q in 10s, want ticks", streamProtocols[i], s.out.String())
			}
		}
		cancel()
		for i, s := range sessions {
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s attach did not end after the client cancelled", streamProtocols[i])
			}
		}
		if st := p.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container after clients detached: %v", st.State)
		}
		waitLog(t, p.logPath(cfg), 5*time.Second, func(l []logLine) bool { return len(l) >= 3 })
	})

	t.Run("stdin", func(t *testing.T) {
		cfg := shell("cat", "cat")
		cfg.Stdin = true
		id := p.run(t, cfg)
		for _, proto := range streamProtocols {
			sctx, cancel := context.WithCancel(ctx)
			pr, pw := io.Pipe()
			var out syncBuffer
			done := make(chan error, 1)
			ex := remoteExecutor(t, attachURL(id, true, false), proto)
			go func() { done <- ex.StreamWithContext(sctx, remoteOpts(pr, &out, io.Discard, false)) }()
			word := "ping-" + proto
			// Typed until it comes back: the first line may be written before the session is up.
			ok := waitFor(10*time.Second, func() bool {
				_, _ = io.WriteString(pw, word+"\n")
				time.Sleep(50 * time.Millisecond)
				return strings.Contains(out.String(), word)
			})
			if !ok {
				t.Errorf("%s: stdin %q never came back from cat: %q", proto, word, out.String())
			}
			cancel()
			pw.Close()
			<-done
		}
		if st := p.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("cat without stdin_once after clients detached: %v, want running", st.State)
		}
	})

	t.Run("stdin_once", func(t *testing.T) {
		for _, proto := range streamProtocols {
			cfg := shell("once-"+proto, "cat; echo bye")
			cfg.Stdin, cfg.StdinOnce = true, true
			id := p.run(t, cfg)
			var out syncBuffer
			err := remoteExecutor(t, attachURL(id, true, false), proto).StreamWithContext(ctx, remoteOpts(strings.NewReader("last words\n"), &out, io.Discard, false))
			if err != nil {
				t.Errorf("%s: attach ended with %v", proto, err)
			}
			st := p.waitExited(t, id, 10*time.Second)
			if st.ExitCode != 0 {
				t.Errorf("%s: exit code %d, want 0 once stdin closed", proto, st.ExitCode)
			}
			lines := waitLog(t, p.logPath(cfg), 5*time.Second, func(l []logLine) bool { return len(l) >= 2 })
			if len(lines) < 2 || lines[0].text != "last words" || lines[1].text != "bye" {
				t.Errorf("%s: log %v, want the stdin line then bye", proto, lines)
			}
			if !strings.Contains(out.String(), "bye") && !strings.Contains(out.String(), "last words") {
				t.Logf("%s: attached output %q", proto, out.String())
			}
		}
	})

	t.Run("tty", func(t *testing.T) {
		cfg := shell("tty", "sh")
		cfg.Command = []string{"sh"}
		cfg.Stdin, cfg.Tty = true, true
		id := p.run(t, cfg)
		sizes := newFixedSizes(90, 30)
		defer sizes.stop()
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		pr, pw := io.Pipe()
		var out syncBuffer
		done := make(chan error, 1)
		ex := remoteExecutor(t, attachURL(id, true, true), protoWebSocket)
		go func() {
			o := remoteOpts(pr, &out, nil, true)
			o.TerminalSizeQueue = sizes
			done <- ex.StreamWithContext(sctx, o)
		}()
		ok := waitFor(10*time.Second, func() bool {
			_, _ = io.WriteString(pw, "stty size\n")
			time.Sleep(100 * time.Millisecond)
			return strings.Contains(out.String(), "30 90")
		})
		if !ok {
			t.Errorf("tty attach: output %q, want the size 30 90", out.String())
		}
		_, _ = io.WriteString(pw, "exit 4\n")
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("tty attach ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("tty attach did not end when the container exited")
		}
		if st := p.waitExited(t, id, 10*time.Second); st.ExitCode != 4 {
			t.Errorf("tty container exit code %d, want 4", st.ExitCode)
		}
	})
}

// TestStreamPortForward reaches a server bound only to a pod's own 127.0.0.1, and one on a
// hostNetwork pod, over SPDY and over the WebSocket tunnel.
func TestStreamPortForward(t *testing.T) {
	ctx := framework.Context(t)
	serve := func(t *testing.T, p *testPod, port int, body string) {
		t.Helper()
		id := p.run(t, shell("httpd", fmt.Sprintf("mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p 127.0.0.1:%d -h /www", body, port)))
		if !waitFor(10*time.Second, func() bool {
			return p.exec(t, id, "wget", "-q", "-O", "-", fmt.Sprintf("http://127.0.0.1:%d/index.html", port)).code == 0
		}) {
			t.Fatalf("httpd in the pod never answered")
		}
	}
	check := func(t *testing.T, p *testPod, port int, body string) {
		t.Helper()
		for _, proto := range streamProtocols {
			resp, err := p.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: p.id, Port: []int32{int32(port)}})
			if err != nil {
				t.Fatalf("PortForward: %v", err)
			}
			local, stop := forwardPort(t, resp.Url, proto, port)
			for i := range 3 {
				got, err := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/index.html", local))
				if err != nil || got != body {
					t.Errorf("%s: request %d through the forward: %q %v, want %q", proto, i, got, err, body)
				}
			}
			stop()
		}
	}
	t.Run("pod loopback", func(t *testing.T) {
		p := newTestPod(t, "stream-pf", nil)
		serve(t, p, 8080, "hello-from-the-pod")
		check(t, p, 8080, "hello-from-the-pod")
	})
	t.Run("hostNetwork", func(t *testing.T) {
		p := newTestPod(t, "stream-pf-host", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			}
		})
		port := freePort(t)
		serve(t, p, port, "hello-from-the-node")
		check(t, p, port, "hello-from-the-node")
	})
}

// freePort is a TCP port free on the node's 127.0.0.1 right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestStreamEndsWhenContainerStops: exec and attach sessions end when their container is
// stopped under them.
func TestStreamEndsWhenContainerStops(t *testing.T) {
	p := newTestPod(t, "stream-stop", nil)
	ctx := framework.Context(t)
	id := p.run(t, shell("main", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done"))
	type ended struct {
		name string
		r    streamResult
	}
	done := make(chan ended, 2)
	var execOut, attachOut, discard syncBuffer
	execU := execURL(t, p.rt, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo exec-up; sleep 3600"}, Stdout: true, Stderr: true})
	go func() {
		done <- ended{"exec", streamInto(ctx, t, execU, protoSPDY, nil, false, nil, &execOut, &discard)}
	}()
	resp, err := p.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- ended{"attach", streamInto(ctx, t, resp.Url, protoWebSocket, nil, false, nil, &attachOut, &discard)}
	}()
	// Both sessions are up once each has carried output.
	if !waitFor(15*time.Second, func() bool {
		return strings.Contains(execOut.String(), "exec-up") && strings.Contains(attachOut.String(), "tick")
	}) {
		t.Fatalf("sessions not up: exec output %q, attach output %q", execOut.String(), attachOut.String())
	}
	if err := p.rt.StopContainer(ctx, id, 5); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	for range 2 {
		select {
		case e := <-done:
			t.Logf("%s session ended: code %d err %v", e.name, e.r.code, e.r.err)
		case <-time.After(15 * time.Second):
			t.Fatalf("a session still runs 15s after its container stopped")
		}
	}
}
