package framework

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// imageEpoch is the timestamp of every entry and image the framework builds, so that the same
// inputs give the same digests in every test process.
func imageEpoch() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// TarEntry is one entry of a layer built by NewLayer.
type TarEntry struct {
	// Name is the path inside the layer; a leading "/" is dropped.
	Name string
	// Type is a tar type flag: tar.TypeReg (the default), tar.TypeDir, tar.TypeSymlink,
	// tar.TypeLink (hard link), tar.TypeChar, tar.TypeBlock or tar.TypeFifo.
	Type byte
	// Mode holds the permission bits plus setuid, setgid and sticky (e.g. 01777). Zero means
	// 0644 for files, 0755 for directories and 0777 for symlinks.
	Mode int64
	UID  int
	GID  int
	// Linkname is the target of a symlink (any string) or of a hard link (a path in the
	// layer, with or without a leading "/").
	Linkname string
	Body     []byte
	// Devmajor and Devminor are used for device nodes.
	Devmajor int64
	Devminor int64
	// Xattrs are written as PAX SCHILY.xattr records (e.g. "security.capability").
	Xattrs map[string]string
}

// File is a regular file entry.
func File(name string, mode int64, body string) TarEntry {
	return TarEntry{Name: name, Type: tar.TypeReg, Mode: mode, Body: []byte(body)}
}

// Dir is a directory entry.
func Dir(name string, mode int64) TarEntry {
	return TarEntry{Name: name, Type: tar.TypeDir, Mode: mode}
}

// Symlink is a symbolic link entry name -> target.
func Symlink(name, target string) TarEntry {
	return TarEntry{Name: name, Type: tar.TypeSymlink, Linkname: target}
}

// HardLink is a hard link entry: name becomes another name of target, a path in the same
// layer.
//
// Like GNU tar and Docker, it records the target's mode (here: an executable's, 0755) in the
// link's header: unpackers such as Docker's chmod the shared inode to the header's mode.
func HardLink(name, target string) TarEntry {
	return TarEntry{Name: name, Type: tar.TypeLink, Linkname: target, Mode: 0o755}
}

// Whiteout is the entry that deletes p (a file or a whole directory) of the lower layers: an
// empty file ".wh.<base>" beside it.
func Whiteout(p string) TarEntry {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	return TarEntry{Name: path.Join(path.Dir(p), ".wh."+path.Base(p)), Type: tar.TypeReg}
}

// OpaqueWhiteout is the entry that hides everything the lower layers hold in dir; entries of
// the same layer under dir remain.
func OpaqueWhiteout(dir string) TarEntry {
	dir = strings.TrimPrefix(path.Clean("/"+dir), "/")
	return TarEntry{Name: path.Join(dir, ".wh..wh..opq"), Type: tar.TypeReg}
}

// NewLayer builds a gzip-compressed layer from entries, in the order given. Parent
// directories are not added implicitly. The media type is Docker's; BuildImage rewrites it for
// OCI images.
func NewLayer(entries []TarEntry) (v1.Layer, error) {
	tarBytes, err := tarEntries(entries)
	if err != nil {
		return nil, err
	}
	return layerFromTar(tarBytes)
}

// LayerFromTar builds a gzip-compressed layer from an uncompressed tar stream, for tests that
// write their own archives (e.g. with unusual headers).
func LayerFromTar(tarStream []byte) (v1.Layer, error) {
	return layerFromTar(tarStream)
}

func layerFromTar(tarBytes []byte) (v1.Layer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, fmt.Errorf("gzip writer: %w", err)
	}
	if _, err := zw.Write(tarBytes); err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}
	return LayerFromGzip(gz.Bytes())
}

// LayerFromGzip is a layer of a gzip-compressed tar held in memory, handed out as it is (not
// compressed again on every read).
func LayerFromGzip(compressed []byte) (v1.Layer, error) {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("layer from tar: %w", err)
	}
	return plainLayer{layer}, nil
}

// plainLayer hides the tarball layer's Descriptor method, whose empty (non-nil) annotations
// map makes an in-memory manifest differ from its own serialization.
type plainLayer struct{ v1.Layer }

// retypedLayer is a gzip layer under the other of the Docker and OCI media types.
type retypedLayer struct {
	v1.Layer
	mediaType types.MediaType
}

