package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
)

// maxConfigSize bounds the image config a registry may send; real ones are a few KiB.
const maxConfigSize = 16 << 20

// endpoint is one place a reference can be pulled from: a mirror or the registry itself.
type endpoint struct {
	repo     name.Repository // the repository at this endpoint
	what     string          // for errors and logs: the mirror URL or the registry host
	insecure bool            // skip TLS verification
}

// endpoints lists where r is pulled from: the configured mirrors of its registry in order,
// then the registry itself.
func (s *Service) endpoints(r reference) []endpoint {
	cfg := s.registries[r.host()]
	var eps []endpoint
	for _, m := range cfg.mirrors {
		var opts []name.Option
		if m.http {
			opts = append(opts, name.Insecure)
		}
		reg, err := name.NewRegistry(m.host, opts...)
		if err != nil { // validated in New; unreachable
			continue
		}
		eps = append(eps, endpoint{repo: reg.Repo(r.repo.RepositoryStr()), what: "mirror " + m.url})
	}
	repo := r.repo
	if cfg.insecure {
		if reg, err := name.NewRegistry(r.repo.RegistryStr(), name.Insecure); err == nil {
			repo = reg.Repo(r.repo.RepositoryStr())
		}
	}
	return append(eps, endpoint{repo: repo, what: r.host(), insecure: cfg.insecure})
}

// Pull fetches ref (any form a kubelet sends: "busybox", "busybox:1.36",
// "docker.io/library/busybox", "registry.k8s.io/pause:3.10", "repo@sha256:...",
// "repo:tag@sha256:...") for this host's platform, trying the registry's mirrors first, and
// returns the stored image. The image appears in List and Status only once all of it is
// stored. Concurrent pulls share the download of every blob they have in common.
//
// Errors: an unparsable ref is errdefs.ErrInvalidArgument; a registry's 401 is
// errdefs.ErrUnauthenticated and its 403 errdefs.ErrPermissionDenied, carrying the
// registry's message; an unknown repository, tag, digest or platform is errdefs.ErrNotFound;
// content that does not match its digest is ErrDigestMismatch; a cancelled ctx is ctx.Err().
// When every endpoint fails, the error names each one and matches each one's class.
func (s *Service) Pull(ctx context.Context, ref string, auth Auth) (img Image, err error) {
	if s.cfg.OnPull != nil {
		start := time.Now()
		defer func() { s.cfg.OnPull(img.Size, time.Since(start), err) }()
	}
	r, err := parseReference(ref)
	if err != nil {
		return Image{}, err
	}
	ctx = log.With(ctx, zap.String(log.KeyImage, r.String()))
	var errs []error
	for _, ep := range s.endpoints(r) {
		img, err := s.pullFrom(ctx, r, ep, auth)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			s.collect()
			return Image{}, fmt.Errorf("pull %s: %w", r, ctx.Err())
		}
		err = classify(err)
		log.From(ctx).Debug("pull from endpoint failed", zap.String("endpoint", ep.what), zap.Error(err))
		errs = append(errs, fmt.Errorf("%s: %w", ep.what, err))
	}
	s.collect()
	return Image{}, &pullError{ref: r.String(), errs: errs}
}

// pullError reports a pull that failed at every endpoint; errors.Is matches any of them.
type pullError struct {
	ref  string
	errs []error
}

func (e *pullError) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return "pull " + e.ref + ": " + strings.Join(msgs, "; ")
}

func (e *pullError) Unwrap() []error { return e.errs }

// classedError adds an errdefs class to a registry error without changing its message.
type classedError struct {
	err   error
	class error
}

func (e *classedError) Error() string   { return e.err.Error() }
func (e *classedError) Unwrap() []error { return []error{e.err, e.class} }

