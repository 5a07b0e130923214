package framework

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	internalapi "k8s.io/cri-api/pkg/apis"
	criclient "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
)

// DefaultRequestTimeout is the per-RPC timeout of the clients Connect returns; the kubelet's
// default --runtime-request-timeout.
const DefaultRequestTimeout = 2 * time.Minute

// Client holds the kubelet's own CRI clients for one endpoint.
type Client struct {
	Endpoint string
	Runtime  internalapi.RuntimeService
	Image    internalapi.ImageManagerService
}

// Connect dials endpoint ("unix:///path" or "/path") with k8s.io/cri-client's runtime and
// image services, exactly as a kubelet does (no streaming lists, a no-op tracer). It fails
// unless the runtime answers Version.
func Connect(ctx context.Context, endpoint string) (*Client, error) {
	return ConnectWithTimeout(ctx, endpoint, DefaultRequestTimeout)
}

// ConnectWithTimeout is Connect with the clients' per-RPC timeout set to timeout.
func ConnectWithTimeout(ctx context.Context, endpoint string, timeout time.Duration) (*Client, error) {
	endpoint = NormalizeEndpoint(endpoint)
	rs, err := connectRuntime(ctx, endpoint, timeout)
	if err != nil {
		return nil, err
	}
	is, err := connectImage(ctx, endpoint, timeout)
	if err != nil {
		_ = rs.Close(Quiet(ctx))
		return nil, err
	}
	return &Client{Endpoint: endpoint, Runtime: rs, Image: is}, nil
}

func connectRuntime(ctx context.Context, endpoint string, timeout time.Duration) (internalapi.RuntimeService, error) {
	rs, err := criclient.NewRemoteRuntimeServiceBuilder().
		WithEndpoint(endpoint).
		WithConnectionTimeout(timeout).
		WithUseStreaming(false).
		Build(Quiet(ctx))
	if err != nil {
		return nil, fmt.Errorf("connect runtime service at %s: %w", endpoint, err)
	}
	return rs, nil
}

func connectImage(ctx context.Context, endpoint string, timeout time.Duration) (internalapi.ImageManagerService, error) {
	is, err := criclient.NewRemoteImageServiceBuilder().
		WithEndpoint(endpoint).
		WithConnectionTimeout(timeout).
		WithUseStreaming(false).
		Build(Quiet(ctx))
	if err != nil {
		return nil, fmt.Errorf("connect image service at %s (a kubelet refuses a runtime whose ImageFsInfo fails): %w", endpoint, err)
	}
	return is, nil
}

// ConnectImage dials only the image service (ImageFsInfo must answer).
func ConnectImage(ctx context.Context, endpoint string) (internalapi.ImageManagerService, error) {
	return connectImage(ctx, NormalizeEndpoint(endpoint), DefaultRequestTimeout)
}

// ConnectRuntime dials only the runtime service (Version must answer). Connect also needs
// ImageFsInfo to answer, as a kubelet does; tests of the runtime service alone use this.
func ConnectRuntime(ctx context.Context, endpoint string) (internalapi.RuntimeService, error) {
	return connectRuntime(ctx, NormalizeEndpoint(endpoint), DefaultRequestTimeout)
}

// MustConnectRuntime is ConnectRuntime for tests, closed in t.Cleanup.
func MustConnectRuntime(t testing.TB, endpoint string) internalapi.RuntimeService {
	t.Helper()
	rs, err := ConnectRuntime(t.Context(), endpoint)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = rs.Close(Quiet(context.Background())) })
	return rs
}

// MustConnect is Connect for tests: it fails t on error and closes the client in t.Cleanup.
func MustConnect(t testing.TB, endpoint string) *Client {
	t.Helper()
	c, err := Connect(t.Context(), endpoint)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Close closes both connections.
func (c *Client) Close() error {
	ctx := Quiet(context.Background())
	return errors.Join(c.Runtime.Close(ctx), c.Image.Close(ctx))
}

// NormalizeEndpoint turns a bare socket path into a unix:// endpoint.
func NormalizeEndpoint(endpoint string) string {
	if strings.HasPrefix(endpoint, "/") {
		return "unix://" + endpoint
	}
	return endpoint
}

// Quiet returns ctx carrying a logger that discards what k8s.io/cri-client logs through
// klog.FromContext (it logs every failed RPC, which tests provoke on purpose).
func Quiet(ctx context.Context) context.Context {
	return klog.NewContext(ctx, logr.Discard())
}

// Context is t.Context() made Quiet; pass it to the CRI client calls of a test.
func Context(t testing.TB) context.Context {
	return Quiet(t.Context())
}
