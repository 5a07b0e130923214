package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// runningPod creates a one-container pod running script and waits until it runs.
func runningPod(t *testing.T, ns string, pod *corev1.Pod) {
	t.Helper()
	createPod(t, ns, pod)
	waitPod(t, ns, pod.Name, 2*time.Minute, func(p *corev1.Pod) bool {
		s := ctrStatusOf(p, "c")
		return s != nil && s.State.Running != nil
	})
}

// TestKubectlLogs: kubectl logs reads a container's log through the apiserver and the kubelet,
// -f follows it as it grows, and --previous reads the attempt before a restart.
func TestKubectlLogs(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	runningPod(t, ns, bbPod("ticker", `echo first line; i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.3; done`))

	out, err := kubectl(t, "logs", "-n", ns, "ticker")
	if err != nil || !strings.HasPrefix(out, "first line\n") {
		t.Fatalf("kubectl logs: %v, %q", err, out)
	}

	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := kubectlCommand(ctx, "logs", "-f", "-n", ns, "ticker", "--tail=1")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		// The first line is the tail of what was there; the following ones must arrive
		// while kubectl keeps running.
		sc := bufio.NewScanner(stdout)
		prev, lines := -1, 0
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "tick %d", &n); err != nil {
				t.Fatalf("unexpected line %q", sc.Text())
			}
			if prev >= 0 && n != prev+1 {
				t.Fatalf("line after tick %d is tick %d", prev, n)
			}
			prev = n
			if lines++; lines > 5 {
				return
			}
		}
		t.Fatalf("kubectl logs -f stopped (%v) before 5 new lines; stderr %q", sc.Err(), stderr.String())
	})

	t.Run("follow-until-exit", func(t *testing.T) {
		// kubectl logs -f returns by itself once the container has exited.
		ns := newNamespace(t)
		pod := bbPod("shortlived", "for i in 1 2 3; do echo line $i; sleep 1; done")
		pod.Spec.RestartPolicy = corev1.RestartPolicyNever
		runningPod(t, ns, pod)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		out, err := kubectlCommand(ctx, "logs", "-f", "-n", ns, "shortlived").Output()
		if err != nil || string(out) != "line 1\nline 2\nline 3\n" {
			t.Fatalf("kubectl logs -f of a container that exits: %v after %v, %q", err, time.Since(start), out)
		}
	})

	t.Run("previous", func(t *testing.T) {
		ns := newNamespace(t)
		pod := bbPod("restarter", `n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo "attempt $n"; if [ $n -eq 1 ]; then exit 1; fi; sleep 3600`)
		pod.Spec.Volumes = []corev1.Volume{emptyDirVolume("data")}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		createPod(t, ns, pod)
		waitPod(t, ns, "restarter", 2*time.Minute, func(p *corev1.Pod) bool {
			s := ctrStatusOf(p, "c")
			return s != nil && s.RestartCount == 1 && s.State.Running != nil
		})
		prev, err := kubectl(t, "logs", "--previous", "-n", ns, "restarter")
		if err != nil || prev != "attempt 1\n" {
			t.Errorf("kubectl logs --previous: %v, %q; want %q", err, prev, "attempt 1\n")
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			cur, err := kubectl(t, "logs", "-n", ns, "restarter")
			if err == nil && cur == "attempt 2\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kubectl logs of attempt 2: %v, %q", err, cur)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// TestContainerLogLines: what a container writes reaches kubectl logs byte for byte: a line
// written in two parts, a line longer than the runtime's log line buffer, a last line with no
// newline (written to the log when the container exits, as containerd does); --timestamps
// prefixes every line with its time and --tail keeps the last lines.
func TestContainerLogLines(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	long := strings.Repeat("x", 40000)
	pod := bbPod("loglines", `printf 'first half'; sleep 1; echo ' second half'; head -c 40000 /dev/zero | tr '\0' x; echo; echo 'tab	here'; printf 'no newline'`)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	createPod(t, ns, pod)
	waitPod(t, ns, "loglines", 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	want := "first half second half\n" + long + "\ntab\there\nno newline"
	got, err := kubectl(t, "logs", "-n", ns, "loglines")
	if err != nil || got != want {
		t.Fatalf("kubectl logs: %v, %.200q... (%d bytes), want %d bytes", err, got, len(got), len(want))
	}

	out, err := kubectl(t, "logs", "-n", ns, "loglines", "--tail=2")
	if err != nil || out != "tab\there\nno newline" {
		t.Errorf("kubectl logs --tail=2: %v, %q", err, out)
	}
	out, err = kubectl(t, "logs", "-n", ns, "loglines", "--timestamps")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 4 {
		t.Fatalf("kubectl logs --timestamps: %d lines, want 4: %.300q", len(lines), out)
	}
	start := time.Now().Add(-5 * time.Minute)
	for i, line := range lines {
		ts, rest, _ := strings.Cut(line, " ")
		when, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || when.Before(start) || when.After(time.Now().Add(time.Minute)) {
			t.Errorf("line %d of kubectl logs --timestamps: timestamp %q (%v)", i, ts, err)
		}
		if wantRest := strings.Split(want, "\n")[i]; rest != wantRest {
			t.Errorf("line %d after its timestamp: %.100q, want %.100q", i, rest, wantRest)
		}
	}
}

// TestKubectlExec: kubectl exec passes stdin (-i) and the exit code, and -it gives the command
// a terminal of the client's size.
func TestKubectlExec(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	runningPod(t, ns, bbPod("execpod", "sleep 3600"))

	t.Run("stdin", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := kubectlCommand(ctx, "exec", "-i", "-n", ns, "execpod", "--", "sh", "-c", "read x; echo got:$x; wc -c")
		cmd.Stdin = strings.NewReader("hello\n0123456789")
		out, err := cmd.Output()
		if err != nil || string(out) != "got:hello\n10\n" {
			t.Fatalf("kubectl exec -i: %v, %q", err, out)
		}
	})

	t.Run("exitcode", func(t *testing.T) {
		out, err := kubectl(t, "exec", "-n", ns, "execpod", "--", "sh", "-c", "echo out; exit 7")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 || !strings.Contains(out, "out\n") {
			t.Fatalf("kubectl exec of exit 7: %v, %q", err, out)
		}
	})

	t.Run("tty", func(t *testing.T) {
		ptm, pts := openPTY(t, 33, 77)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// After the first line, the client's terminal grows to 40x100: kubectl sends the new
		// size (on SIGWINCH) and the container's terminal follows.
		script := `tty; stty size; read x; i=0; while [ "$(stty size)" != "40 100" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo "size $(stty size)"; echo got-$x; exit 3`
		cmd := kubectlCommand(ctx, "exec", "-it", "-n", ns, "execpod", "--", "sh", "-c", script)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		_ = pts.Close()
		out := &framework.LockedBuffer{}
		done := make(chan struct{})
		go func() { _, _ = io.Copy(out, ptm); close(done) }()
		waitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), "33 77") }, func() string { return out.String() })
		if err := unix.IoctlSetWinsize(int(ptm.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100}); err != nil {
			t.Fatal(err)
		}
		if _, err := ptm.Write([]byte("hello\r")); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		<-done
		got := out.String()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("kubectl exec -it exit: %v, want exit status 3; output %q", err, got)
		}
		if !regexp.MustCompile(`/dev/pts/\d+`).MatchString(got) || !strings.Contains(got, "got-hello") {
			t.Errorf("kubectl exec -it output %q: want a /dev/pts tty, the size 33 77 and got-hello", got)
		}
		if !strings.Contains(got, "size 40 100") {
			t.Errorf("the container's terminal did not follow the client's resize to 40x100: %q", got)
		}
	})
}

