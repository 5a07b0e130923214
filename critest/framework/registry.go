package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// MirroredRegistries returns the registry hosts whose images the test registry serves: a
// daemon configured with Registry.MirrorConfig pulls every name under these hosts from it.
func MirroredRegistries() []string {
	return []string{"registry.k8s.io", "docker.io", "gcr.io"}
}

// Request is one HTTP request the test registry answered.
type Request struct {
	Method string
	Path   string
	// Status is the HTTP status sent (401 for requests refused by basic auth).
	Status int
	// Kind is "ping" (/v2/), "manifest", "blob", "upload", "tags" or "other".
	Kind string
	// Repo is the repository path, e.g. "e2e-test-images/busybox".
	Repo string
	// Ref is a blob's digest or a manifest's tag or digest.
	Ref string
	// User is the basic-auth user the request carried, if any.
	User string
	// Bytes is how many body bytes were sent.
	Bytes int64
}

type registryOptions struct {
	addr       string
	user, pass string
	blobDelay  time.Duration
	noImages   bool
}

// RegistryOption configures NewRegistry and StartRegistry.
type RegistryOption func(*registryOptions)

// WithRegistryAddr makes the registry listen on addr (default "127.0.0.1:0"), e.g. a fixed
// port an external runtime's mirror configuration names.
func WithRegistryAddr(addr string) RegistryOption {
	return func(o *registryOptions) { o.addr = addr }
}

// WithBasicAuth makes the registry answer 401 with a Basic challenge to every request that
// does not carry user and password.
func WithBasicAuth(user, password string) RegistryOption {
	return func(o *registryOptions) { o.user, o.pass = user, password }
}

// WithBlobDelay delays every blob GET by d before its first byte (SetBlobDelay changes it
// later).
func WithBlobDelay(d time.Duration) RegistryOption {
	return func(o *registryOptions) { o.blobDelay = d }
}

// WithoutTestImages starts an empty registry.
func WithoutTestImages() RegistryOption {
	return func(o *registryOptions) { o.noImages = true }
}

// Registry is an in-memory OCI registry (go-containerregistry's pkg/registry) on 127.0.0.1,
// holding every test image, with request accounting, optional basic auth and controllable
// blob stalls.
type Registry struct {
	host    string
	srv     *http.Server
	backend http.Handler
	user    string
	pass    string

	mu        sync.Mutex
	requests  []Request
	images    map[string]string
	blobDelay time.Duration
	hold      chan struct{} // non-nil while blob GETs are being held
	held      int
	changed   chan struct{} // closed and replaced whenever held changes
}

// NewRegistry starts a registry and pushes every test image (see TestImages) under its
// well-known repository path. Close stops it.
func NewRegistry(ctx context.Context, opts ...RegistryOption) (*Registry, error) {
	o := registryOptions{addr: "127.0.0.1:0"}
	for _, opt := range opts {
		opt(&o)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("listen for test registry on %s: %w", o.addr, err)
	}
	r := &Registry{
		host:      ln.Addr().String(),
		backend:   registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		user:      o.user,
		pass:      o.pass,
		images:    map[string]string{},
		blobDelay: o.blobDelay,
		changed:   make(chan struct{}),
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()

	if !o.noImages {
		imgs, err := TestImages()
		if err != nil {
			_ = r.Close()
			return nil, fmt.Errorf("build test images: %w", err)
		}
		todo := map[name.Reference]remote.Taggable{}
		for wellKnown, img := range imgs {
			served := r.Ref(wellKnown)
			ref, err := name.ParseReference(served, name.Insecure)
			if err != nil {
				_ = r.Close()
				return nil, fmt.Errorf("parse %s: %w", served, err)
			}
			todo[ref] = img
		}
		if err := remote.MultiWrite(todo, r.remoteOptions(ctx)...); err != nil {
			_ = r.Close()
			return nil, fmt.Errorf("push test images to %s: %w", r.host, err)
		}
		r.mu.Lock()
		for wellKnown := range imgs {
			r.images[wellKnown] = r.Ref(wellKnown)
		}
		r.mu.Unlock()
	}
	r.ResetRequests()
	return r, nil
}

// StartRegistry is NewRegistry for tests: it fails t on error and closes the registry in
// t.Cleanup.
func StartRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	r, err := NewRegistry(context.Background(), opts...)
	if err != nil {
		t.Fatalf("start test registry: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Close releases held blobs and stops the server.
func (r *Registry) Close() error {
	r.releaseHold()
	return r.srv.Close()
}

// Host is "127.0.0.1:port".
func (r *Registry) Host() string { return r.host }

// URL is "http://127.0.0.1:port".
func (r *Registry) URL() string { return "http://" + r.host }

// Ref maps a well-known image name (registry.k8s.io/..., docker.io/library/..., "busybox")
// to the same repository and tag or digest on this registry: "127.0.0.1:port/<repo>:<tag>".
// It returns "" for a name that does not parse.
func (r *Registry) Ref(wellKnown string) string {
	ref, err := name.ParseReference(wellKnown)
	if err != nil {
		return ""
	}
	repo := ref.Context().RepositoryStr()
	if d, ok := ref.(name.Digest); ok {
		return r.host + "/" + repo + "@" + d.DigestStr()
	}
	return r.host + "/" + repo + ":" + ref.Identifier()
}

// Images maps each well-known name pushed so far to the reference served here.
func (r *Registry) Images() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.images))
	for k, v := range r.images {
		out[k] = v
	}
	return out
}

