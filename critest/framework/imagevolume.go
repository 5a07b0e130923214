package framework

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Images for image volumes (Mount.image): data, not programs. Neither has busybox.
const (
	// ImageVolumeContent has two layers. The lower holds /data/hello.txt, /data/run.sh
	// (0755, a shell script), /data/suid (04755), /data/sub/inner.txt and /data/gone.txt;
	// the upper adds /data/top.txt, whites out /data/gone.txt, and adds the symlinks
	// /data/abs -> /data/sub, /data/escape -> ../../../../../data/sub and /data/out -> /etc
	// (the image has no /etc).
	ImageVolumeContent = "registry.k8s.io/e2e-test-images/peapod-imagevolume:1.0"
	// ImageVolumeSingle has one layer holding /single.txt.
	ImageVolumeSingle = "registry.k8s.io/e2e-test-images/peapod-imagevolume-single:1.0"

	ImageVolumeHello      = "hello from an image volume"
	ImageVolumeTop        = "from the top layer"
	ImageVolumeInner      = "inner file"
	ImageVolumeSingleText = "a one-layer image"
)

// imageVolumeImages builds ImageVolumeContent and ImageVolumeSingle.
func imageVolumeImages() (map[string]v1.Image, error) {
	lower, err := NewLayer([]TarEntry{
		Dir("data", 0o755),
		File("data/hello.txt", 0o644, ImageVolumeHello+"\n"),
		File("data/run.sh", 0o755, "#!/bin/sh\necho ran\n"),
		File("data/suid", 0o4755, "#!/bin/sh\nid -u\n"),
		Dir("data/sub", 0o755),
		File("data/sub/inner.txt", 0o644, ImageVolumeInner+"\n"),
		File("data/gone.txt", 0o644, "whited out above\n"),
	})
	if err != nil {
		return nil, err
	}
	upper, err := NewLayer([]TarEntry{
		Dir("data", 0o755),
		File("data/top.txt", 0o644, ImageVolumeTop+"\n"),
		Whiteout("data/gone.txt"),
		Symlink("data/abs", "/data/sub"),
		Symlink("data/escape", "../../../../../data/sub"),
		Symlink("data/out", "/etc"),
	})
	if err != nil {
		return nil, err
	}
	content, err := BuildImage(ImageSpec{Format: FormatOCI, Layers: []v1.Layer{lower, upper}})
	if err != nil {
		return nil, err
	}
	one, err := NewLayer([]TarEntry{File("single.txt", 0o644, ImageVolumeSingleText+"\n")})
	if err != nil {
		return nil, err
	}
	single, err := BuildImage(ImageSpec{Format: FormatOCI, Layers: []v1.Layer{one}})
	if err != nil {
		return nil, err
	}
	return map[string]v1.Image{ImageVolumeContent: content, ImageVolumeSingle: single}, nil
}
