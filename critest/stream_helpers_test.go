package critest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// The client sides of the streaming protocols, as kubectl and the kubelet speak them.
const (
	protoSPDY      = "spdy"
	protoWebSocket = "websocket" // remotecommand v5; port-forward tunnelled SPDY
)

var streamProtocols = []string{protoSPDY, protoWebSocket}

// remoteExecutor connects to a streaming URL with one of the protocols.
func remoteExecutor(t testing.TB, rawURL, proto string) remotecommand.Executor {
	t.Helper()
	var (
		ex  remotecommand.Executor
		err error
	)
	switch proto {
	case protoSPDY:
		u, perr := url.Parse(rawURL)
		if perr != nil {
			t.Fatalf("stream URL %q: %v", rawURL, perr)
		}
		ex, err = remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, u)
	case protoWebSocket:
		ex, err = remotecommand.NewWebSocketExecutor(&rest.Config{}, http.MethodGet, rawURL)
	}
	if err != nil {
		t.Fatalf("%s executor for %s: %v", proto, rawURL, err)
	}
	return ex
}

// execURL asks the runtime for an exec URL, failing t on error.
func execURL(t testing.TB, rt interface {
	Exec(context.Context, *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
}, req *runtimeapi.ExecRequest) string {
	t.Helper()
	resp, err := rt.Exec(framework.Context(t), req)
	if err != nil {
		t.Fatalf("Exec %q: %v", req.Cmd, err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Port() == "" {
		t.Fatalf("Exec URL %q is not an absolute URL with host and port (%v)", resp.Url, err)
	}
	return resp.Url
}

// streamResult is what one exec or attach session delivered.
type streamResult struct {
	stdout, stderr string
	code           int
	err            error
}

// exitCodeOf is the exit code a stream error reports, 0 for nil, -1 for other errors.
func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	var ee interface{ ExitStatus() int }
	if errors.As(err, &ee) {
		return ee.ExitStatus()
	}
	return -1
}

// runStream runs one session on rawURL and collects its output.
func runStream(ctx context.Context, t testing.TB, rawURL, proto string, stdin io.Reader, tty bool, sizes remotecommand.TerminalSizeQueue) streamResult {
	t.Helper()
	var stdout, stderr syncBuffer
	return streamInto(ctx, t, rawURL, proto, stdin, tty, sizes, &stdout, &stderr)
}

// streamInto runs one session on rawURL, writing its output to stdout and stderr as it
// comes (a test may watch them while the session runs).
func streamInto(ctx context.Context, t testing.TB, rawURL, proto string, stdin io.Reader, tty bool, sizes remotecommand.TerminalSizeQueue, stdout, stderr *syncBuffer) streamResult {
	t.Helper()
	o := remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Tty: tty, TerminalSizeQueue: sizes}
	if !tty {
		o.Stderr = stderr
	}
	err := remoteExecutor(t, rawURL, proto).StreamWithContext(ctx, o)
	return streamResult{stdout: stdout.String(), stderr: stderr.String(), err: err, code: exitCodeOf(err)}
}

// syncBuffer is a buffer safe for a writer and a reader at once.
type syncBuffer = framework.LockedBuffer

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fixedSizes is a terminal that has one size and reports it once.
type fixedSizes struct {
	once sync.Once
	size remotecommand.TerminalSize
	done chan struct{}
}

func newFixedSizes(width, height uint16) *fixedSizes {
	return &fixedSizes{size: remotecommand.TerminalSize{Width: width, Height: height}, done: make(chan struct{})}
}

func (f *fixedSizes) Next() *remotecommand.TerminalSize {
	var next *remotecommand.TerminalSize
	f.once.Do(func() { next = &f.size })
	if next != nil {
		return next
	}
	<-f.done
	return nil
}

func (f *fixedSizes) stop() { close(f.done) }

// forwardPort forwards a free local port to remotePort through the port-forward URL with one
// of the protocols; stop ends the forwarding.
func forwardPort(t testing.TB, rawURL, proto string, remotePort int) (local uint16, stop func()) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("port-forward URL %q: %v", rawURL, err)
	}
	var pf *portforward.PortForwarder
	stopCh, ready := make(chan struct{}), make(chan struct{})
	var errOut syncBuffer
	ports := []string{fmt.Sprintf("0:%d", remotePort)}
	switch proto {
	case protoSPDY:
		transport, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
		pf, err = portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, ports, stopCh, ready, io.Discard, &errOut)
		if err != nil {
			t.Fatal(err)
		}
	case protoWebSocket:
		dialer, err := portforward.NewSPDYOverWebsocketDialer(u, &rest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		pf, err = portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, ports, stopCh, ready, io.Discard, &errOut)
		if err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("%s port forward: %v (%s)", proto, err, errOut.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s port forward not ready after 20s", proto)
	}
	got, err := pf.GetPorts()
	if err != nil || len(got) != 1 {
		t.Fatalf("forwarded ports: %v %v", got, err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(stopCh)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s port forward did not stop", proto)
			}
		})
	}
	t.Cleanup(stop)
	return got[0].Local, stop
}

// httpGet fetches url with a short timeout and returns the body.
func httpGet(t testing.TB, rawURL string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(framework.Context(t), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	// A fresh connection each time: every request is a new forwarded stream.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", rawURL, resp.Status)
	}
	return strings.TrimSpace(string(b)), err
}

// remoteOpts are the client's streams of one session; nil ones are not asked for.
func remoteOpts(in io.Reader, out, errw io.Writer, tty bool) remotecommand.StreamOptions {
	o := remotecommand.StreamOptions{Tty: tty}
	if in != nil {
		o.Stdin = in
	}
	if out != nil {
		o.Stdout = out
	}
	if errw != nil {
		o.Stderr = errw
	}
	return o
}
