package images

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/store"
)

// imagesBucket holds one record per image, keyed by image id.
const imagesBucket = "images"

// record is an image as persisted. Records are immutable once published in Service.images:
// changes replace the pointer.
type record struct {
	ID             string              `json:"id"`
	RepoTags       []string            `json:"repo_tags,omitempty"`
	RepoDigests    []string            `json:"repo_digests,omitempty"`
	ManifestDigest string              `json:"manifest_digest"`
	ConfigSize     int64               `json:"config_size"`
	Layers         []layerRecord       `json:"layers"`
	Blobs          []blobRef           `json:"blobs"`
	Config         ocispec.ImageConfig `json:"config"`
	Platform       ocispec.Platform    `json:"platform"`
	Created        *time.Time          `json:"created,omitempty"`
	Annotations    map[string]string   `json:"annotations,omitempty"`
	// Removed images have lost their names but keep their content for the containers in
	// Users; the record goes when the last of them is released.
	Removed bool     `json:"removed,omitempty"`
	Users   []string `json:"users,omitempty"`
	// VolumeUsers are the containers that mount the image as an image volume: Remove
	// refuses the image while there is one (see UseAsVolume).
	VolumeUsers []string `json:"volume_users,omitempty"`
}

// layerRecord is one layer of an image, bottom first.
type layerRecord struct {
	Digest  string `json:"digest"`   // compressed blob
	Size    int64  `json:"size"`     // compressed size
	DiffID  string `json:"diff_id"`  // uncompressed digest
	ChainID string `json:"chain_id"` // names its directory in layers/
	Bytes   uint64 `json:"bytes"`    // allocated by the unpacked layer
	Inodes  uint64 `json:"inodes"`
}

// blobRef is a blob an image keeps in blobs/.
type blobRef struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

func (r *record) size() uint64 {
	n := uint64(r.ConfigSize)
	for _, l := range r.Layers {
		n += uint64(l.Size)
	}
	return n
}

func (r *record) clone() *record {
	c := *r
	c.RepoTags = slices.Clone(r.RepoTags)
	c.RepoDigests = slices.Clone(r.RepoDigests)
	c.Layers = slices.Clone(r.Layers)
	c.Blobs = slices.Clone(r.Blobs)
	c.Users = slices.Clone(r.Users)
	c.VolumeUsers = slices.Clone(r.VolumeUsers)
	return &c
}