// MirrorConfig is the peapod TOML that makes a daemon pull MirroredRegistries from this
// registry and treat it as a plain-HTTP registry.
func (r *Registry) MirrorConfig() string {
	var b strings.Builder
	for _, h := range MirroredRegistries() {
		fmt.Fprintf(&b, "[registries.%q]\nmirrors = [%q]\n\n", h, r.URL())
	}
	fmt.Fprintf(&b, "[registries.%q]\ninsecure = true\n", r.host)
	return b.String()
}

// Push uploads img under ref: a well-known name (mapped as Ref does) or a name on this
// registry's host.
func (r *Registry) Push(ctx context.Context, ref string, img v1.Image) error {
	served, parsed, err := r.parseServed(ref)
	if err != nil {
		return err
	}
	if err := remote.Write(parsed, img, r.remoteOptions(ctx)...); err != nil {
		return fmt.Errorf("push %s: %w", served, err)
	}
	r.noteImage(ref, served)
	return nil
}

// PushIndex uploads an image index and its images under ref (see Push).
func (r *Registry) PushIndex(ctx context.Context, ref string, idx v1.ImageIndex) error {
	served, parsed, err := r.parseServed(ref)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(parsed, idx, r.remoteOptions(ctx)...); err != nil {
		return fmt.Errorf("push index %s: %w", served, err)
	}
	r.noteImage(ref, served)
	return nil
}

// Delete removes the tag or digest ref names (see Push): a deleted tag stops resolving while
// the manifest stays reachable by digest; blobs stay.
func (r *Registry) Delete(ctx context.Context, ref string) error {
	served, parsed, err := r.parseServed(ref)
	if err != nil {
		return err
	}
	if err := remote.Delete(parsed, r.remoteOptions(ctx)...); err != nil {
		return fmt.Errorf("delete %s: %w", served, err)
	}
	r.mu.Lock()
	delete(r.images, ref)
	r.mu.Unlock()
	return nil
}

func (r *Registry) parseServed(ref string) (string, name.Reference, error) {
	served := ref
	if !strings.HasPrefix(ref, r.host+"/") {
		served = r.Ref(ref)
	}
	parsed, err := name.ParseReference(served, name.Insecure)
	if err != nil {
		return "", nil, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	return served, parsed, nil
}

func (r *Registry) noteImage(ref, served string) {
	r.mu.Lock()
	r.images[ref] = served
	r.mu.Unlock()
}

// RemoteOptions are the go-containerregistry options to talk to this registry directly
// (credentials included when basic auth is on).
func (r *Registry) RemoteOptions(ctx context.Context) []remote.Option { return r.remoteOptions(ctx) }

func (r *Registry) remoteOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx)}
	if r.user != "" || r.pass != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass}))
	}
	return opts
}

// Requests returns every request answered since the last ResetRequests, oldest first.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// CountRequests counts the recorded requests match accepts.
func (r *Registry) CountRequests(match func(Request) bool) int {
	n := 0
	for _, req := range r.Requests() {
		if match(req) {
			n++
		}
	}
	return n
}

// BlobGets counts successful (200) GETs of the blob with digest ("sha256:..."), over every
// repository.
func (r *Registry) BlobGets(digest string) int {
	return r.CountRequests(func(q Request) bool {
		return q.Method == http.MethodGet && q.Kind == "blob" && q.Ref == digest && q.Status == http.StatusOK
	})
}

// BlobGetsByDigest counts successful blob GETs per digest.
func (r *Registry) BlobGetsByDigest() map[string]int {
	out := map[string]int{}
	for _, q := range r.Requests() {
		if q.Method == http.MethodGet && q.Kind == "blob" && q.Status == http.StatusOK {
			out[q.Ref]++
		}
	}
	return out
}

// ManifestGets counts successful GETs of manifests in repo (e.g. "e2e-test-images/busybox";
// "" for every repository).
func (r *Registry) ManifestGets(repo string) int {
	return r.CountRequests(func(q Request) bool {
		return q.Method == http.MethodGet && q.Kind == "manifest" && q.Status == http.StatusOK && (repo == "" || q.Repo == repo)
	})
}