// classify gives registry errors their errdefs class.
func classify(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	var class error
	switch te.StatusCode {
	case http.StatusUnauthorized:
		class = errdefs.ErrUnauthenticated
	case http.StatusForbidden:
		class = errdefs.ErrPermissionDenied
	case http.StatusNotFound:
		class = errdefs.ErrNotFound
	case http.StatusTooManyRequests:
		class = errdefs.ErrResourceExhausted
	}
	for _, d := range te.Errors {
		if class != nil {
			break
		}
		switch d.Code {
		case transport.UnauthorizedErrorCode:
			class = errdefs.ErrUnauthenticated
		case transport.DeniedErrorCode:
			class = errdefs.ErrPermissionDenied
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			class = errdefs.ErrNotFound
		}
	}
	if class == nil {
		return err
	}
	return &classedError{err: err, class: class}
}

// resolved is what a manifest lookup found.
type resolved struct {
	topDigest      string // what the reference resolved to (index or manifest)
	manifestDigest string
	manifest       *v1.Manifest
	blobs          map[string][]byte // manifest and index bytes by digest
}

func (s *Service) pullFrom(ctx context.Context, r reference, ep endpoint, auth Auth) (Image, error) {
	authenticator := authn.Anonymous
	if a, ok := authFor(auth, ep.repo.RegistryStr()); ok {
		authenticator = authn.FromConfig(authn.AuthConfig{
			Username:      a.Username,
			Password:      a.Password,
			Auth:          a.Auth,
			IdentityToken: a.IdentityToken,
			RegistryToken: a.RegistryToken,
		})
	}
	base := s.transport
	if ep.insecure {
		base = s.insecure
	}
	tr, err := transport.NewWithContext(ctx, ep.repo.Registry, authenticator, base, []string{ep.repo.Scope(transport.PullScope)})
	if err != nil {
		return Image{}, err
	}
	client := &http.Client{Transport: tr, CheckRedirect: checkRedirect}

	res, err := resolve(ctx, r, ep, tr)
	if err != nil {
		return Image{}, err
	}
	id := res.manifest.Config.Digest.String()
	if res.manifest.Config.Digest.Algorithm != "sha256" {
		return Image{}, fmt.Errorf("config digest %s: only sha256 is supported: %w", id, errdefs.ErrNotImplemented)
	}

	held := s.hold()
	defer held.release()
	names := []string{r.withDigest(res.topDigest)}
	if r.tag != "" {
		names = append(names, r.String())
	}
	for d, b := range res.blobs {
		held.add("blob:" + d)
		if err := s.content.writeBlob(d, b); err != nil {
			return Image{}, err
		}
	}
	if rec := s.holdExisting(id, held); rec != nil {
		// The content is here already (another name, or an image removed while a container
		// still uses it): only the names are new. Should the record vanish before commit,
		// commit recreates it from this copy, without the names it had.
		base := rec.clone()
		base.RepoTags, base.RepoDigests, base.Users, base.Removed = nil, nil, nil, false
		return s.commit(ctx, base, res, names)
	}

	held.add("blob:" + id)
	cfgRaw, err := s.blobFlights.Do(ctx, id, func(ctx context.Context) ([]byte, error) {
		return s.fetchConfig(ctx, client, ep.repo, res.manifest.Config)
	})
	if err != nil {
		return Image{}, fmt.Errorf("config %s: %w", id, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
		return Image{}, fmt.Errorf("decode config %s: %w", id, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(res.manifest.Layers) {
		return Image{}, fmt.Errorf("manifest %s has %d layers but its config %s has %d diff ids: %w",
			res.manifestDigest, len(res.manifest.Layers), id, len(cfg.RootFS.DiffIDs), ErrDigestMismatch)
	}

	rec := &record{
		ID:             id,
		ManifestDigest: res.manifestDigest,
		ConfigSize:     res.manifest.Config.Size,
		Config:         cfg.Config,
		Platform:       cfg.Platform,
		Created:        cfg.Created,
		Annotations:    res.manifest.Annotations,
	}
	for d, b := range res.blobs {
		rec.Blobs = append(rec.Blobs, blobRef{Digest: d, Size: int64(len(b))})
	}
	rec.Blobs = append(rec.Blobs, blobRef{Digest: id, Size: int64(len(cfgRaw))})
	chain := ""
	for i, l := range res.manifest.Layers {
		diffID := cfg.RootFS.DiffIDs[i].String()
		if !digestRef.MatchString(diffID) || l.Digest.Algorithm != "sha256" {
			return Image{}, fmt.Errorf("layer %d of %s: only sha256 digests are supported: %w", i, id, errdefs.ErrNotImplemented)
		}
		if strings.Contains(string(l.MediaType), "encrypted") {
			return Image{}, fmt.Errorf("layer %s has media type %s: encrypted layers are not supported: %w", l.Digest, l.MediaType, errdefs.ErrNotImplemented)
		}
		if chain == "" {
			chain = diffID
		} else {
			sum := sha256.Sum256([]byte(chain + " " + diffID))
			chain = "sha256:" + hex.EncodeToString(sum[:])
		}
		rec.Layers = append(rec.Layers, layerRecord{Digest: l.Digest.String(), Size: l.Size, DiffID: diffID, ChainID: chain})
		held.add("layer:"+chain, "blob:"+l.Digest.String())
	}

	budget, err := s.newPullBudget()
	if err != nil {
		return Image{}, err
	}
	if err := s.fetchLayers(ctx, client, ep.repo, rec.Layers, budget); err != nil {
		return Image{}, err
	}
	if !s.cfg.DiscardLayerBlobs {
		for _, l := range rec.Layers {
			if exists(s.content.blobPath(l.Digest)) {
				rec.Blobs = append(rec.Blobs, blobRef{Digest: l.Digest, Size: l.Size})
			}
		}
	}
	// Everything the record will point at must be on disk before the record is.
	if err := syncFS(s.content.root); err != nil {
		return Image{}, err
	}
	return s.commit(ctx, rec, res, names)
}

// resolve fetches the manifest r names at ep, and for an index the manifest of this host's
// platform.
func resolve(ctx context.Context, r reference, ep endpoint, tr http.RoundTripper) (resolved, error) {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr)}
	var target name.Reference = ep.repo.Tag(r.tag)
	if r.digest != "" {
		target = ep.repo.Digest(r.digest)
	}
	desc, err := remote.Get(target, opts...)
	if err != nil {
		return resolved{}, err
	}
	res := resolved{topDigest: desc.Digest.String(), blobs: map[string][]byte{desc.Digest.String(): desc.Manifest}}
	raw, mt, dgst := desc.Manifest, desc.MediaType, desc.Digest
	if mt.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return resolved{}, fmt.Errorf("decode index %s: %w", dgst, err)
		}
		child, err := pickPlatform(idx)
		if err != nil {
			return resolved{}, fmt.Errorf("index %s: %w", dgst, err)
		}
		// Fetched by digest: go-containerregistry checks the bytes against it.
		cdesc, err := remote.Get(ep.repo.Digest(child.Digest.String()), opts...)
		if err != nil {
			return resolved{}, err
		}
		raw, mt, dgst = cdesc.Manifest, cdesc.MediaType, cdesc.Digest
		res.blobs[dgst.String()] = raw
	}
	switch {
	case mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed:
		return resolved{}, fmt.Errorf("manifest %s is Docker schema 1, which is not supported: %w", dgst, errdefs.ErrNotImplemented)
	case mt.IsIndex():
		return resolved{}, fmt.Errorf("index %s nests another index, which is not supported: %w", dgst, errdefs.ErrNotImplemented)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return resolved{}, fmt.Errorf("decode manifest %s: %w", dgst, err)
	}
	res.manifest, res.manifestDigest = m, dgst.String()
	return res, nil
}