// openPTY opens a pseudo-terminal of rows x cols: kubectl exec -t wants its stdin to be one.
func openPTY(t *testing.T, rows, cols uint16) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { _ = ptm.Close() })
	fd := int(ptm.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	t.Cleanup(func() { _ = pts.Close() })
	return ptm, pts
}

// waitFor polls cond until timeout, then fails with what describe says.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not met within %v: %s", timeout, describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKubectlAttach: kubectl attach -i connects to the running container's stdin and stdout.
func TestKubectlAttach(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("attachpod", `echo ready; while read l; do echo "echo:$l"; done; echo stdin-closed; sleep 3600`)
	pod.Spec.Containers[0].Stdin = true
	runningPod(t, ns, pod)
	waitLogged(t, ns, "attachpod", "ready\n")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := kubectlCommand(ctx, "attach", "-i", "-n", ns, "attachpod", "-c", "c")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &framework.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	for i := 0; ; i++ {
		// Lines written before kubectl has connected are not lost (they wait in the pipe),
		// but the container's output before the attach is not replayed: look for ours.
		if _, err := fmt.Fprintf(stdin, "ping%d\n", i); err != nil {
			t.Fatalf("write to kubectl attach: %v", err)
		}
		if strings.Contains(out.String(), "echo:ping") {
			break
		}
		if ctx.Err() != nil || i > 100 {
			t.Fatalf("no echo through kubectl attach; output %q", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// What went through attach is the container's own output: it is in its log too.
	if logs := podLogs(t, ns, "attachpod", "c", false); !strings.Contains(logs, "echo:ping0\n") {
		t.Errorf("container log %q lacks the echo of the first line sent through attach", logs)
	}
}

// TestKubectlAttachTTY: kubectl attach -it reaches a container's shell on its terminal, of the
// client's size.
func TestKubectlAttachTTY(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("ttypod", "exec sh")
	pod.Spec.Containers[0].Stdin = true
	pod.Spec.Containers[0].TTY = true
	runningPod(t, ns, pod)

	ptm, pts := openPTY(t, 33, 77)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := kubectlCommand(ctx, "attach", "-it", "-n", ns, "ttypod", "-c", "c")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	_ = pts.Close()
	out := &framework.LockedBuffer{}
	go func() { _, _ = io.Copy(out, ptm) }()
	// Typed until the shell answers: keys sent before kubectl has attached may be lost.
	want := regexp.MustCompile(`marker-42 33 77`)
	for i := 0; !want.MatchString(out.String()); i++ {
		if i > 50 {
			t.Fatalf("no answer from the shell through kubectl attach -it; output %q", out.String())
		}
		if _, err := ptm.Write([]byte("echo marker-$((6*7)) $(stty size)\r")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestKubectlPortForward: kubectl port-forward reaches busybox httpd in the pod's network
// namespace through the apiserver and the kubelet, for several connections.
func TestKubectlPortForward(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	runningPod(t, ns, bbPod("pfpod", "mkdir -p /www; echo hello-through-port-forward > /www/index.html; exec httpd -f -p 8080 -h /www"))

	port := portForward(t, ns, "pfpod", 8080)
	for i := range 3 {
		resp, err := http.Get("http://127.0.0.1:" + port + "/index.html")
		if err != nil {
			t.Fatalf("request %d through port-forward: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(body) != "hello-through-port-forward\n" {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, body, err)
		}
	}
}

// TestKubectlCp: kubectl cp copies a file and a directory into the container and back out
// (it runs tar in the container through exec).
func TestKubectlCp(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	runningPod(t, ns, bbPod("cppod", "sleep 3600"))
	local := t.TempDir()

	// Into the container: a file and a tree.
	if err := os.WriteFile(filepath.Join(local, "in.txt"), []byte("to-the-pod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(local, "tree", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(local, "tree", "sub", "deep.txt"), []byte("deep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, "cp", filepath.Join(local, "in.txt"), ns+"/cppod:/tmp/in.txt", "-c", "c"); err != nil {
		t.Fatalf("kubectl cp to the pod: %v: %s", err, out)
	}
	if out, err := kubectl(t, "cp", filepath.Join(local, "tree"), ns+"/cppod:/tmp/tree", "-c", "c"); err != nil {
		t.Fatalf("kubectl cp of a directory to the pod: %v: %s", err, out)
	}
	if got := mustExec(t, ns, "cppod", "c", "sh", "-c", "cat /tmp/in.txt /tmp/tree/sub/deep.txt; stat -c %a /tmp/tree/sub/deep.txt"); got != "to-the-pod\ndeep\n600\n" {
		t.Errorf("copied into the pod: %q", got)
	}

	// Out of the container: a file and a tree it made.
	mustExec(t, ns, "cppod", "c", "sh", "-c", "mkdir -p /tmp/out/a && echo from-the-pod > /tmp/out/a/f.txt && echo top > /tmp/out.txt")
	if out, err := kubectl(t, "cp", ns+"/cppod:/tmp/out.txt", filepath.Join(local, "out.txt"), "-c", "c"); err != nil {
		t.Fatalf("kubectl cp from the pod: %v: %s", err, out)
	}
	if out, err := kubectl(t, "cp", ns+"/cppod:/tmp/out", filepath.Join(local, "outdir"), "-c", "c"); err != nil {
		t.Fatalf("kubectl cp of a directory from the pod: %v: %s", err, out)
	}
	for path, want := range map[string]string{"out.txt": "top\n", "outdir/a/f.txt": "from-the-pod\n"} {
		if b, err := os.ReadFile(filepath.Join(local, path)); err != nil || string(b) != want {
			t.Errorf("%s copied from the pod: %q, %v; want %q", path, b, err, want)
		}
	}
}