// load reads the records. A record whose layers are missing (deleted by hand, or a store
// restored without its files) is dropped unless a container still uses it, so that the next
// pull fetches the image again.
func (s *Service) load(ctx context.Context) error {
	var broken []string
	err := s.db.ForEach(imagesBucket, func(key string, raw []byte) error {
		var r record
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("decode image record %s: %w", key, err)
		}
		for _, l := range r.Layers {
			if !exists(s.content.layerPath(l.ChainID)) && len(r.Users) == 0 && len(r.VolumeUsers) == 0 {
				broken = append(broken, r.ID)
				return nil
			}
		}
		s.images[r.ID] = &r
		if !r.Removed {
			for _, n := range r.names() {
				s.names[n] = r.ID
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load images: %w", err)
	}
	for _, id := range broken {
		s.logger.Warn("dropping image whose layers are missing", zap.String("image_id", id))
		if err := s.db.Delete(imagesBucket, id); err != nil {
			return fmt.Errorf("drop image %s: %w", id, err)
		}
	}
	return nil
}

func (r *record) names() []string { return append(slices.Clone(r.RepoTags), r.RepoDigests...) }

// held is a pull's claim on content keys: the sweep leaves them alone until released.
type held struct {
	s    *Service
	keys []string
}

func (s *Service) hold() *held { return &held{s: s} }

func (h *held) add(keys ...string) {
	h.s.mu.Lock()
	h.addLocked(keys...)
	h.s.mu.Unlock()
}

func (h *held) addLocked(keys ...string) {
	for _, k := range keys {
		h.s.inflight[k]++
	}
	h.keys = append(h.keys, keys...)
}

func (h *held) release() {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	for _, k := range h.keys {
		if h.s.inflight[k]--; h.s.inflight[k] <= 0 {
			delete(h.s.inflight, k)
		}
	}
	h.keys = nil
}

func contentKeys(r *record) []string {
	var keys []string
	for _, l := range r.Layers {
		keys = append(keys, "layer:"+l.ChainID)
	}
	for _, b := range r.Blobs {
		keys = append(keys, "blob:"+b.Digest)
	}
	return keys
}

// holdExisting returns the record of image id if its content is stored, holding that
// content for the caller.
func (s *Service) holdExisting(id string, h *held) *record {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.images[id]
	if r == nil {
		return nil
	}
	h.addLocked(contentKeys(r)...)
	return r
}

// layerUsage returns the recorded usage of an unpacked layer, measuring it when no record
// knows it.
func (s *Service) layerUsage(chainID, dir string) (layerResult, error) {
	s.mu.RLock()
	for _, r := range s.images {
		for _, l := range r.Layers {
			if l.ChainID == chainID && l.Inodes > 0 {
				s.mu.RUnlock()
				return layerResult{bytes: l.Bytes, inodes: l.Inodes}, nil
			}
		}
	}
	s.mu.RUnlock()
	b, n, err := usage(dir)
	return layerResult{bytes: b, inodes: n}, err
}

// commit publishes a pulled image: it adds names to the record (creating it from pulled,
// or reviving a removed one), takes tags that named other images away from them, and
// persists every changed record in one transaction before changing memory.
func (s *Service) commit(ctx context.Context, pulled *record, res resolved, names []string) (Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := pulled.clone()
	if cur := s.images[pulled.ID]; cur != nil {
		r = cur.clone()
	}
	for d, b := range res.blobs {
		if !slices.ContainsFunc(r.Blobs, func(x blobRef) bool { return x.Digest == d }) {
			r.Blobs = append(r.Blobs, blobRef{Digest: d, Size: int64(len(b))})
		}
	}
	r.Removed = false
	changed := map[string]*record{}
	for _, n := range names {
		if strings.Contains(n, "@") {
			if !slices.Contains(r.RepoDigests, n) {
				r.RepoDigests = append(r.RepoDigests, n)
			}
		} else if !slices.Contains(r.RepoTags, n) {
			r.RepoTags = append(r.RepoTags, n)
		}
		if old := s.names[n]; old != "" && old != r.ID {
			o := changed[old]
			if o == nil {
				o = s.images[old].clone()
				changed[old] = o
			}
			o.RepoTags = slices.DeleteFunc(o.RepoTags, func(x string) bool { return x == n })
			o.RepoDigests = slices.DeleteFunc(o.RepoDigests, func(x string) bool { return x == n })
		}
	}
	slices.Sort(r.RepoTags)
	slices.Sort(r.RepoDigests)
	changed[r.ID] = r
	if err := s.db.Update(func(tx *store.Tx) error {
		for id, c := range changed {
			if err := tx.Put(imagesBucket, id, c); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return Image{}, fmt.Errorf("record image %s: %w", r.ID, err)
	}
	for id, c := range changed {
		s.images[id] = c
	}
	for _, n := range names {
		s.names[n] = r.ID
	}
	return s.toImage(r), nil
}

// lookupLocked finds the live image ref names: a full id, a tag or digest reference in any
// form Pull accepts, or a unique id prefix. Callers hold s.mu.
func (s *Service) lookupLocked(ref string) (*record, error) {
	if id, ok := parseID(ref); ok {
		if r := s.images[id]; r != nil && !r.Removed {
			return r, nil
		}
		return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	if r, err := parseReference(ref); err == nil {
		if id, ok := s.names[r.String()]; ok {
			return s.images[id], nil
		}
	}
	if idPrefix.MatchString(ref) {
		prefix := "sha256:" + strings.TrimPrefix(ref, "sha256:")
		var found *record
		for id, r := range s.images {
			if r.Removed || !strings.HasPrefix(id, prefix) {
				continue
			}
			if found != nil {
				return nil, fmt.Errorf("image id prefix %q is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
			}
			found = r
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

// Status returns the image ref names (id, unique id prefix, tag or digest reference). An
// unknown image, or a ref that cannot name one, is errdefs.ErrNotFound; an ambiguous id
// prefix is errdefs.ErrInvalidArgument.
func (s *Service) Status(ctx context.Context, ref string) (*Image, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.lookupLocked(ref)
	if err != nil {
		return nil, err
	}
	img := s.toImage(r)
	return &img, nil
}

// Resolve returns the id of the image ref names, as Status finds it; errdefs.ErrNotFound
// names ref when the image is not stored.
func (s *Service) Resolve(ctx context.Context, ref string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.lookupLocked(ref)
	if err != nil {
		return "", err
	}
	return r.ID, nil
}

// List returns the stored images sorted by id; with a non-empty filter, only the image the
// filter names (as Status finds it), or none.
func (s *Service) List(ctx context.Context, filter string) ([]Image, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if filter != "" {
		r, err := s.lookupLocked(filter)
		if err != nil {
			return []Image{}, nil //nolint:nilerr // a filter naming nothing lists nothing
		}
		return []Image{s.toImage(r)}, nil
	}
	out := make([]Image, 0, len(s.images))
	for _, r := range s.images {
		if !r.Removed {
			out = append(out, s.toImage(r))
		}
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Remove deletes the image ref names (id, digest or tag) with all its names. A tag removes
// the image it names, with the image's other tags. An image that containers use loses its
// names at once and its content when the last of them is released. Content no image uses
// is deleted. Removing an unknown image succeeds. An image mounted as an image volume is
// refused (ErrFailedPrecondition) until those containers are removed.
func (s *Service) Remove(ctx context.Context, ref string) error {
	s.mu.Lock()
	r, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	if err := volumeInUse(r); err != nil {
		s.mu.Unlock()
		return err
	}
	trash, err := s.dropLocked(r, true)
	s.mu.Unlock()
	removeAll(s.logger, trash)
	return err
}

// dropLocked removes r's names, and r itself unless containers use it, then sweeps the
// content that nothing references any more. Callers hold s.mu.
func (s *Service) dropLocked(r *record, unname bool) ([]string, error) {
	if len(r.Users) > 0 {
		n := r.clone()
		n.RepoTags, n.RepoDigests, n.Removed = nil, nil, true
		if err := s.db.Put(imagesBucket, r.ID, n); err != nil {
			return nil, fmt.Errorf("remove image %s: %w", r.ID, err)
		}
		s.images[r.ID] = n
	} else {
		if err := s.db.Delete(imagesBucket, r.ID); err != nil {
			return nil, fmt.Errorf("remove image %s: %w", r.ID, err)
		}
		delete(s.images, r.ID)
	}
	if unname {
		for _, n := range r.names() {
			if s.names[n] == r.ID {
				delete(s.names, n)
			}
		}
	}
	return s.sweepLocked()
}

// sweepLocked moves aside every layer and blob that no record references and no pull
// holds, returning the paths to delete once s.mu is released.
func (s *Service) sweepLocked() ([]string, error) {
	keep := map[string]bool{}
	for k := range s.inflight {
		keep[k] = true
	}
	for _, r := range s.images {
		for _, k := range contentKeys(r) {
			keep[k] = true
		}
	}
	var trash []string
	for _, dir := range []struct{ path, prefix string }{
		{s.content.layersDir(), "layer:sha256:"},
		{s.content.blobsDir(), "blob:sha256:"},
	} {
		entries, err := os.ReadDir(dir.path)
		if err != nil {
			return trash, fmt.Errorf("sweep image content: %w", err)
		}
		for _, e := range entries {
			if keep[dir.prefix+e.Name()] {
				continue
			}
			p, err := s.content.moveAside(filepath.Join(dir.path, e.Name()))
			if err != nil {
				return trash, err
			}
			trash = append(trash, p)
		}
	}
	return trash, nil
}

// collect deletes the content no image references and no pull holds: what a failed pull
// stored before it failed.
func (s *Service) collect() {
	s.mu.Lock()
	trash, err := s.sweepLocked()
	s.mu.Unlock()
	if err != nil {
		s.logger.Warn("sweep image content", zap.Error(err))
	}
	removeAll(s.logger, trash)
}

// Use records that container containerID uses image id (the id Resolve returned), so that
// the image's content outlives a Remove until Release. Calling it twice is fine; an image
// that is not stored is errdefs.ErrNotFound.
func (s *Service) Use(ctx context.Context, id, containerID string) error {
	if containerID == "" {
		return fmt.Errorf("use image %s: empty container id: %w", id, errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.record(id)
	if r == nil {
		return fmt.Errorf("image %q: %w", id, errdefs.ErrNotFound)
	}
	if slices.Contains(r.Users, containerID) {
		return nil
	}
	n := r.clone()
	n.Users = append(n.Users, containerID)
	slices.Sort(n.Users)
	if err := s.db.Put(imagesBucket, n.ID, n); err != nil {
		return fmt.Errorf("image %s used by %s: %w", id, containerID, err)
	}
	s.images[n.ID] = n
	return nil
}

// Release undoes Use. When the image was removed meanwhile and this was its last container,
// its content is deleted. Releasing what is not used succeeds.
func (s *Service) Release(ctx context.Context, id, containerID string) error {
	s.mu.Lock()
	r := s.record(id)
	if r == nil || !slices.Contains(r.Users, containerID) {
		s.mu.Unlock()
		return nil
	}
	n := r.clone()
	n.Users = slices.DeleteFunc(n.Users, func(x string) bool { return x == containerID })
	var trash []string
	var err error
	if n.Removed && len(n.Users) == 0 {
		trash, err = s.dropLocked(n, false)
	} else if err = s.db.Put(imagesBucket, n.ID, n); err == nil {
		s.images[n.ID] = n
	}
	s.mu.Unlock()
	removeAll(s.logger, trash)
	if err != nil {
		return fmt.Errorf("release image %s from %s: %w", id, containerID, err)
	}
	return nil
}

// record returns the record of a full image id (with or without "sha256:"), removed images
// included. Callers hold s.mu.
func (s *Service) record(id string) *record {
	if full, ok := parseID(id); ok {
		return s.images[full]
	}
	return nil
}

// LayerPaths returns the unpacked layers of image id, top layer first: the lowerdirs of an
// overlay mount of its root filesystem. It answers for images removed while containers use
// them too. An unknown id is errdefs.ErrNotFound.
func (s *Service) LayerPaths(ctx context.Context, id string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.record(id)
	if r == nil {
		return nil, fmt.Errorf("image %q: %w", id, errdefs.ErrNotFound)
	}
	paths := make([]string, 0, len(r.Layers))
	for i := len(r.Layers) - 1; i >= 0; i-- {
		paths = append(paths, s.content.layerPath(r.Layers[i].ChainID))
	}
	return paths, nil
}

// FsInfo returns the image store's usage: every unpacked layer once (allocated bytes and
// inodes as measured when it was unpacked) and every stored blob.
func (s *Service) FsInfo(ctx context.Context) (FsUsage, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := FsUsage{Mountpoint: s.content.root, Timestamp: time.Now()}
	layers := map[string]bool{}
	blobs := map[string]bool{}
	for _, r := range s.images {
		for _, l := range r.Layers {
			if !layers[l.ChainID] {
				layers[l.ChainID] = true
				u.UsedBytes += l.Bytes
				u.InodesUsed += l.Inodes
			}
		}
		for _, b := range r.Blobs {
			if !blobs[b.Digest] {
				blobs[b.Digest] = true
				u.UsedBytes += (uint64(b.Size) + 4095) &^ 4095
				u.InodesUsed++
			}
		}
	}
	return u, nil
}