func (l retypedLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

func tarEntries(entries []TarEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr, err := e.header()
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %q: %w", e.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg && len(e.Body) > 0 {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, fmt.Errorf("tar body %q: %w", e.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}

func (e TarEntry) header() (*tar.Header, error) {
	name := strings.TrimPrefix(e.Name, "/")
	if name == "" {
		return nil, fmt.Errorf("tar entry with empty name")
	}
	typ := e.Type
	if typ == 0 {
		typ = tar.TypeReg
	}
	mode := e.Mode
	if mode == 0 {
		switch typ {
		case tar.TypeDir:
			mode = 0o755
		case tar.TypeSymlink:
			mode = 0o777
		default:
			mode = 0o644
		}
	}
	hdr := &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		Uid:      e.UID,
		Gid:      e.GID,
		ModTime:  imageEpoch(),
		Devmajor: e.Devmajor,
		Devminor: e.Devminor,
	}
	switch typ {
	case tar.TypeReg:
		hdr.Size = int64(len(e.Body))
	case tar.TypeDir:
		if !strings.HasSuffix(hdr.Name, "/") {
			hdr.Name += "/"
		}
	case tar.TypeSymlink:
		hdr.Linkname = e.Linkname
	case tar.TypeLink:
		hdr.Linkname = strings.TrimPrefix(e.Linkname, "/")
	}
	if len(e.Xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range e.Xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		hdr.Format = tar.FormatPAX
	}
	return hdr, nil
}

// Format selects the manifest and config media types BuildImage writes.
type Format int

const (
	// FormatDocker writes Docker image manifest v2 schema 2.
	FormatDocker Format = iota
	// FormatOCI writes an OCI image manifest.
	FormatOCI
)

// ImageSpec describes an image for BuildImage.
type ImageSpec struct {
	// Busybox puts the busybox base layer (BusyboxLayer) below Layers.
	Busybox bool
	// Layers are applied in order, lowest first.
	Layers []v1.Layer
	// Config is the image's runtime config (User, Env, Entrypoint, Cmd, Volumes ...). With
	// Busybox set and no Env given, Env is PATH only.
	Config v1.Config
	Format Format
	// OS and Architecture default to linux and the test binary's GOARCH.
	OS           string
	Architecture string
}

// BuildImage builds the image spec describes, deterministically (fixed timestamps).
func BuildImage(spec ImageSpec) (v1.Image, error) {
	layers := spec.Layers
	if spec.Busybox {
		base, err := BusyboxLayer()
		if err != nil {
			return nil, err
		}
		layers = append([]v1.Layer{base}, layers...)
		if spec.Config.Env == nil {
			spec.Config.Env = []string{DefaultPath}
		}
	}
	osName, arch := spec.OS, spec.Architecture
	if osName == "" {
		osName = "linux"
	}
	if arch == "" {
		arch = runtime.GOARCH
	}
	var img v1.Image = empty.Image
	layerType := types.DockerLayer
	if spec.Format == FormatOCI {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		layerType = types.OCILayer
	}
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: arch,
		OS:           osName,
		Created:      v1.Time{Time: imageEpoch()},
		Config:       spec.Config,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	adds := make([]mutate.Addendum, 0, len(layers))
	for _, l := range layers {
		if mt, err := l.MediaType(); err == nil && mt != layerType && (mt == types.DockerLayer || mt == types.OCILayer) {
			l = retypedLayer{Layer: l, mediaType: layerType}
		}
		adds = append(adds, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: imageEpoch()}, CreatedBy: "peapod critest framework"},
		})
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	return img, nil
}

// BuildIndex wraps images into a multi-platform index (a Docker manifest list for
// FormatDocker, an OCI index for FormatOCI), each entry's platform taken from its config.
func BuildIndex(format Format, images ...v1.Image) (v1.ImageIndex, error) {
	var idx v1.ImageIndex = empty.Index
	if format == FormatDocker {
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	} else {
		idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	}
	adds := make([]mutate.IndexAddendum, 0, len(images))
	for _, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("index entry config: %w", err)
		}
		mt, err := img.MediaType()
		if err != nil {
			return nil, fmt.Errorf("index entry media type: %w", err)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				MediaType: mt,
				Platform:  &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
			},
		})
	}
	return mutate.AppendManifests(idx, adds...), nil
}