// ResetRequests forgets the recorded requests.
func (r *Registry) ResetRequests() {
	r.mu.Lock()
	r.requests = nil
	r.mu.Unlock()
}

// SetBlobDelay delays every later blob GET by d before its first byte.
func (r *Registry) SetBlobDelay(d time.Duration) {
	r.mu.Lock()
	r.blobDelay = d
	r.mu.Unlock()
}

// HoldBlobs makes every later blob GET send the first half of its body, flush it, and then
// stall until release is called (or the client goes away). release is idempotent. Use
// WaitHeld to learn that a pull is mid-blob.
func (r *Registry) HoldBlobs() (release func()) {
	r.mu.Lock()
	if r.hold == nil {
		r.hold = make(chan struct{})
	}
	ch := r.hold
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			if r.hold == ch {
				r.hold = nil
			}
			r.mu.Unlock()
			close(ch)
		})
	}
}

func (r *Registry) releaseHold() {
	r.mu.Lock()
	ch := r.hold
	r.hold = nil
	r.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// Held is how many blob GETs are stalled right now.
func (r *Registry) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// WaitHeld waits until at least n blob GETs are stalled by HoldBlobs.
func (r *Registry) WaitHeld(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		held, ch := r.held, r.changed
		r.mu.Unlock()
		if held >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d held blob requests (have %d): %w", n, held, ctx.Err())
		}
	}
}

func (r *Registry) addHeld(delta int) {
	r.mu.Lock()
	r.held += delta
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// ServeHTTP authenticates, records and optionally delays or stalls, then hands the request to
// the in-memory registry.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	kind, repo, ref := classify(req.URL.Path)
	rec := &recordingWriter{ResponseWriter: w, status: http.StatusOK}
	user, pass, hasAuth := req.BasicAuth()
	entry := Request{Method: req.Method, Path: req.URL.Path, Kind: kind, Repo: repo, Ref: ref, User: user}
	defer func() {
		entry.Status = rec.status
		entry.Bytes = rec.bytes
		r.mu.Lock()
		r.requests = append(r.requests, entry)
		r.mu.Unlock()
	}()

	if r.user != "" || r.pass != "" {
		if !hasAuth || user != r.user || pass != r.pass {
			rec.Header().Set("WWW-Authenticate", `Basic realm="peapod-test-registry"`)
			rec.Header().Set("Content-Type", "application/json")
			rec.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(rec, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
	}

	var out http.ResponseWriter = rec
	if kind == "blob" && req.Method == http.MethodGet {
		r.mu.Lock()
		delay, hold := r.blobDelay, r.hold
		r.mu.Unlock()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				rec.status = 499
				return
			}
		}
		if hold != nil {
			out = &holdingWriter{recordingWriter: rec, reg: r, release: hold, ctx: req.Context(), limit: -1}
		}
	}
	r.backend.ServeHTTP(out, req)
}

// classify splits a registry API path into its kind, repository and reference.
func classify(p string) (kind, repo, ref string) {
	if p == "/v2/" || p == "/v2" {
		return "ping", "", ""
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "other", "", ""
	}
	if strings.HasSuffix(rest, "/tags/list") {
		return "tags", strings.TrimSuffix(rest, "/tags/list"), ""
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i >= 0 {
		return "upload", rest[:i], ""
	}
	for _, k := range []string{"blobs", "manifests"} {
		if i := strings.LastIndex(rest, "/"+k+"/"); i >= 0 {
			kind := "blob"
			if k == "manifests" {
				kind = "manifest"
			}
			return kind, rest[:i], rest[i+len(k)+2:]
		}
	}
	return "other", "", ""
}

type recordingWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *recordingWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recordingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// holdingWriter passes the first half of a blob's body, then blocks until release.
type holdingWriter struct {
	*recordingWriter
	reg     *Registry
	release <-chan struct{}
	ctx     context.Context
	limit   int64
	written int64
	done    bool
}

func (w *holdingWriter) Write(p []byte) (int, error) {
	if w.done {
		return w.recordingWriter.Write(p)
	}
	if w.limit < 0 {
		size, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64)
		if err != nil || size <= 0 {
			size = int64(len(p))
		}
		w.limit = max(size/2, 1)
	}
	if w.written+int64(len(p)) < w.limit {
		n, err := w.recordingWriter.Write(p)
		w.written += int64(n)
		return n, err
	}
	k := w.limit - w.written
	n, err := w.recordingWriter.Write(p[:k])
	w.written += int64(n)
	if err != nil {
		return n, err
	}
	w.Flush()
	w.done = true
	w.reg.addHeld(1)
	select {
	case <-w.release:
		w.reg.addHeld(-1)
	case <-w.ctx.Done():
		w.reg.addHeld(-1)
		return n, errors.Join(errors.New("client went away while the blob was held"), w.ctx.Err())
	}
	m, err := w.recordingWriter.Write(p[k:])
	return n + m, err
}
