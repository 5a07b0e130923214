package stream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// nopRuntime is never reached by these tests: they stop before a session starts.
type nopRuntime struct{}

func (nopRuntime) Exec(context.Context, string, []string, Streams) (int, error) { return 0, nil }
func (nopRuntime) Attach(context.Context, string, Streams) error                { return nil }
func (nopRuntime) PortForward(context.Context, string, int32, io.ReadWriteCloser) error {
	return nil
}

func newTestServer(t *testing.T, ttl time.Duration) *Server {
	t.Helper()
	s, err := New(Options{Addr: "127.0.0.1:0", Runtime: nopRuntime{}, TokenTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { s.Close() })
	return s
}

func TestURLs(t *testing.T) {
	s := newTestServer(t, time.Minute)
	for _, tc := range []struct {
		name string
		get  func() (string, error)
		path string
		err  error
	}{
		{"exec", func() (string, error) {
			return s.ExecURL(ExecRequest{ContainerID: "c", Cmd: []string{"sh"}, Stdout: true})
		}, "/exec/", nil},
		{"attach", func() (string, error) { return s.AttachURL(AttachRequest{ContainerID: "c", Stdin: true}) }, "/attach/", nil},
		{"port forward", func() (string, error) { return s.PortForwardURL("p", []int32{80}) }, "/portforward/", nil},
		{"tty and stderr", func() (string, error) {
			return s.ExecURL(ExecRequest{ContainerID: "c", Cmd: []string{"sh"}, Tty: true, Stdout: true, Stderr: true})
		}, "", errdefs.ErrInvalidArgument},
		{"no stream", func() (string, error) { return s.AttachURL(AttachRequest{ContainerID: "c"}) }, "", errdefs.ErrInvalidArgument},
		{"no command", func() (string, error) { return s.ExecURL(ExecRequest{ContainerID: "c", Stdout: true}) }, "", errdefs.ErrInvalidArgument},
		{"bad port", func() (string, error) { return s.PortForwardURL("p", []int32{70000}) }, "", errdefs.ErrInvalidArgument},
		{"no pod", func() (string, error) { return s.PortForwardURL("", nil) }, "", errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tc.get()
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "http" || u.Host != s.Addr().String() || !strings.HasPrefix(u.Path, tc.path) {
				t.Fatalf("URL %q (%v): want http://%s%s<token>", raw, err, s.Addr(), tc.path)
			}
		})
	}
}

// TestTokensAreOneTime: a URL is consumed by its first request, whatever that request was,
// and an unused one expires.
func TestTokensAreOneTime(t *testing.T) {
	s := newTestServer(t, 200*time.Millisecond)
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	u, err := s.ExecURL(ExecRequest{ContainerID: "c", Cmd: []string{"true"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	// Not an upgrade: the library refuses it, and the token is spent all the same.
	if code := get(u); code == http.StatusNotFound {
		t.Fatalf("first use: 404")
	}
	if code := get(u); code != http.StatusNotFound {
		t.Errorf("second use: %d, want 404", code)
	}
	u, err = s.ExecURL(ExecRequest{ContainerID: "c", Cmd: []string{"true"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if code := get(u); code != http.StatusNotFound {
		t.Errorf("expired URL: %d, want 404", code)
	}
	if code := get("http://" + s.Addr().String() + "/exec/not-a-token"); code != http.StatusNotFound {
		t.Errorf("unknown token: %d, want 404", code)
	}
}

func TestPendingURLsAreBounded(t *testing.T) {
	s := newTestServer(t, time.Minute)
	for i := range maxPending {
		if _, err := s.PortForwardURL("p", nil); err != nil {
			t.Fatalf("URL %d: %v", i, err)
		}
	}
	if _, err := s.PortForwardURL("p", nil); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("URL over the bound: %v, want ResourceExhausted", err)
	}
}

// TestSessionStatus: the status object a v4/v5 client decodes into an exit code.
func TestSessionStatus(t *testing.T) {
	for _, tc := range []struct {
		code int
		err  error
		want string
	}{
		{0, nil, `{"metadata":{},"status":"Success"}`},
		{3, nil, `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`},
		{0, errors.New("boom"), `{"metadata":{},"status":"Failure","message":"boom","reason":"InternalError"}`},
	} {
		b, err := json.Marshal(sessionStatus(tc.code, tc.err))
		if err != nil || string(b) != tc.want {
			t.Errorf("status(%d, %v) = %s (%v), want %s", tc.code, tc.err, b, err, tc.want)
		}
	}
}

func TestOffers(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "http://x/exec/t", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Add("Sec-WebSocket-Protocol", "v4.channel.k8s.io, v5.channel.k8s.io")
	if !wantsV5(r) || wantsTunnel(r) {
		t.Errorf("v5 offered: wantsV5 %t wantsTunnel %t", wantsV5(r), wantsTunnel(r))
	}
	r.Header.Set("Sec-WebSocket-Protocol", "SPDY/3.1+portforward.k8s.io")
	if wantsV5(r) || !wantsTunnel(r) {
		t.Errorf("tunnel offered: wantsV5 %t wantsTunnel %t", wantsV5(r), wantsTunnel(r))
	}
	r.Header.Del("Upgrade")
	if wantsTunnel(r) {
		t.Errorf("not a WebSocket request, yet a tunnel")
	}
}

// TestRelay: values pass converted; closing the input closes the output; stop ends a relay
// whose consumer went away, even while it holds a value nobody reads.
func TestRelay(t *testing.T) {
	in := make(chan int)
	out, stop := Relay(in, func(v int) string { return strings.Repeat("x", v) })
	in <- 3
	if got := <-out; got != "xxx" {
		t.Errorf("relayed %q, want xxx", got)
	}
	close(in)
	if _, ok := <-out; ok {
		t.Errorf("output still open after the input closed")
	}
	stop()

	in = make(chan int, 1)
	out2, stop2 := Relay(in, func(v int) int { return v })
	in <- 1 // taken by the relay, never read from out
	for len(in) > 0 {
		time.Sleep(time.Millisecond) // until the relay took it
	}
	stop2()
	stop2() // twice is fine
	select {
	case _, ok := <-out2:
		if ok {
			// The relay may have been sending when stopped; it must close right after.
			if _, ok := <-out2; ok {
				t.Errorf("output still open after stop")
			}
		}
	case <-time.After(5 * time.Second):
		t.Errorf("relay did not end after stop")
	}
}
