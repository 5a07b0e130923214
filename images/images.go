// Package images is peapod's image store: it pulls images from registries (mirrors, insecure
// hosts, credentials), keeps their blobs in a content store verified against their digests,
// unpacks each layer once into a read-only directory keyed by its chain id (whiteouts
// converted for overlayfs), and keeps image metadata (names, config, pins, the containers
// that use an image) in the store package's database. It is the only package that imports
// go-containerregistry.
//
// On disk, under Config.Root/images:
//
//	blobs/sha256/<hex>   manifests, indexes, configs and (unless DiscardLayerBlobs) layer blobs
//	layers/<chain-hex>/  one unpacked layer: an overlayfs lowerdir, complete once it exists
//	ingest/              blobs being downloaded (emptied at New)
//	tmp/                 layers being unpacked and content being deleted (emptied at New)
//
// Every directory of the store, each unpacked layer's included, is root's alone (0700, as
// containerd's are, fixed at New for stores made by earlier versions): layers hold the
// images' setuid binaries and device nodes with their own modes, and containers see them only
// through their overlay mounts, whose lower directories the kernel reaches with the
// mounter's credentials.
//
// Layers are unpacked by this package's own unpacker (unpack.go): every path resolved inside
// the layer through an os.Root, hostile entries refused with errdefs.ErrInvalidArgument,
// files written with their holes left holes, the pull's context checked before every entry
// and every 1 MiB chunk, and the uncompressed size bounded (Config.MaxLayerSize,
// Config.MaxImageSize, the filesystem's free space) with errdefs.ErrResourceExhausted.
// Layers are unpacked into tmp/ and renamed into layers/ only after both the compressed digest
// and the uncompressed diff id are verified; the image record is written to the database only
// after every layer is in place and the filesystem is synced. New deletes everything in
// layers/ and blobs/ that no record references, so a daemon killed mid-pull leaves nothing
// behind that a later pull could mistake for complete content.
package images

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/inflight"
	"github.com/peapod-runtime/peapod/store"
)

// DefaultMaxConcurrentDownloads bounds the layers one pull fetches at once when
// Config.MaxConcurrentDownloads is zero.
const DefaultMaxConcurrentDownloads = 3

// ErrDigestMismatch is returned (wrapped, naming the blob) when a registry sends content
// whose digest or size differs from the one the manifest or config promised. It wraps
// errdefs.ErrDataLoss. Nothing of such a pull is stored.
var ErrDigestMismatch = fmt.Errorf("digest mismatch: %w", errdefs.ErrDataLoss)

// Config configures a Service.
type Config struct {
	// Root is the daemon's root directory; the image store lives in Root/images.
	Root string
	// Registries configures registry hosts by name as written in image references
	// ("docker.io", "registry.k8s.io", "127.0.0.1:5000").
	Registries map[string]RegistryConfig
	// Pinned lists references (or image ids) reported with Pinned set.
	Pinned []string
	// MaxConcurrentDownloads bounds the layers one pull fetches in parallel;
	// 0 means DefaultMaxConcurrentDownloads.
	MaxConcurrentDownloads int
	// DiscardLayerBlobs keeps only the unpacked layers, not their compressed blobs, which
	// halves the disk space and writes a pull costs. Manifests and configs are always kept.
	DiscardLayerBlobs bool
	// OnPull, if set, is told of every Pull when it ends: the image's size (Image.Size, 0
	// when it failed), how long it took, and its error.
	OnPull func(size uint64, took time.Duration, err error)
	// MaxLayerSize and MaxImageSize bound the uncompressed size of one layer and of one
	// image (entry headers plus file sizes, holes of sparse files included); 0 means
	// DefaultMaxLayerSize and DefaultMaxImageSize. Whatever they say, a pull never writes
	// more than the image filesystem has free, less a margin of 1/20 of its size (at most
	// 1 GiB). A pull over a bound fails with errdefs.ErrResourceExhausted and stores nothing.
	MaxLayerSize int64
	MaxImageSize int64
}

// RegistryConfig configures one registry host.
type RegistryConfig struct {
	// Mirrors are tried in order before the host itself, as URLs whose scheme says how to
	// reach them: "http://127.0.0.1:5000" or "https://mirror.example.com". A mirror serves
	// the same repository paths as the host (docker.io's library/busybox stays
	// library/busybox). Paths other than "/" or "/v2" are rejected.
	Mirrors []string
	// Insecure reaches the host itself over plain HTTP, or HTTPS without verifying its
	// certificate.
	Insecure bool
}

