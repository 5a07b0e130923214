package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/client"
)

// syncBuffer is an output sink a test can watch while a session writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the output matches re and returns the submatches.
func (s *syncBuffer) waitFor(t *testing.T, re string, d time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for {
		if m := rx.FindStringSubmatch(s.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("output %q never matched %q", s.String(), re)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// createWith creates (and starts) a container with the stdin settings CreateOptions allow.
func (p *pod) createWith(t *testing.T, o shim.CreateOptions) string {
	t.Helper()
	if o.LogPath == "" {
		o.LogPath = filepath.Join(p.logDir, o.ID, "0.log")
	}
	o.Rootfs = rootfsDir
	ctx := ctxT(t, 20*time.Second)
	if _, err := p.c.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := p.c.Start(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	return o.LogPath
}

type execResult struct {
	code int
	err  error
}

// execAsync runs an Exec in the background.
func execAsync(ctx context.Context, c *client.Client, id string, o shim.ExecOptions) <-chan execResult {
	ch := make(chan execResult, 1)
	go func() {
		code, err := c.Exec(ctx, id, o)
		ch <- execResult{code, err}
	}()
	return ch
}

func attachAsync(ctx context.Context, c *client.Client, id string, o shim.AttachOptions) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Attach(ctx, id, o) }()
	return ch
}

func TestExecInteractive(t *testing.T) {
	p := startPod(t, false)
	p.run(t, "c", "sleep", "1000")
	spec := p.spec("user", "sleep", "1000")
	spec.Process.User = specs.User{UID: 1000, GID: 1000}
	p.createWith(t, shim.CreateOptions{ID: "user", Spec: spec})

	for _, tc := range []struct {
		name   string
		id     string
		opts   shim.ExecOptions
		stdin  string
		stdout string
		stderr string // "~x": contains x
		code   int
	}{
		{name: "echo", opts: shim.ExecOptions{Args: []string{"echo", "hi"}}, stdout: "hi\n"},
		{name: "exit code", opts: shim.ExecOptions{Args: []string{"sh", "-c", "exit 3"}}, code: 3},
		{name: "stderr separate", opts: shim.ExecOptions{Args: []string{"sh", "-c", "echo out; echo err >&2; echo out2"}}, stdout: "out\nout2\n", stderr: "err\n"},
		{name: "stdin to cat", opts: shim.ExecOptions{Args: []string{"cat"}}, stdin: "line 1\nline 2\nno newline", stdout: "line 1\nline 2\nno newline"},
		{name: "missing command", opts: shim.ExecOptions{Args: []string{"no-such-command"}}, code: 127, stderr: "~no-such-command"},
		{name: "env cwd user override", opts: shim.ExecOptions{
			Args: []string{"sh", "-c", "echo $FOO $(pwd) $(id -u):$(id -g)"}, Env: []string{"FOO=bar", "PATH=/bin"}, Cwd: "/tmp",
			User: &specs.User{UID: 2000, GID: 3000},
		}, stdout: "bar /tmp 2000:3000\n"},
		{name: "the container's user", id: "user", opts: shim.ExecOptions{Args: []string{"id", "-u"}}, stdout: "1000\n"},
		{name: "killed", opts: shim.ExecOptions{Args: []string{"sh", "-c", "kill -9 $$"}}, code: 137},
		{name: "large output", opts: shim.ExecOptions{Args: []string{"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a"}}, stdout: strings.Repeat("a", 3000000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			if id == "" {
				id = "c"
			}
			var stdout, stderr bytes.Buffer
			tc.opts.Stdout, tc.opts.Stderr = &stdout, &stderr
			if tc.stdin != "" {
				tc.opts.Stdin = strings.NewReader(tc.stdin)
			}
			code, err := p.c.Exec(ctxT(t, 20*time.Second), id, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || stdout.String() != tc.stdout {
				t.Errorf("code %d stdout %.200q stderr %q; want code %d stdout %.200q", code, stdout.String(), stderr.String(), tc.code, tc.stdout)
			}
			if want, ok := strings.CutPrefix(tc.stderr, "~"); ok && !strings.Contains(stderr.String(), want) || !ok && stderr.String() != tc.stderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
		})
	}
	// No stdout or stderr wanted: the command still runs to its end.
	if code, err := p.c.Exec(ctxT(t, 10*time.Second), "c", shim.ExecOptions{Args: []string{"sh", "-c", "echo lost; exit 4"}}); err != nil || code != 4 {
		t.Errorf("exec without streams: %d, %v", code, err)
	}
}

func TestExecTty(t *testing.T) {
	p := startPod(t, false)
	p.run(t, "c", "sleep", "1000")
	ctx := ctxT(t, 30*time.Second)

	var out syncBuffer
	code, err := p.c.Exec(ctx, "c", shim.ExecOptions{Args: []string{"tty"}, Tty: true, Stdout: &out})
	if err != nil || code != 0 || !regexp.MustCompile(`^/dev/pts/\d+\r\n$`).MatchString(out.String()) {
		t.Fatalf("tty: %q, code %d, %v", out.String(), code, err)
	}

	// An interactive shell: the initial size, then a resize.
	resize := make(chan shim.TerminalSize, 1)
	resize <- shim.TerminalSize{Width: 80, Height: 24}
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	var shell syncBuffer
	res := execAsync(ctx, p.c, "c", shim.ExecOptions{Args: []string{"sh"}, Tty: true, Stdin: stdinR, Stdout: &shell, Stderr: io.Discard, Resize: resize})
	fmt.Fprintln(stdinW, "stty size")
	shell.waitFor(t, `\n24 80\r\n`, 5*time.Second)
	resize <- shim.TerminalSize{Width: 100, Height: 40}
	awaitSize(t, stdinW, &shell, "40 100")
	fmt.Fprintln(stdinW, "stty size; tty; exit 5")
	select {
	case r := <-res:
		if r.err != nil || r.code != 5 {
			t.Errorf("shell: code %d, %v", r.code, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("shell did not exit; output %q", shell.String())
	}
	if !regexp.MustCompile(`\n40 100\r\n/dev/pts/\d+\r\n`).MatchString(shell.String()) {
		t.Errorf("shell output after the resize: %q", shell.String())
	}

	// Closing stdin types the terminal's EOF character: cat reads the end of its input.
	var cat syncBuffer
	code, err = p.c.Exec(ctx, "c", shim.ExecOptions{Args: []string{"cat"}, Tty: true, Stdin: strings.NewReader("typed\n"), Stdout: &cat})
	if err != nil || code != 0 || !strings.Contains(cat.String(), "typed\r\n") {
		t.Errorf("cat on a terminal: code %d, %v, output %q", code, err, cat.String())
	}
}

func TestExecErrors(t *testing.T) {
	p := startPod(t, false)
	ctx := ctxT(t, 30*time.Second)
	p.run(t, "done", "true")
	p.wait(t, "done")
	p.create(t, "created", p.spec("created", "sleep", "1000"), false)
	for _, tc := range []struct {
		id   string
		args []string
		want error
	}{
		{"nope", []string{"true"}, errdefs.ErrNotFound},
		{"done", []string{"true"}, errdefs.ErrFailedPrecondition},
		{"created", []string{"true"}, errdefs.ErrFailedPrecondition},
		{"created", nil, errdefs.ErrInvalidArgument},
	} {
		if _, err := p.c.Exec(ctx, tc.id, shim.ExecOptions{Args: tc.args, Stdout: io.Discard}); !errors.Is(err, tc.want) {
			t.Errorf("exec %v in %s: %v, want %v", tc.args, tc.id, err, tc.want)
		}
	}
	for _, tc := range []struct {
		id   string
		want error
	}{{"nope", errdefs.ErrNotFound}, {"done", errdefs.ErrFailedPrecondition}, {"created", errdefs.ErrFailedPrecondition}} {
		if err := p.c.Attach(ctx, tc.id, shim.AttachOptions{Stdout: io.Discard}); !errors.Is(err, tc.want) {
			t.Errorf("attach to %s: %v, want %v", tc.id, err, tc.want)
		}
	}
	// A shim that is gone.
	c := p.c
	p.stop(t)
	if _, err := os.Stat(shim.StreamSocketPath(p.stateDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stream socket after the shim stopped: %v", err)
	}
	if _, err := c.Exec(ctx, "c", shim.ExecOptions{Args: []string{"true"}}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("exec with the shim gone: %v, want Unavailable", err)
	}
	if err := c.Attach(ctx, "c", shim.AttachOptions{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("attach with the shim gone: %v, want Unavailable", err)
	}
}

// alive says whether pid (in the container's PID namespace) is a live process there.
func alive(t *testing.T, p *pod, id string, pid string) bool {
	t.Helper()
	res, err := p.c.ExecSync(ctxT(t, 10*time.Second), id, shim.ExecSyncOptions{Args: []string{"sh", "-c", "grep -q '^State:.*[^Z] (' /proc/" + pid + "/status"}})
	if err != nil {
		t.Fatal(err)
	}
	return res.ExitCode == 0
}

func TestExecCancelKills(t *testing.T) {
	p := startPod(t, false)
	p.run(t, "c", "sleep", "1000")
	for _, tc := range []struct {
		name  string
		args  []string
		stdin io.Reader
	}{
		// The shell and its background child, which holds the output pipes.
		{name: "process group", args: []string{"sh", "-c", "sleep 1000 & echo $$ $!; wait"}},
		// A command that reads no stdin while the client sends more than the pipe holds:
		// the shim is blocked writing stdin when the client goes.
		{name: "blocked on stdin", args: []string{"sh", "-c", "echo $$ $$; exec sleep 1000"}, stdin: bytes.NewReader(make([]byte, 1<<20))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var out syncBuffer
			res := execAsync(ctx, p.c, "c", shim.ExecOptions{Args: tc.args, Stdin: tc.stdin, Stdout: &out})
			pids := out.waitFor(t, `^(\d+) (\d+)\n`, 5*time.Second)[1:]
			for _, pid := range pids {
				if !alive(t, p, "c", pid) {
					t.Fatalf("pid %s is not running before the cancel", pid)
				}
			}
			time.Sleep(100 * time.Millisecond)
			cancel()
			select {
			case r := <-res:
				if !errors.Is(r.err, context.Canceled) {
					t.Errorf("exec after cancel: code %d, %v; want context.Canceled", r.code, r.err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("exec did not return after cancel")
			}
			deadline := time.Now().Add(3 * time.Second)
			for _, pid := range pids {
				for alive(t, p, "c", pid) {
					if time.Now().After(deadline) {
						t.Fatalf("pid %s still alive after the client went away", pid)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
}

// counter is a container printing "line N" every 100ms.
const counter = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"

func TestAttachOutput(t *testing.T) {
	p := startPod(t, false)
	logPath := p.run(t, "c", "sh", "-c", counter)
	lineRe := regexp.MustCompile(`^line (\d+)$`)
	ctx, cancel := context.WithCancel(ctxT(t, 30*time.Second))
	defer cancel()
	var outs [2]syncBuffer
	var errs [2]<-chan error
	for i := range outs {
		errs[i] = attachAsync(ctx, p.c, "c", shim.AttachOptions{Stdout: &outs[i], Stderr: io.Discard})
	}
	for i := range outs {
		outs[i].waitFor(t, `(?s)(line \d+\n.*){5}`, 5*time.Second)
	}
	cancel()
	for i := range errs {
		if err := <-errs[i]; !errors.Is(err, context.Canceled) {
			t.Errorf("attach %d after cancel: %v", i, err)
		}
	}
	// Each client got consecutive lines, from where it attached.
	last := -1
	for i := range outs {
		lines := strings.Split(strings.TrimSuffix(outs[i].String(), "\n"), "\n")
		first := -1
		for j, l := range lines {
			m := lineRe.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("client %d got %q", i, l)
			}
			n, _ := strconv.Atoi(m[1])
			if j == 0 {
				first = n
			} else if n != first+j {
				t.Fatalf("client %d: line %d is %q, want line %d", i, j, l, first+j)
			}
			last = max(last, n)
		}
	}
	// The container runs on, and the log has every line.
	st, err := p.c.State(ctxT(t, 5*time.Second), "c")
	if err != nil || st.Status != shim.StatusRunning {
		t.Fatalf("container after the clients left: %+v, %v", st, err)
	}
	var entries []logEntry
	for deadline := time.Now().Add(5 * time.Second); len(entries) <= last; time.Sleep(20 * time.Millisecond) {
		if entries = readLog(t, logPath); len(entries) <= last && time.Now().After(deadline) {
			t.Fatalf("log has %d entries, clients saw line %d", len(entries), last)
		}
	}
	for i, e := range entries {
		if e.text != fmt.Sprintf("line %d", i) {
			t.Fatalf("log entry %d is %q", i, e.text)
		}
	}
}

func TestAttachStdin(t *testing.T) {
	p := startPod(t, false)
	p.createWith(t, shim.CreateOptions{ID: "cat", Spec: p.spec("cat", "cat"), Stdin: true})
	p.run(t, "nostdin", "sleep", "1000")

	for round, text := range []string{"hello", "again"} {
		ctx, cancel := context.WithCancel(ctxT(t, 20*time.Second))
		stdinR, stdinW := io.Pipe()
		var out syncBuffer
		errc := attachAsync(ctx, p.c, "cat", shim.AttachOptions{Stdin: stdinR, Stdout: &out})
		time.Sleep(100 * time.Millisecond) // attached before cat echoes
		fmt.Fprintln(stdinW, text)
		out.waitFor(t, "^"+text+"\n$", 5*time.Second)
		// Without StdinOnce, the client's EOF leaves the container's stdin open for the next.
		stdinW.Close()
		time.Sleep(100 * time.Millisecond)
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("round %d: attach: %v", round, err)
		}
	}
	if st, _ := p.c.State(ctxT(t, 5*time.Second), "cat"); st.Status != shim.StatusRunning {
		t.Errorf("cat after the clients left: %+v", st)
	}

	// A container without stdin: the client's stdin is not even read.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	r := &watchedReader{}
	if err := p.c.Attach(ctx, "nostdin", shim.AttachOptions{Stdin: r, Stdout: io.Discard}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("attach without stdin: %v", err)
	}
	if r.read() {
		t.Error("the stdin of a client attached to a container without stdin was read")
	}
}

type watchedReader struct {
	mu   sync.Mutex
	used bool
}

func (w *watchedReader) Read([]byte) (int, error) {
	w.mu.Lock()
	w.used = true
	w.mu.Unlock()
	return 0, io.EOF
}

func (w *watchedReader) read() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.used
}

func TestAttachStdinOnce(t *testing.T) {
	p := startPod(t, false)
	// EOF of the first client's stdin: cat reads EOF and the container exits 0; Attach returns
	// nil once the container has exited and the output is delivered.
	p.createWith(t, shim.CreateOptions{ID: "eof", Spec: p.spec("eof", "sh", "-c", "cat; echo bye"), Stdin: true, StdinOnce: true})
	var out syncBuffer
	if err := p.c.Attach(ctxT(t, 10*time.Second), "eof", shim.AttachOptions{Stdin: strings.NewReader("x\n"), Stdout: &out}); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if out.String() != "x\nbye\n" {
		t.Errorf("output %q", out.String())
	}
	if st := p.wait(t, "eof"); st.ExitCode != 0 {
		t.Errorf("container after stdin EOF: %+v", st)
	}

	// A disconnect of the first client closes the stdin too; a second client's does not matter.
	p.createWith(t, shim.CreateOptions{ID: "gone", Spec: p.spec("gone", "cat"), Stdin: true, StdinOnce: true})
	ctx, cancel := context.WithCancel(ctxT(t, 10*time.Second))
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	var first syncBuffer
	errc := attachAsync(ctx, p.c, "gone", shim.AttachOptions{Stdin: stdinR, Stdout: &first})
	fmt.Fprintln(stdinW, "one")
	first.waitFor(t, "^one\n$", 5*time.Second)
	var second syncBuffer
	secondDone := attachAsync(ctxT(t, 10*time.Second), p.c, "gone", shim.AttachOptions{Stdout: &second})
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(second.String(), "two\n"); {
		if time.Now().After(deadline) {
			t.Fatal("the second client never saw the output")
		}
		fmt.Fprintln(stdinW, "two") // until the second client is attached
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("first attach: %v", err)
	}
	if st := p.wait(t, "gone"); st.ExitCode != 0 {
		t.Errorf("container after the first client left: %+v", st)
	}
	if err := <-secondDone; err != nil {
		t.Errorf("second attach when the container exited: %v", err)
	}
}

func TestAttachTty(t *testing.T) {
	p := startPod(t, false)
	logPath := p.createWith(t, shim.CreateOptions{ID: "sh", Spec: p.spec("sh", "sh"), Stdin: true, Tty: true})
	resize := make(chan shim.TerminalSize, 1)
	resize <- shim.TerminalSize{Width: 100, Height: 40}
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	var out syncBuffer
	errc := attachAsync(ctxT(t, 20*time.Second), p.c, "sh", shim.AttachOptions{Stdin: stdinR, Stdout: &out, Stderr: io.Discard, Resize: resize})
	fmt.Fprintln(stdinW, "stty size; echo to-stderr >&2")
	out.waitFor(t, `\n40 100\r\nto-stderr\r\n`, 5*time.Second)
	resize <- shim.TerminalSize{Width: 90, Height: 30}
	awaitSize(t, stdinW, &out, "30 90")
	fmt.Fprintln(stdinW, "stty size; exit 3")
	if err := <-errc; err != nil {
		t.Fatalf("attach: %v (output %q)", err, out.String())
	}
	if !strings.Contains(out.String(), "\n30 90\r\n") {
		t.Errorf("output after resize: %q", out.String())
	}
	if st := p.wait(t, "sh"); st.ExitCode != 3 {
		t.Errorf("tty container: %+v", st)
	}
	var texts []string
	for _, e := range readLog(t, logPath) {
		texts = append(texts, e.text)
	}
	if log := strings.Join(texts, "\n"); !strings.Contains(log, "40 100") || !strings.Contains(log, "30 90") {
		t.Errorf("log %q", log)
	}
}

// awaitSize types "stty size" into a terminal's shell until it reports size ("rows cols"): a
// resize and the input travel independently, so only the shell's answer says the resize
// has arrived.
func awaitSize(t *testing.T, stdin io.Writer, out *syncBuffer, size string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "\n"+size+"\r\n"); {
		if time.Now().After(deadline) {
			t.Fatalf("the shell never saw size %s: %q", size, out.String())
		}
		fmt.Fprintln(stdin, "stty size")
		time.Sleep(20 * time.Millisecond)
	}
}

// blockingWriter blocks its first Write until release is closed.
type blockingWriter struct {
	release chan struct{}
	// stuck is closed when the first write blocks.
	stuck chan struct{}
	once  sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.stuck)
		<-w.release
	})
	return len(p), nil
}

// TestAttachSlowClientDropped: a client that does not read falls behind and is detached;
// the container's output, and its log, never wait for it. (How fast the log grows meanwhile
// is a figure of make bench: Log/while-attach-stuck.)
func TestAttachSlowClientDropped(t *testing.T) {
	p := startPod(t, false)
	logPath := p.run(t, "fast", "sh", "-c", "while true; do head -c 100000 /dev/zero | tr '\\0' a; echo; sleep 0.02; done")
	w := &blockingWriter{release: make(chan struct{}), stuck: make(chan struct{})}
	errc := attachAsync(ctxT(t, 30*time.Second), p.c, "fast", shim.AttachOptions{Stdout: w})
	select {
	case <-w.stuck:
	case err := <-errc:
		t.Fatalf("attach ended before the client got stuck: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the attached client got no output")
	}
	st1, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The log grows by megabytes while the client is still stuck: it does not wait for it.
	for deadline := time.Now().Add(20 * time.Second); ; {
		st2, err := os.Stat(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if st2.Size()-st1.Size() >= 2<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log grew by only %d bytes in 20s while a client was stuck", st2.Size()-st1.Size())
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(w.release)
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "behind") {
			t.Errorf("attach of a stuck client: %v, want detached for falling behind", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stuck client was not detached")
	}
	if st, _ := p.c.State(ctxT(t, 5*time.Second), "fast"); st.Status != shim.StatusRunning {
		t.Errorf("container: %+v", st)
	}
}

// fdCount counts the open fds of pid, leaving out pidfds: libcontainer starts each exec's
// helper with os/exec and never waits for it (the shim's reaper does), so its pidfd is closed
// by the os.Process cleanup whenever a GC gets to it.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); l != "anon_inode:[pidfd]" {
			n++
		}
	}
	return n
}

// TestStreamSessionsLeakNothing runs many sessions, some of whose clients go away in the middle,
// and checks the shim's goroutines and fds come back to where they were.
func TestStreamSessionsLeakNothing(t *testing.T) {
	p := startPod(t, false)
	p.run(t, "c", "sh", "-c", counter)
	p.createWith(t, shim.CreateOptions{ID: "cat", Spec: p.spec("cat", "cat"), Stdin: true})
	p.createWith(t, shim.CreateOptions{ID: "tty", Spec: p.spec("tty", "sh"), Stdin: true, Tty: true})

	cancelled := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		t.Cleanup(cancel)
		return ctx
	}
	sessions := []struct {
		name string
		run  func() error
	}{
		{"exec echo", func() error {
			_, err := p.c.Exec(ctxT(t, 10*time.Second), "c", shim.ExecOptions{Args: []string{"echo", "x"}, Stdout: io.Discard, Stderr: io.Discard})
			return err
		}},
		{"exec cat", func() error {
			_, err := p.c.Exec(ctxT(t, 10*time.Second), "c", shim.ExecOptions{Args: []string{"cat"}, Stdin: strings.NewReader("abc"), Stdout: io.Discard})
			return err
		}},
		{"exec tty", func() error {
			_, err := p.c.Exec(ctxT(t, 10*time.Second), "c", shim.ExecOptions{Args: []string{"sh", "-c", "stty size"}, Tty: true, Stdout: io.Discard, Resize: make(chan shim.TerminalSize)})
			return err
		}},
		{"exec cancelled mid-stream", func() error {
			_, err := p.c.Exec(cancelled(150*time.Millisecond), "c", shim.ExecOptions{Args: []string{"sh", "-c", "while true; do echo x; sleep 0.01; done"}, Stdout: io.Discard})
			return ignore(err, context.DeadlineExceeded)
		}},
		{"exec tty cancelled", func() error {
			pr, pw := io.Pipe()
			defer pw.Close()
			_, err := p.c.Exec(cancelled(150*time.Millisecond), "c", shim.ExecOptions{Args: []string{"sh"}, Tty: true, Stdin: pr, Stdout: io.Discard})
			return ignore(err, context.DeadlineExceeded)
		}},
		{"exec blocked on stdin cancelled", func() error {
			_, err := p.c.Exec(cancelled(300*time.Millisecond), "c", shim.ExecOptions{Args: []string{"sleep", "1000"}, Stdin: bytes.NewReader(make([]byte, 1<<20))})
			return ignore(err, context.DeadlineExceeded)
		}},
		{"exec missing command", func() error {
			_, err := p.c.Exec(ctxT(t, 10*time.Second), "c", shim.ExecOptions{Args: []string{"nope"}, Stderr: io.Discard})
			return err
		}},
		{"attach cancelled", func() error {
			return ignore(p.c.Attach(cancelled(250*time.Millisecond), "c", shim.AttachOptions{Stdout: io.Discard, Stderr: io.Discard}), context.DeadlineExceeded)
		}},
		{"attach stdin cancelled", func() error {
			pr, pw := io.Pipe()
			defer pw.Close()
			go fmt.Fprintln(pw, "ping")
			return ignore(p.c.Attach(cancelled(200*time.Millisecond), "cat", shim.AttachOptions{Stdin: pr, Stdout: io.Discard}), context.DeadlineExceeded)
		}},
		{"attach tty cancelled", func() error {
			return ignore(p.c.Attach(cancelled(200*time.Millisecond), "tty", shim.AttachOptions{Stdout: io.Discard, Resize: make(chan shim.TerminalSize)}), context.DeadlineExceeded)
		}},
		{"exec error", func() error {
			return ignore2(p.c.Exec(ctxT(t, 10*time.Second), "nope", shim.ExecOptions{Args: []string{"true"}}))
		}},
	}
	round := func() {
		var wg sync.WaitGroup
		for _, s := range sessions {
			wg.Go(func() {
				if err := s.run(); err != nil {
					t.Errorf("%s: %v", s.name, err)
				}
			})
		}
		wg.Wait()
	}
	settled := func() (int, int) {
		time.Sleep(300 * time.Millisecond)
		info, err := p.c.Info(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return info.Goroutines, fdCount(t, p.shimPid)
	}
	goroutinesBefore, fdsBefore := settled()
	const rounds = 8
	start := time.Now()
	for range rounds {
		round()
	}
	t.Logf("%d sessions in %v", rounds*len(sessions), time.Since(start))
	for try := 0; ; try++ {
		goroutines, fds := settled()
		if goroutines <= goroutinesBefore && fds <= fdsBefore {
			t.Logf("goroutines %d → %d, fds %d → %d", goroutinesBefore, goroutines, fdsBefore, fds)
			break
		}
		if try == 10 {
			t.Fatalf("leak: goroutines %d → %d, fds %d → %d: %s", goroutinesBefore, goroutines, fdsBefore, fds, fdList(p.shimPid))
		}
	}
	// No exec process is left in the container.
	res, err := p.c.ExecSync(ctxT(t, 10*time.Second), "c", shim.ExecSyncOptions{Args: []string{"sh", "-c", "ps -o stat,args | grep -v '^Z' | grep -e '[s]leep 1000' -e '[e]cho x' | wc -l; ps -o pid,ppid,pgid,stat,args"}})
	if err != nil || !strings.HasPrefix(string(res.Stdout), "0\n") {
		t.Errorf("exec processes left: %q, %v", res.Stdout, err)
	}
}

func ignore(err, want error) error {
	if errors.Is(err, want) {
		return nil
	}
	return err
}

func ignore2(_ int, err error) error { return ignore(err, errdefs.ErrNotFound) }

func fdList(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+"="+l)
	}
	return strings.Join(out, " ")
}

// BenchmarkExec measures an interactive Exec of `true` (dial, header, spawn, exit).
func BenchmarkExec(b *testing.B) {
	requireShim(b)
	p := startPod(b, false)
	ctx := context.Background()
	p.sleeper(b, "c")
	b.ResetTimer()
	for range b.N {
		if code, err := p.c.Exec(ctx, "c", shim.ExecOptions{Args: []string{"true"}, Stdout: io.Discard, Stderr: io.Discard}); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

// BenchmarkExecThroughput measures an exec's stdout through the stream socket.
func BenchmarkExecThroughput(b *testing.B) {
	requireShim(b)
	p := startPod(b, false)
	ctx := context.Background()
	p.sleeper(b, "c")
	const size = 64 << 20
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		var n countWriter
		if code, err := p.c.Exec(ctx, "c", shim.ExecOptions{Args: []string{"head", "-c", strconv.Itoa(size), "/dev/zero"}, Stdout: &n}); err != nil || code != 0 || n != size {
			b.Fatal(code, err, n)
		}
	}
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