// pickPlatform chooses the manifest for linux on this machine's architecture.
func pickPlatform(idx *v1.IndexManifest) (v1.Descriptor, error) {
	for _, d := range idx.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no manifest for platform linux/%s: %w", runtime.GOARCH, errdefs.ErrNotFound)
}

// checkRedirect refuses a registry's redirect to another host that is a private, loopback or
// link-local address (a blob "stored" at a cloud metadata endpoint, say).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if len(via) == 0 || req.URL.Hostname() == via[0].URL.Hostname() {
		return nil
	}
	if ip := net.ParseIP(req.URL.Hostname()); ip != nil && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()) {
		return fmt.Errorf("registry redirect from %s to private address %s refused", via[0].URL.Host, req.URL.Host)
	}
	return nil
}

// openBlob starts the download of a blob.
func openBlob(ctx context.Context, client *http.Client, repo name.Repository, digest string) (io.ReadCloser, error) {
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/blobs/" + digest}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp.Body, nil
}

// verifier counts and hashes what is read through it.
type verifier struct {
	r io.Reader
	h hash.Hash
	n int64
}

func newVerifier(r io.Reader, size int64) *verifier {
	// One byte past the promised size is read so that a longer blob is caught.
	return &verifier{r: io.LimitReader(r, size+1), h: sha256.New()}
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	return n, err
}

