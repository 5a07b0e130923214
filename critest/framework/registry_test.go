package framework

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	toml "github.com/pelletier/go-toml/v2"
)

func TestClassify(t *testing.T) {
	cases := []struct{ path, kind, repo, ref string }{
		{"/v2/", "ping", "", ""},
		{"/v2/library/busybox/manifests/latest", "manifest", "library/busybox", "latest"},
		{"/v2/e2e-test-images/busybox/blobs/sha256:abc", "blob", "e2e-test-images/busybox", "sha256:abc"},
		{"/v2/a/b/blobs/uploads/123", "upload", "a/b", ""},
		{"/v2/a/tags/list", "tags", "a", ""},
		{"/healthz", "other", "", ""},
	}
	for _, tc := range cases {
		kind, repo, ref := classify(tc.path)
		if kind != tc.kind || repo != tc.repo || ref != tc.ref {
			t.Errorf("classify(%q) = %q %q %q, want %q %q %q", tc.path, kind, repo, ref, tc.kind, tc.repo, tc.ref)
		}
	}
}

func TestRegistryRef(t *testing.T) {
	r := &Registry{host: "127.0.0.1:5000"}
	cases := map[string]string{
		ImageBusybox:                            "127.0.0.1:5000/e2e-test-images/busybox:1.29-2",
		"busybox":                               "127.0.0.1:5000/library/busybox:latest",
		"busybox:1.36":                          "127.0.0.1:5000/library/busybox:1.36",
		ImageUserUID:                            "127.0.0.1:5000/k8s-staging-cri-tools/test-image-user-uid:latest",
		"a/b@sha256:" + strings.Repeat("0", 64): "127.0.0.1:5000/a/b@sha256:" + strings.Repeat("0", 64),
	}
	for in, want := range cases {
		if got := r.Ref(in); got != want {
			t.Errorf("Ref(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistryServesEveryTestImage(t *testing.T) {
	r := StartRegistry(t)
	ctx := t.Context()
	served := r.Images()
	for _, n := range TestImageNames() {
		ref, ok := served[n]
		if !ok {
			t.Errorf("%s not served", n)
			continue
		}
		validateRemote(ctx, t, r, ref)
	}
}

// validateRemote fetches ref over HTTP and reads and digest-checks every blob.
func validateRemote(ctx context.Context, t *testing.T, r *Registry, ref string) {
	t.Helper()
	parsed, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(parsed, r.RemoteOptions(ctx)...)
	if err != nil {
		t.Errorf("get %s: %v", ref, err)
		return
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			return
		}
		if err := validate.Index(idx); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
		return
	}
	img, err := desc.Image()
	if err != nil {
		t.Errorf("%s: %v", ref, err)
		return
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("%s: %v", ref, err)
	}
}

func TestRegistryBasicAuth(t *testing.T) {
	r := StartRegistry(t, WithBasicAuth("alice", "s3cret"))
	ref, err := name.ParseReference(r.Ref(ImageBusybox), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(ref, remote.WithContext(t.Context()))
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous get: %v, want 401", err)
	}
	if n := r.CountRequests(func(q Request) bool { return q.Status == http.StatusUnauthorized }); n == 0 {
		t.Errorf("no 401 recorded")
	}
	validateRemote(t.Context(), t, r, r.Ref(ImageBusybox))
	if n := r.CountRequests(func(q Request) bool { return q.User == "alice" && q.Status == http.StatusOK }); n == 0 {
		t.Errorf("no authenticated request recorded")
	}
}

func TestRegistryCountsBlobGets(t *testing.T) {
	r := StartRegistry(t)
	layers, err := busyboxImage(t, r).Layers()
	if err != nil {
		t.Fatal(err)
	}
	digest, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	r.ResetRequests()
	for range 3 {
		readLayer(t, layers[0])
	}
	// The server records a request when its handler returns, which can be just after the
	// client has read the last byte.
	for deadline := time.Now().Add(2 * time.Second); r.BlobGets(digest.String()) < 3 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := r.BlobGets(digest.String()); got != 3 {
		t.Errorf("BlobGets = %d, want 3 (requests %+v)", got, r.Requests())
	}
	if got := r.BlobGetsByDigest()[digest.String()]; got != 3 {
		t.Errorf("BlobGetsByDigest = %d, want 3", got)
	}
}

func readLayer(t *testing.T, l v1.Layer) {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryHoldBlobs(t *testing.T) {
	r := StartRegistry(t)
	layers, err := busyboxImage(t, r).Layers()
	if err != nil {
		t.Fatal(err)
	}
	release := r.HoldBlobs()
	done := make(chan error, 1)
	go func() {
		rc, err := layers[0].Compressed()
		if err != nil {
			done <- err
			return
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc) // digest verified at EOF
		done <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.WaitHeld(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("blob read finished while held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	release()
	if err := <-done; err != nil {
		t.Fatalf("read after release: %v", err)
	}
	if r.Held() != 0 {
		t.Errorf("Held = %d after release", r.Held())
	}
}

func TestRegistryBlobDelay(t *testing.T) {
	r := StartRegistry(t, WithBlobDelay(200*time.Millisecond))
	img := busyboxImage(t, r)
	cfgStart := time.Now()
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(cfgStart); d < 200*time.Millisecond {
		t.Errorf("config blob took %s, want the 200ms delay", d)
	}
	r.SetBlobDelay(0)
}

func TestRegistryPushDeleteCustom(t *testing.T) {
	r := StartRegistry(t, WithoutTestImages())
	l, err := NewLayer([]TarEntry{Dir("etc", 0), File("etc/motd", 0o644, "custom\n"), Whiteout("etc/gone")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := BuildImage(ImageSpec{Busybox: true, Layers: []v1.Layer{l}})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "registry.k8s.io/e2e-test-images/custom:1"
	if err := r.Push(t.Context(), ref, img); err != nil {
		t.Fatal(err)
	}
	if got := r.Images()[ref]; got != r.Ref(ref) {
		t.Errorf("Images()[%s] = %q", ref, got)
	}
	validateRemote(t.Context(), t, r, r.Ref(ref))
	if err := r.Delete(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	parsed, _ := name.ParseReference(r.Ref(ref), name.Insecure)
	if _, err := remote.Get(parsed, r.RemoteOptions(t.Context())...); err == nil {
		t.Errorf("%s still served after Delete", ref)
	}
}

func TestRegistryConcurrentRequests(t *testing.T) {
	r := StartRegistry(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { validateRemote(t.Context(), t, r, r.Ref(ImageBusyboxLatest)) })
	}
	wg.Wait()
}

func TestMirrorConfig(t *testing.T) {
	r := &Registry{host: "127.0.0.1:5000"}
	var cfg struct {
		Registries map[string]struct {
			Mirrors  []string
			Insecure bool
		}
	}
	// Strict: a key the struct lacks is an error.
	if err := toml.NewDecoder(strings.NewReader(r.MirrorConfig())).DisallowUnknownFields().Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	for _, h := range MirroredRegistries() {
		if m := cfg.Registries[h].Mirrors; len(m) != 1 || m[0] != "http://127.0.0.1:5000" {
			t.Errorf("%s mirrors %v", h, m)
		}
	}
	if !cfg.Registries["127.0.0.1:5000"].Insecure {
		t.Errorf("registry host not insecure")
	}
}

// busyboxImage is the busybox test image as r serves it.
func busyboxImage(t *testing.T, r *Registry) v1.Image {
	t.Helper()
	ref, err := name.ParseReference(r.Ref(ImageBusybox), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, r.RemoteOptions(t.Context())...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