// Auth holds the credentials of one pull. It is never logged; its String method hides it.
type Auth struct {
	Username string
	Password string
	// Auth is base64("username:password"), as in a Docker config file.
	Auth string
	// IdentityToken is an OAuth2 refresh token exchanged for a registry token.
	IdentityToken string
	// RegistryToken is a bearer token sent as is.
	RegistryToken string
	// ServerAddress, when set, restricts the credentials to that registry host (as in
	// "docker.io" or "https://index.docker.io/v1/"); when empty they go to every host a pull
	// contacts, mirrors included.
	ServerAddress string
}

// String hides the credentials from accidental formatting.
func (a Auth) String() string {
	if a.empty() {
		return "Auth{}"
	}
	return "Auth{redacted}"
}

// GoString hides the credentials from %#v.
func (a Auth) GoString() string { return a.String() }

func (a Auth) empty() bool {
	return a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == ""
}

// Image is what the store knows about one image.
type Image struct {
	// ID is "sha256:" + the hex digest of the image config: the image id everywhere.
	ID string
	// RepoTags are normalised "host/repo:tag" names, e.g. "docker.io/library/busybox:1.36".
	RepoTags []string
	// RepoDigests are "host/repo@sha256:..." names; the digest is the one the reference
	// resolved to (an index digest for multi-platform images).
	RepoDigests []string
	// Size is the content size, as containerd reports it: the compressed layers plus the
	// config, in bytes.
	Size uint64
	// UID is set when the config's User is numeric (the uid part of "uid:gid").
	UID *int64
	// Username is set when the config's User is a name (the user part of "user:group").
	Username string
	// Config is the OCI image config (Env, Entrypoint, Cmd, WorkingDir, User, Volumes,
	// StopSignal, Labels, ExposedPorts).
	Config ocispec.ImageConfig
	// Platform is the config's os, architecture and variant.
	Platform ocispec.Platform
	// Created is the config's creation time, if any.
	Created *time.Time
	// Pinned is set when one of the image's names or its id is in Config.Pinned.
	Pinned bool
	// Annotations are the image manifest's annotations.
	Annotations map[string]string
	// ManifestDigest is the digest of the platform-specific image manifest.
	ManifestDigest string
}

// FsUsage is the image store's share of its filesystem.
type FsUsage struct {
	// Mountpoint is the image store's directory (Root/images); the filesystem holding it is
	// the image filesystem.
	Mountpoint string
	// UsedBytes and InodesUsed count the store's own content: unpacked layers (allocated
	// blocks) and blobs.
	UsedBytes  uint64
	InodesUsed uint64
	// Timestamp is when the figures were taken.
	Timestamp time.Time
}

// Service pulls, stores and serves images. It is safe for concurrent use: reads (Status,
// List, Resolve, LayerPaths, FsInfo) use in-memory indexes and never wait for a pull.
type Service struct {
	cfg     Config
	content contentStore
	db      *store.DB
	logger  *zap.Logger

	maxDownloads int
	pinned       map[string]bool
	registries   map[string]registryEndpoints
	transport    http.RoundTripper
	insecure     http.RoundTripper

	mu       sync.RWMutex
	images   map[string]*record // by id, including removed images kept for containers
	names    map[string]string  // normalised tag or digest reference -> id (live images only)
	inflight map[string]int     // content keys ("layer:<chain>", "blob:<digest>") pulls hold

	layerFlights inflight.Shared[layerResult]
	blobFlights  inflight.Shared[[]byte]
}

// registryEndpoints is the parsed form of one RegistryConfig.
type registryEndpoints struct {
	mirrors  []mirror
	insecure bool
}

type mirror struct {
	host string
	http bool
	url  string
}