// check compares what was read with the promised digest and size.
func (v *verifier) check(digest string, size int64) error {
	if v.n != size {
		return fmt.Errorf("blob %s: got %d bytes, want %d: %w", digest, v.n, size, ErrDigestMismatch)
	}
	if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != digest {
		return fmt.Errorf("blob %s: content has digest %s: %w", digest, got, ErrDigestMismatch)
	}
	return nil
}

// fetchConfig returns the config blob, from the content store or from the registry.
func (s *Service) fetchConfig(ctx context.Context, client *http.Client, repo name.Repository, desc v1.Descriptor) ([]byte, error) {
	d := desc.Digest.String()
	if b, err := s.content.readBlob(d); err == nil {
		return b, nil
	}
	if desc.Size > maxConfigSize {
		return nil, fmt.Errorf("config is %d bytes, more than %d: %w", desc.Size, maxConfigSize, errdefs.ErrInvalidArgument)
	}
	body, err := openBlob(ctx, client, repo, d)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	v := newVerifier(body, desc.Size)
	b, err := io.ReadAll(v)
	if err != nil {
		return nil, err
	}
	if err := v.check(d, desc.Size); err != nil {
		return nil, err
	}
	if err := s.content.writeBlob(d, b); err != nil {
		return nil, err
	}
	return b, nil
}

