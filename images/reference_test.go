package images

import (
	"errors"
	"net/http"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

const someDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseReference(t *testing.T) {
	tests := []struct {
		in, want string
		host     string
	}{
		{"busybox", "docker.io/library/busybox:latest", "docker.io"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "docker.io"},
		{"docker.io/library/busybox", "docker.io/library/busybox:latest", "docker.io"},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "docker.io"},
		{"index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "docker.io"},
		{"someone/tool:v2", "docker.io/someone/tool:v2", "docker.io"},
		{"registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10", "registry.k8s.io"},
		{"registry.k8s.io/e2e-test-images/busybox:1.36.1-1", "registry.k8s.io/e2e-test-images/busybox:1.36.1-1", "registry.k8s.io"},
		{"localhost:5000/x", "localhost:5000/x:latest", "localhost:5000"},
		{"127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c", "127.0.0.1:5000"},
		{"busybox@" + someDigest, "docker.io/library/busybox@" + someDigest, "docker.io"},
		{"busybox:1.36@" + someDigest, "docker.io/library/busybox@" + someDigest, "docker.io"},
		{"registry.k8s.io/pause:3.10@" + someDigest, "registry.k8s.io/pause@" + someDigest, "registry.k8s.io"},
		{"doCker.io/0", "docker.io/library/0:latest", "docker.io"},
		{"Registry.K8s.io/pause:3.10", "registry.k8s.io/pause:3.10", "registry.k8s.io"},
		{"LocalHost:5000/x", "localhost:5000/x:latest", "localhost:5000"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := parseReference(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != tc.want || r.host() != tc.host {
				t.Fatalf("parseReference(%q) = %s (host %s), want %s (host %s)", tc.in, r, r.host(), tc.want, tc.host)
			}
		})
	}
}

func TestParseReferenceRejects(t *testing.T) {
	for _, in := range []string{
		"", "Busybox", "busybox:", "busybox@sha256:123", "a b", "busybox::1", "-x",
		someDigest, someDigest[7:], "busybox@md5:0123456789abcdef0123456789abcdef",
	} {
		t.Run(in, func(t *testing.T) {
			_, err := parseReference(in)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("parseReference(%q) = %v, want an invalid-argument error", in, err)
			}
		})
	}
}

func TestUserOf(t *testing.T) {
	uid := func(v int64) *int64 { return &v }
	tests := []struct {
		user     string
		uid      *int64
		username string
	}{
		{"", nil, ""},
		{"0", uid(0), ""},
		{"1000", uid(1000), ""},
		{"1000:1000", uid(1000), ""},
		{"nobody", nil, "nobody"},
		{"www-data:www-data", nil, "www-data"},
		{"1000:staff", uid(1000), ""},
	}
	for _, tc := range tests {
		gotUID, gotName := userOf(tc.user)
		if (gotUID == nil) != (tc.uid == nil) || (gotUID != nil && *gotUID != *tc.uid) || gotName != tc.username {
			t.Errorf("userOf(%q) = %v, %q; want %v, %q", tc.user, gotUID, gotName, tc.uid, tc.username)
		}
	}
}

func TestAuthFor(t *testing.T) {
	creds := Auth{Username: "u", Password: "p"}
	tests := []struct {
		server, endpoint string
		want             bool
	}{
		{"", "anything:5000", true},
		{"docker.io", "index.docker.io", true},
		{"https://index.docker.io/v1/", "index.docker.io", true},
		{"registry.k8s.io", "registry.k8s.io", true},
		{"registry.k8s.io", "127.0.0.1:5000", false},
		{"127.0.0.1:5000", "127.0.0.1:5000", true},
	}
	for _, tc := range tests {
		a := creds
		a.ServerAddress = tc.server
		if _, ok := authFor(a, tc.endpoint); ok != tc.want {
			t.Errorf("authFor(server %q, endpoint %q) = %v, want %v", tc.server, tc.endpoint, ok, tc.want)
		}
	}
	if _, ok := authFor(Auth{ServerAddress: "x"}, "x"); ok {
		t.Error("empty credentials were used")
	}
	if s := (Auth{Password: "hunter2"}).String(); s != "Auth{redacted}" {
		t.Errorf("Auth.String() = %q", s)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err   *transport.Error
		class error
	}{
		{&transport.Error{StatusCode: http.StatusUnauthorized}, errdefs.ErrUnauthenticated},
		{&transport.Error{StatusCode: http.StatusForbidden}, errdefs.ErrPermissionDenied},
		{&transport.Error{StatusCode: http.StatusNotFound}, errdefs.ErrNotFound},
		{&transport.Error{StatusCode: http.StatusBadRequest, Errors: []transport.Diagnostic{{Code: transport.NameUnknownErrorCode}}}, errdefs.ErrNotFound},
		{&transport.Error{StatusCode: http.StatusBadRequest, Errors: []transport.Diagnostic{{Code: transport.DeniedErrorCode}}}, errdefs.ErrPermissionDenied},
	}
	for _, tc := range tests {
		got := classify(tc.err)
		if !errors.Is(got, tc.class) || got.Error() != tc.err.Error() {
			t.Errorf("classify(%d %v) = %v, want class %v and the same message", tc.err.StatusCode, tc.err.Errors, got, tc.class)
		}
	}
}