// New opens the image store under cfg.Root/images: it loads the image records from db,
// removes partial downloads and unpacks left by a previous process, and deletes content no
// record references.
func New(ctx context.Context, cfg Config, db *store.DB, logger *zap.Logger) (*Service, error) {
	if cfg.Root == "" || !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("image store root %q must be an absolute path: %w", cfg.Root, errdefs.ErrInvalidArgument)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	s := &Service{
		cfg:          cfg,
		content:      contentStore{root: filepath.Join(cfg.Root, "images")},
		db:           db,
		logger:       logger,
		maxDownloads: cfg.MaxConcurrentDownloads,
		pinned:       map[string]bool{},
		registries:   map[string]registryEndpoints{},
		images:       map[string]*record{},
		names:        map[string]string{},
		inflight:     map[string]int{},
	}
	if s.maxDownloads <= 0 {
		s.maxDownloads = DefaultMaxConcurrentDownloads
	}
	if s.cfg.MaxLayerSize <= 0 {
		s.cfg.MaxLayerSize = DefaultMaxLayerSize
	}
	if s.cfg.MaxImageSize <= 0 {
		s.cfg.MaxImageSize = DefaultMaxImageSize
	}
	for _, p := range cfg.Pinned {
		if id, ok := parseID(p); ok {
			s.pinned[id] = true
			continue
		}
		r, err := parseReference(p)
		if err != nil {
			return nil, fmt.Errorf("pinned image: %w", err)
		}
		s.pinned[r.String()] = true
	}
	for host, rc := range cfg.Registries {
		eps := registryEndpoints{insecure: rc.Insecure}
		for _, m := range rc.Mirrors {
			mm, err := parseMirror(m)
			if err != nil {
				return nil, fmt.Errorf("registry %q: %w", host, err)
			}
			eps.mirrors = append(eps.mirrors, mm)
		}
		s.registries[canonicalHost(host)] = eps
	}
	s.transport, s.insecure = newTransports()

	if err := s.content.init(); err != nil {
		return nil, err
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	trash, err := s.sweepLocked()
	if err != nil {
		return nil, err
	}
	removeAll(logger, trash)
	return s, nil
}

func parseMirror(raw string) (mirror, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return mirror{}, fmt.Errorf("mirror %q must be an http:// or https:// URL: %w", raw, errdefs.ErrInvalidArgument)
	}
	switch strings.TrimSuffix(u.Path, "/") {
	case "", "/v2":
	default:
		return mirror{}, fmt.Errorf("mirror %q: a path prefix is not supported: %w", raw, errdefs.ErrInvalidArgument)
	}
	return mirror{host: u.Host, http: u.Scheme == "http", url: raw}, nil
}

// newTransports returns the shared HTTP transports: one verifying TLS, one for insecure
// hosts. Retries of transient failures (5xx, 429, resets) come from ggcr's retry wrapper.
func newTransports() (secure, insecure http.RoundTripper) {
	t, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		t = http.DefaultTransport.(*http.Transport)
	}
	base := t.Clone()
	base.MaxIdleConnsPerHost = 16
	ins := base.Clone()
	if ins.TLSClientConfig == nil {
		ins.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	ins.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // configured insecure registries only
	return transport.NewRetry(base), transport.NewRetry(ins)
}

// removeAll deletes paths (content moved aside by a sweep), logging failures: a leftover is
// removed again at the next New.
func removeAll(logger *zap.Logger, paths []string) {
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			logger.Warn("remove image content", zap.String("path", p), zap.Error(err))
		}
	}
}

// toImage converts a record to the exported view. Callers hold s.mu.
func (s *Service) toImage(r *record) Image {
	img := Image{
		ID:             r.ID,
		RepoTags:       slices.Clone(r.RepoTags),
		RepoDigests:    slices.Clone(r.RepoDigests),
		Size:           r.size(),
		Config:         cloneConfig(r.Config),
		Platform:       r.Platform,
		Created:        r.Created,
		Annotations:    maps.Clone(r.Annotations),
		ManifestDigest: r.ManifestDigest,
	}
	img.UID, img.Username = userOf(r.Config.User)
	img.Pinned = s.pinned[r.ID]
	for _, n := range r.RepoTags {
		img.Pinned = img.Pinned || s.pinned[n]
	}
	for _, n := range r.RepoDigests {
		img.Pinned = img.Pinned || s.pinned[n]
	}
	return img
}

func cloneConfig(c ocispec.ImageConfig) ocispec.ImageConfig {
	c.Env = slices.Clone(c.Env)
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Cmd = slices.Clone(c.Cmd)
	c.Volumes = maps.Clone(c.Volumes)
	c.ExposedPorts = maps.Clone(c.ExposedPorts)
	c.Labels = maps.Clone(c.Labels)
	return c
}

// userOf splits an image's User the way the CRI wants it: a numeric user (the part before
// ":") is a uid, anything else a user name; an empty User is neither.
func userOf(user string) (*int64, string) {
	if user == "" {
		return nil, ""
	}
	user, _, _ = strings.Cut(user, ":")
	if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
		return &uid, ""
	}
	return nil, user
}

// isCanceled reports whether err is a context's cancellation or deadline.
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