// fetchLayers makes sure every layer is unpacked, downloading at most
// Config.MaxConcurrentDownloads at once; pulls sharing a layer share its download.
func (s *Service) fetchLayers(ctx context.Context, client *http.Client, repo name.Repository, layers []layerRecord, budget *pullBudget) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.maxDownloads)
	errs := make([]error, len(layers))
	var wg sync.WaitGroup
	for i := range layers {
		l := &layers[i]
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			res, err := s.layerFlights.Do(ctx, l.ChainID, func(ctx context.Context) (layerResult, error) {
				return s.ensureLayer(ctx, client, repo, *l, budget)
			})
			if err != nil {
				errs[i] = fmt.Errorf("layer %s: %w", l.Digest, err)
				cancel()
				return
			}
			l.Bytes, l.Inodes = res.bytes, res.inodes
		})
	}
	wg.Wait()
	// Report the failure that stopped the pull, not the cancellations it caused.
	var first error
	for _, err := range errs {
		if err != nil && !isCanceled(err) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// layerResult is what unpacking a layer measured.
type layerResult struct{ bytes, inodes uint64 }

// ensureLayer unpacks one layer into layers/<chain> unless it is there already: download,
// verify and unpack in one pass (tee'd to the blob file), then rename into place once both
// digests check out.
func (s *Service) ensureLayer(ctx context.Context, client *http.Client, repo name.Repository, l layerRecord, budget *pullBudget) (layerResult, error) {
	dst := s.content.layerPath(l.ChainID)
	if exists(dst) {
		return s.layerUsage(l.ChainID, dst)
	}
	if l.Size > budget.maxLayer {
		return layerResult{}, fmt.Errorf("compressed layer of %d bytes is larger than %d bytes (images.max_layer_size): %w", l.Size, budget.maxLayer, errdefs.ErrResourceExhausted)
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(s.content.tmpDir(), "layer-")
	if err != nil {
		return layerResult{}, fmt.Errorf("unpack dir: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(tmp)
		}
	}()
	body, err := openBlob(ctx, client, repo, l.Digest)
	if err != nil {
		return layerResult{}, err
	}
	defer body.Close()
	v := newVerifier(body, l.Size)
	var in io.Reader = v
	var ingest *os.File
	if !s.cfg.DiscardLayerBlobs && !exists(s.content.blobPath(l.Digest)) {
		ingest, err = os.CreateTemp(s.content.ingestDir(), "layer-")
		if err != nil {
			return layerResult{}, fmt.Errorf("ingest: %w", err)
		}
		defer func() {
			_ = ingest.Close()
			if !committed {
				_ = os.Remove(ingest.Name())
			}
		}()
		in = io.TeeReader(v, ingest)
	}
	diffID, err := unpackLayer(ctx, in, tmp, &layerBudget{pull: budget})
	if err != nil {
		if ctx.Err() != nil {
			return layerResult{}, ctx.Err()
		}
		// Corrupt data usually breaks the decompressor or the tar reader before the digest
		// can be compared; say so when that is the cause.
		if _, derr := io.Copy(io.Discard, v); derr == nil {
			if verr := v.check(l.Digest, l.Size); verr != nil {
				return layerResult{}, fmt.Errorf("%w (unpacking failed: %v)", verr, err)
			}
		}
		return layerResult{}, err
	}
	if err := v.check(l.Digest, l.Size); err != nil {
		return layerResult{}, err
	}
	if diffID != l.DiffID {
		return layerResult{}, fmt.Errorf("uncompressed layer has digest %s, config says %s: %w", diffID, l.DiffID, ErrDigestMismatch)
	}
	bytes, inodes, err := usage(tmp)
	if err != nil {
		return layerResult{}, err
	}
	if ingest != nil {
		if err := ingest.Close(); err != nil {
			return layerResult{}, fmt.Errorf("ingest: %w", err)
		}
		if err := os.Rename(ingest.Name(), s.content.blobPath(l.Digest)); err != nil {
			return layerResult{}, fmt.Errorf("store blob %s: %w", l.Digest, err)
		}
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return layerResult{}, fmt.Errorf("restrict layer %s to root: %w", l.ChainID, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		if !exists(dst) {
			return layerResult{}, fmt.Errorf("commit layer %s: %w", l.ChainID, err)
		}
		// Another process-lifetime flight committed it first (a cancelled run overlapping a
		// new one); ours is identical and goes.
	} else {
		committed = true
	}
	log.From(ctx).Debug("layer unpacked", zap.String("digest", l.Digest), zap.String("chain_id", l.ChainID),
		zap.Int64("size", l.Size), zap.Duration(log.KeyDuration, time.Since(start)))
	return layerResult{bytes: bytes, inodes: inodes}, nil
}

// newPullBudget bounds one pull by the configured sizes and the image filesystem's free
// space, less its margin, as it is now.
func (s *Service) newPullBudget() (*pullBudget, error) {
	free, size, err := fsSpace(s.content.root)
	if err != nil {
		return nil, err
	}
	return newPullBudget(s.cfg.MaxLayerSize, s.cfg.MaxImageSize, free-freeSpaceMargin(size)), nil
}
