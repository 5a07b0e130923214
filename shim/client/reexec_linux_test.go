package client_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod-runtime/peapod/shim"
)

// reexecs counts the shim's re-executions its log reports.
func reexecs(t *testing.T, p *pod) int {
	t.Helper()
	b, err := os.ReadFile(shim.LogPath(p.stateDir))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), `"msg":"shim re-executed"`)
}

// waitReexecs waits until the shim has re-executed n times.
func waitReexecs(t *testing.T, p *pod, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); reexecs(t, p) < n; {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(shim.LogPath(p.stateDir))
			t.Fatalf("the shim re-executed %d times within 10s, want %d; its log:\n%s", reexecs(t, p), n, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lines reassembles a log's entries into lines (a partial entry continues in the next).
func lines(t *testing.T, path, stream string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	for _, e := range readLog(t, path) {
		if e.stream != stream {
			continue
		}
		cur.WriteString(e.text)
		if !e.partial {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	return out
}

// TestReexec: a shim that has been busy re-executes itself once idle, and nothing of its
// pod notices but memory: the pid stays, containers keep running and logging (no line lost,
// repeated or broken), a Wait made before goes on, exits are reported, and every call and
// session works after. The second re-exec leaves the shim's open files as the first did.
func TestReexec(t *testing.T) {
	p := startPod(t, false)
	counter := p.run(t, "counter", "sh", "-c", `i=0; while true; do echo "line $i"; echo "err $i" >&2; i=$((i+1)); usleep 3000; done`)
	ttyLog := p.create(t, "tty", p.spec("tty", "sh", "-c", "while true; do echo tick; usleep 20000; done"), true)
	if _, err := p.c.Start(ctxT(t, 10*time.Second), "tty"); err != nil {
		t.Fatal(err)
	}
	// Containers that exit around the re-exec, 1s after the last call: whichever comes first,
	// each exit is reported with its code.
	exits := []string{"0.9", "0.97", "1.0", "1.02", "1.05", "1.1", "1.3"}
	for i, d := range exits {
		p.run(t, "exit"+strconv.Itoa(i), "sh", "-c", "sleep "+d+"; exit "+strconv.Itoa(10+i))
	}
	res, err := p.c.ExecSync(ctxT(t, 10*time.Second), "counter", shim.ExecSyncOptions{Args: []string{"sh", "-c", "seq 1 3000"}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exec: %v (exit %d)", err, res.ExitCode)
	}
	busy := smapsRollup(t, p.shimPid, "Pss_Anon")
	// A Wait made before the re-exec, as the daemon's exit watcher does.
	waited := make(chan error, 1)
	go func() {
		st, err := p.c.Wait(ctxT(t, 30*time.Second), "counter")
		if err == nil && (st.Status != shim.StatusStopped || st.ExitCode != 137) {
			err = fmt.Errorf("wait: %+v, want stopped by SIGKILL (137)", st)
		}
		waited <- err
	}()

	waitReexecs(t, p, 1)
	info, err := p.c.Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if info.Pid != p.shimPid {
		t.Fatalf("shim pid %d after the re-exec, was %d", info.Pid, p.shimPid)
	}
	for i := range exits {
		id := "exit" + strconv.Itoa(i)
		if st := p.wait(t, id); st.ExitCode != 10+i || st.Status != shim.StatusStopped {
			t.Errorf("%s: %+v, want exit code %d", id, st, 10+i)
		}
	}
	lean := smapsRollup(t, p.shimPid, "Pss_Anon")
	t.Logf("shim anonymous memory: %d KiB busy, %d KiB re-executed", busy, lean)
	if lean >= busy || lean > maxReexecAnonKiB {
		t.Errorf("re-executed shim has %d KiB of anonymous memory (%d KiB before), want less, and at most %d", lean, busy, maxReexecAnonKiB)
	}

	// Every kind of call after it.
	if st, err := p.c.State(ctxT(t, 5*time.Second), "counter"); err != nil || st.Status != shim.StatusRunning {
		t.Fatalf("counter after the re-exec: %+v, %v", st, err)
	}
	res, err = p.c.ExecSync(ctxT(t, 10*time.Second), "counter", shim.ExecSyncOptions{Args: []string{"echo", "still here"}})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "still here" {
		t.Fatalf("exec after the re-exec: %q, %v", res.Stdout, err)
	}
	var out strings.Builder
	code, err := p.c.Exec(ctxT(t, 10*time.Second), "counter", shim.ExecOptions{Args: []string{"echo", "session"}, Stdout: &out})
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != "session" {
		t.Fatalf("exec session after the re-exec: %q, %d, %v", out.String(), code, err)
	}
	p.run(t, "late", "sh", "-c", "exit 3")
	if st := p.wait(t, "late"); st.ExitCode != 3 {
		t.Fatalf("container created after the re-exec: %+v", st)
	}
	if err := p.c.Delete(ctxT(t, 10*time.Second), "exit0"); err != nil {
		t.Fatal(err)
	}

	// Once more: nothing piles up.
	waitReexecs(t, p, 2)
	before := fdCount(t, p.shimPid)
	if _, err := p.c.ExecSync(ctxT(t, 10*time.Second), "counter", shim.ExecSyncOptions{Args: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	waitReexecs(t, p, 3)
	// A leak stays; a connection or file the new process has open for a moment right after
	// its start goes. (Under CI load on this VM it once counted 17 against 16; alone the test
	// passed 5 runs of 5.)
	after := fdCount(t, p.shimPid)
	for deadline := time.Now().Add(2 * time.Second); after != before && time.Now().Before(deadline); after = fdCount(t, p.shimPid) {
		time.Sleep(20 * time.Millisecond)
	}
	if after != before {
		t.Errorf("shim has %d open files after a re-exec, %d before", after, before)
	}

	select {
	case err := <-waited:
		t.Fatalf("the Wait made before the re-exec returned while the container runs: %v", err)
	default:
	}
	if err := p.c.Signal(ctxT(t, 5*time.Second), "counter", syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Wait made before the re-exec did not return after the container was killed")
	}

	// The output: every line once, in order, on both streams; the terminal's too.
	for _, stream := range []string{"stdout", "stderr"} {
		prefix := map[string]string{"stdout": "line ", "stderr": "err "}[stream]
		got := lines(t, counter, stream)
		if len(got) < 100 {
			t.Fatalf("%s: only %d lines", stream, len(got))
		}
		for i, l := range got {
			if l != prefix+strconv.Itoa(i) {
				t.Fatalf("%s line %d is %q, want %q (lines %d..%d: %q)", stream, i, l, prefix+strconv.Itoa(i), max(0, i-2), i+2, got[max(0, i-2):min(len(got), i+3)])
			}
		}
	}
	ticks := len(lines(t, ttyLog, "stdout"))
	time.Sleep(200 * time.Millisecond)
	if after := len(lines(t, ttyLog, "stdout")); after <= ticks {
		t.Errorf("the terminal container's log stopped at %d lines after the re-execs", ticks)
	}
	for _, l := range lines(t, ttyLog, "stdout") {
		if l != "tick" {
			t.Fatalf("terminal log line %q, want tick", l)
		}
	}
}

// TestReexecPutOffWhileAttached: a session under way (an attach that lasts) keeps the shim
// from re-executing; it does once the session ends.
func TestReexecPutOffWhileAttached(t *testing.T) {
	p := startPod(t, false)
	p.run(t, "c", "sleep", "1000")
	ctx, cancel := context.WithCancel(context.Background())
	attached := make(chan error, 1)
	go func() {
		attached <- p.c.Attach(ctx, "c", shim.AttachOptions{Stdout: io.Discard})
	}()
	time.Sleep(2500 * time.Millisecond)
	if n := reexecs(t, p); n != 0 {
		t.Fatalf("the shim re-executed %d times during an attach", n)
	}
	cancel()
	<-attached
	waitReexecs(t, p, 1)
}

// maxReexecAnonKiB bounds a re-executed shim's anonymous memory with the containers of
// TestReexec (measured: 1.1 MiB).
const maxReexecAnonKiB = 1536

// TestReexecKeepsPidNamespaceAndStdin: the pod's PID namespace holder and a container's
// open stdin are handed over too.
func TestReexecKeepsPidNamespaceAndStdin(t *testing.T) {
	p := startPod(t, true)
	ctx := ctxT(t, 30*time.Second)
	info, err := p.c.Info(ctx)
	if err != nil || info.PidNamespace == "" {
		t.Fatalf("info: %+v, %v", info, err)
	}
	spec := p.spec("cat", "cat")
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			spec.Linux.Namespaces[i].Path = info.PidNamespace
		}
	}
	logPath := p.createWith(t, shim.CreateOptions{ID: "cat", Spec: spec, Stdin: true})
	waitReexecs(t, p, 1)
	after, err := p.c.Info(ctx)
	if err != nil || after.PidNamespace != info.PidNamespace || after.PidHolderPid != info.PidHolderPid {
		t.Fatalf("info after the re-exec: %+v, %v (was %+v)", after, err, info)
	}
	actx, detach := context.WithCancel(ctx)
	attached := make(chan error, 1)
	go func() {
		attached <- p.c.Attach(actx, "cat", shim.AttachOptions{Stdin: strings.NewReader("through the re-exec\n")})
	}()
	waitLogLine(t, logPath, "through the re-exec")
	detach()
	<-attached
	res, err := p.c.ExecSync(ctx, "cat", shim.ExecSyncOptions{Args: []string{"sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"}})
	if err != nil || string(res.Stdout) != "peapod-shim pause " {
		t.Fatalf("PID 1 of the pod after the re-exec: %q, %v", res.Stdout, err)
	}
	// The holder's exit is still watched: killing it ends the namespace and its container.
	if err := syscall.Kill(info.PidHolderPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(t, "cat"); st.Status != shim.StatusStopped {
		t.Fatalf("cat after the holder was killed: %+v", st)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		i, err := p.c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i.PidNamespace == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shim still names the pod's PID namespace after its holder was killed: %+v", i)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
