package framework

import (
	"archive/tar"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Names of the test images, as a kubelet user writes them. The test registry serves each under
// the same repository path, and daemons started by the framework mirror registry.k8s.io,
// docker.io and gcr.io to it, so pulling these names works unchanged.
const (
	// ImageBusybox is busybox in a Docker schema 2 manifest; Cmd ["sh"].
	ImageBusybox = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	// ImageBusyboxLatest is busybox behind a Docker manifest list holding the host's
	// platform and one other platform (whose image is not runnable), like Docker Hub.
	ImageBusyboxLatest = "docker.io/library/busybox:latest"
	// ImageBusybox136 is busybox behind an OCI image index (host platform plus another).
	ImageBusybox136 = "docker.io/library/busybox:1.36"

	// ImageUserUID runs as numeric user 1002 (no /etc/passwd entry).
	ImageUserUID = "gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest"
	// ImageUserUsername runs as user "www-data" (uid 33, gid 33 in /etc/passwd).
	ImageUserUsername = "gcr.io/k8s-staging-cri-tools/test-image-user-username:latest"
	// ImageUserUIDGroup runs as user 1003 ("user50000", primary gid 1003), who is a member of
	// group 50000 ("group50000") in /etc/group.
	ImageUserUIDGroup = "gcr.io/k8s-staging-cri-tools/test-image-user-uid-group:latest"

	// ImageTags1, ImageTags2 and ImageTags3 are three tags of one image (same digest), in OCI
	// media types.
	ImageTags1 = "gcr.io/k8s-staging-cri-tools/test-image-tags:1"
	ImageTags2 = "gcr.io/k8s-staging-cri-tools/test-image-tags:2"
	ImageTags3 = "gcr.io/k8s-staging-cri-tools/test-image-tags:3"

	// ImageVolume declares VOLUME ImageVolumePath holding ImageVolumeSeedFile, has
	// ENTRYPOINT ["/bin/sh", "-c"] and CMD ImageVolumeCmd, WorkingDir ImageVolumePath and
	// Env PEAPOD_IMAGE=volume; OCI media types.
	ImageVolume = "registry.k8s.io/e2e-test-images/peapod-volume:1.0"
	// ImageWhiteout has a lower layer and an upper layer with whiteouts and an opaque
	// directory over it; see WhiteoutExpectations.
	ImageWhiteout = "registry.k8s.io/e2e-test-images/peapod-whiteout:1.0"
)

// Facts about the test images that tests assert on.
const (
	UserUID              = 1002
	UserUIDGroupUID      = 1003
	UserUIDGroupName     = "user50000"
	UserUIDGroupPrimary  = 1003
	UserUIDGroupSupp     = 50000
	UserUIDGroupSuppName = "group50000"

	ImageVolumePath     = "/data"
	ImageVolumeSeedFile = "/data/seed.txt"
	ImageVolumeSeed     = "seeded-by-image"
	// ImageVolumeCmd prints "volume image says: seeded-by-image" and exits 0.
	ImageVolumeCmd = `echo "volume image says: $(cat /data/seed.txt)"`

	// WrongPlatformMarker is the only file of the non-host platform entries of the indexes.
	WrongPlatformMarker = "/WRONG-PLATFORM"
)

// WhiteoutExpectations returns, for ImageWhiteout, each directory and the sorted names a
// correct unpack leaves in it: the upper layer whites out /lower/gone and /lower/gonedir, and
// makes /opaque opaque and adds /opaque/new.
func WhiteoutExpectations() map[string][]string {
	return map[string][]string{
		"/lower":  {"keep"},
		"/opaque": {"new"},
	}
}

// TestImageNames returns the names of every test image, sorted.
func TestImageNames() []string {
	imgs, err := TestImages()
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(imgs))
	for n := range imgs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestImages returns every test image by its well-known name, built once per process. Each
// value is a v1.Image or a v1.ImageIndex. Callers must not mutate the map.
func TestImages() (map[string]remote.Taggable, error) { return testImagesOnce() }

var testImagesOnce = sync.OnceValues(buildTestImages)

func buildTestImages() (map[string]remote.Taggable, error) {
	out := map[string]remote.Taggable{}
	busybox := func(format Format) (v1.Image, error) {
		return BuildImage(ImageSpec{Busybox: true, Format: format, Config: v1.Config{Cmd: []string{"sh"}}})
	}

	bb, err := busybox(FormatDocker)
	if err != nil {
		return nil, err
	}
	out[ImageBusybox] = bb

	for _, x := range []struct {
		name   string
		format Format
	}{{ImageBusyboxLatest, FormatDocker}, {ImageBusybox136, FormatOCI}} {
		native, err := busybox(x.format)
		if err != nil {
			return nil, err
		}
		other, err := wrongPlatformImage(x.format)
		if err != nil {
			return nil, err
		}
		idx, err := BuildIndex(x.format, other, native)
		if err != nil {
			return nil, err
		}
		out[x.name] = idx
	}

	userUID, err := BuildImage(ImageSpec{Busybox: true, Config: v1.Config{User: fmt.Sprint(UserUID), Cmd: []string{"sh"}}})
	if err != nil {
		return nil, err
	}
	out[ImageUserUID] = userUID

	userName, err := BuildImage(ImageSpec{Busybox: true, Config: v1.Config{User: "www-data", Cmd: []string{"sh"}}})
	if err != nil {
		return nil, err
	}
	out[ImageUserUsername] = userName

	groupLayer, err := NewLayer([]TarEntry{
		File("etc/passwd", 0o644, strings.Join([]string{
			"root:x:0:0:root:/root:/bin/sh",
			"www-data:x:33:33:www-data:/var/www:/bin/sh",
			fmt.Sprintf("%s:x:%d:%d::/home/%s:/bin/sh", UserUIDGroupName, UserUIDGroupUID, UserUIDGroupPrimary, UserUIDGroupName),
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
		}, "\n")+"\n"),
		File("etc/group", 0o644, strings.Join([]string{
			"root:x:0:",
			"www-data:x:33:",
			"users:x:100:",
			fmt.Sprintf("%s:x:%d:", UserUIDGroupName, UserUIDGroupPrimary),
			fmt.Sprintf("%s:x:%d:%s", UserUIDGroupSuppName, UserUIDGroupSupp, UserUIDGroupName),
			"nogroup:x:65534:",
		}, "\n")+"\n"),
		{Name: "home/" + UserUIDGroupName, Type: tar.TypeDir, Mode: 0o755, UID: UserUIDGroupUID, GID: UserUIDGroupPrimary},
	})
	if err != nil {
		return nil, err
	}
	userGroup, err := BuildImage(ImageSpec{Busybox: true, Layers: []v1.Layer{groupLayer},
		Config: v1.Config{User: fmt.Sprint(UserUIDGroupUID), Cmd: []string{"sh"}}})
	if err != nil {
		return nil, err
	}
	out[ImageUserUIDGroup] = userGroup

	tagsLayer, err := NewLayer([]TarEntry{File("etc/test-image-tags", 0o644, "tags\n")})
	if err != nil {
		return nil, err
	}
	tags, err := BuildImage(ImageSpec{Busybox: true, Format: FormatOCI, Layers: []v1.Layer{tagsLayer},
		Config: v1.Config{Cmd: []string{"sh"}, Labels: map[string]string{"io.peapod.test": "tags"}}})
	if err != nil {
		return nil, err
	}
	out[ImageTags1], out[ImageTags2], out[ImageTags3] = tags, tags, tags

	volLayer, err := NewLayer([]TarEntry{
		Dir("data", 0o755),
		File("data/seed.txt", 0o644, ImageVolumeSeed+"\n"),
	})
	if err != nil {
		return nil, err
	}
	vol, err := BuildImage(ImageSpec{Busybox: true, Format: FormatOCI, Layers: []v1.Layer{volLayer},
		Config: v1.Config{
			Env:        []string{DefaultPath, "PEAPOD_IMAGE=volume"},
			Entrypoint: []string{"/bin/sh", "-c"},
			Cmd:        []string{ImageVolumeCmd},
			WorkingDir: ImageVolumePath,
			Volumes:    map[string]struct{}{ImageVolumePath: {}},
			Labels:     map[string]string{"io.peapod.test": "volume"},
		}})
	if err != nil {
		return nil, err
	}
	out[ImageVolume] = vol

	lower, err := NewLayer([]TarEntry{
		Dir("lower", 0o755),
		File("lower/keep", 0o644, "keep\n"),
		File("lower/gone", 0o644, "gone\n"),
		Dir("lower/gonedir", 0o755),
		File("lower/gonedir/f", 0o644, "f\n"),
		Dir("opaque", 0o755),
		File("opaque/old", 0o644, "old\n"),
		Dir("opaque/sub", 0o755),
		File("opaque/sub/old", 0o644, "old\n"),
	})
	if err != nil {
		return nil, err
	}
	upper, err := NewLayer([]TarEntry{
		Dir("lower", 0o755),
		Whiteout("lower/gone"),
		Whiteout("lower/gonedir"),
		Dir("opaque", 0o755),
		OpaqueWhiteout("opaque"),
		File("opaque/new", 0o644, "new\n"),
	})
	if err != nil {
		return nil, err
	}
	wh, err := BuildImage(ImageSpec{Busybox: true, Layers: []v1.Layer{lower, upper}, Config: v1.Config{Cmd: []string{"sh"}}})
	if err != nil {
		return nil, err
	}
	out[ImageWhiteout] = wh
	vols, err := imageVolumeImages()
	if err != nil {
		return nil, err
	}
	for n, img := range vols {
		out[n] = img
	}
	return out, nil
}

// wrongPlatformImage is an index entry for a platform other than the host's. It holds only
// WrongPlatformMarker, so a runtime that picks it fails visibly.
func wrongPlatformImage(format Format) (v1.Image, error) {
	arch := "arm64"
	if runtime.GOARCH == "arm64" {
		arch = "amd64"
	}
	l, err := NewLayer([]TarEntry{File(WrongPlatformMarker, 0o755, "#!/bin/false\n")})
	if err != nil {
		return nil, err
	}
	return BuildImage(ImageSpec{Layers: []v1.Layer{l}, Format: format, Architecture: arch,
		Config: v1.Config{Cmd: []string{WrongPlatformMarker}}})
}
