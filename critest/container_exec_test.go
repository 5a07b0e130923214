package critest

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestContainerExecSync: an exec runs with the container's namespaces, cgroup, user,
// capabilities, seccomp and no_new_privs; it returns stdout, stderr and the exit code; a
// timeout kills everything it started (even a background child holding its stdout) while
// the container keeps running; output is capped at 16 MiB per stream; a missing command is
// an exit code, not an error; a container that is not running is refused.
func TestContainerExecSync(t *testing.T) {
	pod := newTestPod(t, "exec", nil)
	ctx := framework.Context(t)
	uid := int64(1234)
	sc := &runtimeapi.LinuxContainerSecurityContext{
		RunAsUser:    &runtimeapi.Int64Value{Value: uid},
		NoNewPrivs:   true,
		Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"CHOWN", "NET_RAW"}},
		Seccomp:      &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
	}
	id := pod.run(t, sleeper("target", framework.ImageBusybox, sc))
	pid := pod.pid(t, id)

	t.Run("context", func(t *testing.T) {
		// StartContainer returns once the init is released, a moment before it execs the
		// command (and drops the capabilities a non-root user does not keep).
		deadline := time.Now().Add(2 * time.Second)
		for {
			raw, _ := os.ReadFile(filepathJoinProc(pid, "cmdline"))
			if strings.HasPrefix(string(raw), "sleep\x00") || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		init, err := framework.ProcessStatus(pid)
		if err != nil {
			t.Fatal(err)
		}
		st := pod.procStatus(t, id)
		for _, k := range []string{"Uid", "Gid", "CapEff", "CapBnd", "CapPrm", "NoNewPrivs", "Seccomp"} {
			if st[k] != init[k] {
				t.Errorf("%s: exec %q, container %q", k, st[k], init[k])
			}
		}
		if !strings.HasPrefix(st["Uid"], strconv.FormatInt(uid, 10)+"\t") || st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
			t.Errorf("exec status Uid %q NoNewPrivs %q Seccomp %q", st["Uid"], st["NoNewPrivs"], st["Seccomp"])
		}
		var script strings.Builder
		nss := []string{"net", "ipc", "uts", "pid", "mnt", "cgroup"}
		for _, ns := range nss {
			script.WriteString("readlink /proc/self/ns/" + ns + ";")
		}
		got := strings.Split(pod.sh(t, id, script.String()), "\n")
		for i, ns := range nss {
			if i >= len(got) || got[i] != nsLink(t, pid, ns) {
				t.Errorf("exec %s namespace %q, container's %q", ns, got, nsLink(t, pid, ns))
			}
		}
		// Same cgroup namespace (checked above), so the paths read the same from the host.
		host, err := os.ReadFile(filepathJoinProc(pid, "cgroup"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pod.sh(t, id, "cat /proc/self/cgroup"), strings.TrimSpace(string(host)); got != want {
			t.Errorf("exec cgroups:\n%s\ncontainer's:\n%s", got, want)
		}
	})

	t.Run("output and exit code", func(t *testing.T) {
		r := pod.exec(t, id, "sh", "-c", "echo out; echo err >&2; exit 3")
		if r.stdout != "out\n" || r.stderr != "err\n" || r.code != 3 {
			t.Errorf("got %v", r)
		}
		if r := pod.exec(t, id, "true"); r.code != 0 || r.stdout != "" {
			t.Errorf("true: %v", r)
		}
	})

	t.Run("missing command", func(t *testing.T) {
		r := pod.exec(t, id, "/no/such/command")
		if r.code != 127 && r.code != 126 {
			t.Errorf("missing command: %v, want exit 126 or 127", r)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		for _, script := range []string{
			"sleep 30",
			"sleep 31 & echo started; sleep 32", // a background child holds stdout
			"(sleep 33 &); echo detached; sleep 34",
		} {
			start := time.Now()
			_, _, err := pod.rt.ExecSync(ctx, id, []string{"sh", "-c", script}, time.Second)
			took := time.Since(start)
			if err == nil || status.Code(err) != codes.DeadlineExceeded && !strings.Contains(err.Error(), "timeout") && !strings.Contains(err.Error(), "timed out") {
				t.Errorf("%q: %v (code %v), want a timeout error", script, err, status.Code(err))
			}
			if took > 3*time.Second {
				t.Errorf("%q: returned after %v, want about 1s", script, took)
			}
		}
		if st := pod.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container after exec timeouts: %v", st.State)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			left := pod.sh(t, id, "ps -o args | grep 'sleep 3[0-4]' | grep -v grep || true")
			if left == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("processes of timed-out execs still run:\n%s", left)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("output cap", func(t *testing.T) {
		stdout, stderr, err := pod.rt.ExecSync(ctx, id, []string{"sh", "-c", "head -c 20000000 /dev/zero; echo small >&2"}, 30*time.Second)
		if err != nil {
			t.Fatalf("ExecSync of 20 MB: %v", err)
		}
		// The kubelet's client takes messages of up to 16 MiB: the streams together stay
		// within that, stdout giving way to stderr.
		if n := len(stdout); n > 16<<20 || n < 16<<20-4096 || string(stderr) != "small\n" {
			t.Errorf("stdout %d bytes, stderr %q; want about %d and small", n, stderr, 16<<20)
		}
	})

	t.Run("not running", func(t *testing.T) {
		created, err := pod.create(t, sleeper("created", framework.ImageBusybox, nil))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = pod.rt.ExecSync(ctx, created, []string{"true"}, 5*time.Second)
		wantCode(t, "exec in a created container", err, codes.FailedPrecondition)
		exited := pod.run(t, shell("exited", "exit 0"))
		pod.waitExited(t, exited, 10*time.Second)
		_, _, err = pod.rt.ExecSync(ctx, exited, []string{"true"}, 5*time.Second)
		wantCode(t, "exec in an exited container", err, codes.FailedPrecondition)
		_, _, err = pod.rt.ExecSync(ctx, "feedbeef-none", []string{"true"}, 5*time.Second)
		wantCode(t, "exec in an unknown container", err, codes.NotFound)
	})
}

// TestContainerLogs: the log file holds CRI-format lines (RFC3339Nano, stream, P/F, text)
// exactly as written; a line longer than 16 KiB is split into P pieces ending in an F.
func TestContainerLogs(t *testing.T) {
	pod := newTestPod(t, "logs", nil)
	long := 40000
	cfg := shell("writer", "echo one; echo err >&2; printf 'two\\n\\nthree\\n'; head -c "+strconv.Itoa(long)+" /dev/zero | tr '\\0' a; echo; echo last")
	before := time.Now()
	id := pod.run(t, cfg)
	pod.waitExited(t, id, 10*time.Second)
	after := time.Now()
	lines := waitLog(t, pod.logPath(cfg), 5*time.Second, func(l []logLine) bool {
		return len(l) > 0 && l[len(l)-1].text == "last"
	})
	var got []string
	var longText strings.Builder
	for _, l := range lines {
		if l.ts.Before(before.Add(-time.Second)) || l.ts.After(after.Add(time.Second)) {
			t.Errorf("timestamp %v outside the run %v..%v", l.ts, before, after)
		}
		if strings.HasPrefix(l.text, "aaaa") {
			longText.WriteString(l.text)
			if len(l.text) > 16<<10 {
				t.Errorf("a log entry of %d bytes", len(l.text))
			}
			got = append(got, l.stream+" "+l.tag+" a*")
			continue
		}
		got = append(got, l.stream+" "+l.tag+" "+l.text)
	}
	stdoutOnly := []string{}
	for _, g := range got {
		if !strings.HasPrefix(g, "stderr") {
			stdoutOnly = append(stdoutOnly, g)
		}
	}
	want := []string{"stdout F one", "stdout F two", "stdout F ", "stdout F three", "stdout P a*", "stdout P a*", "stdout F a*", "stdout F last"}
	if strings.Join(stdoutOnly, "|") != strings.Join(want, "|") {
		t.Errorf("stdout entries:\n%s\nwant:\n%s", strings.Join(stdoutOnly, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(strings.Join(got, "|"), "stderr F err") {
		t.Errorf("no stderr entry in %q", got)
	}
	if longText.Len() != long {
		t.Errorf("long line: %d bytes logged, want %d", longText.Len(), long)
	}
}

// TestContainerReopenLog: after the kubelet renames the log file, ReopenContainerLog makes
// the next lines land in a new file at the original path; nothing is lost or repeated.
func TestContainerReopenLog(t *testing.T) {
	pod := newTestPod(t, "reopen", nil)
	ctx := framework.Context(t)
	cfg := shell("counter", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.005; done")
	id := pod.run(t, cfg)
	path := pod.logPath(cfg)
	waitLog(t, path, 5*time.Second, func(l []logLine) bool { return len(l) >= 20 })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := pod.rt.ReopenContainerLog(ctx, id); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	waitLog(t, path, 5*time.Second, func(l []logLine) bool { return len(l) >= 20 })
	if err := pod.rt.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	old, cur := readLog(t, path+".1"), readLog(t, path)
	next := 0
	for _, l := range append(old, cur...) {
		n, err := strconv.Atoi(l.text)
		if err != nil || l.tag != "F" || n != next {
			t.Fatalf("entry %+v, want %d (old file %d entries, new %d)", l, next, len(old), len(cur))
		}
		next++
	}
	if len(cur) == 0 || cur[0].text == "0" {
		t.Errorf("new file starts with %+v", cur)
	}
	err := pod.rt.ReopenContainerLog(ctx, id)
	if err == nil {
		t.Errorf("ReopenContainerLog of an exited container succeeded")
	}
}
