package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/images"
)

const busyboxID = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func (f *fixture) addImages() {
	uid := int64(0)
	f.imgs.imgs["busybox"] = images.Image{ID: busyboxID, RepoTags: []string{"docker.io/library/busybox:latest"}, Size: 2 << 20, UID: &uid}
	f.imgs.imgs["pause"] = images.Image{ID: "sha256:22", RepoTags: []string{"registry.k8s.io/pause:3.10"}, Pinned: true}
}

func listImages(ref string) func(context.Context, *fixture) (*runtimeapi.ListImagesResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.ListImagesResponse, error) {
		var filter *runtimeapi.ImageFilter
		if ref != "" {
			filter = &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: ref}}
		}
		return f.img.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: filter})
	}
}

func testListImages(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ListImagesResponse]{{
		name: "every image", setup: (*fixture).addImages, call: listImages(""), want: twice(codes.OK), calls: []string{"Images.List "},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ListImagesResponse) {
			if len(r.GetImages()) != 2 || r.GetImages()[0].GetId() != busyboxID || r.GetImages()[0].GetUid().GetValue() != 0 ||
				!r.GetImages()[1].GetPinned() {
				t.Errorf("images %v", r.GetImages())
			}
		},
	}, {
		name: "the one the filter names", setup: (*fixture).addImages, call: listImages("pause"), want: twice(codes.OK),
		calls: []string{"Images.List pause"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ListImagesResponse) {
			if len(r.GetImages()) != 1 || r.GetImages()[0].GetId() != "sha256:22" {
				t.Errorf("images %v", r.GetImages())
			}
		},
	}, {
		name: "the store fails", setup: func(f *fixture) { f.rec.fail("Images.List", fmt.Errorf("read: %w", errdefs.ErrUnavailable)) },
		call: listImages(""), want: twice(codes.Unavailable),
	}})
}

func imageStatus(ref string, verbose bool) func(context.Context, *fixture) (*runtimeapi.ImageStatusResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.ImageStatusResponse, error) {
		return f.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Verbose: verbose})
	}
}

func testImageStatus(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ImageStatusResponse]{{
		name: "a known image", setup: (*fixture).addImages, call: imageStatus("busybox", false), want: twice(codes.OK),
		calls: []string{"Images.Status busybox"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ImageStatusResponse) {
			if r.GetImage().GetId() != busyboxID || r.GetImage().GetSize() != 2<<20 || r.GetInfo() != nil {
				t.Errorf("answer %v", r)
			}
		},
	}, {
		name: "verbose adds the info", setup: (*fixture).addImages, call: imageStatus("busybox", true), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ImageStatusResponse) {
			if !strings.Contains(r.GetInfo()["info"], `"imageSpec"`) {
				t.Errorf("info %v", r.GetInfo())
			}
		},
	}, {
		name: "an unknown image is an empty answer", call: imageStatus("nosuchimage", false), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ImageStatusResponse) {
			if r.GetImage() != nil || r.GetInfo() != nil {
				t.Errorf("answer %v", r)
			}
		},
	}, {
		name: "an invalid reference", setup: func(f *fixture) {
			f.rec.fail("Images.Status", fmt.Errorf("parse reference: %w", errdefs.ErrInvalidArgument))
		},
		call: imageStatus("UPPER:case:x", false), want: twice(codes.InvalidArgument),
	}})
}

func pullImage(ref string, auth *runtimeapi.AuthConfig) func(context.Context, *fixture) (*runtimeapi.PullImageResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.PullImageResponse, error) {
		return f.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth})
	}
}

func testPullImage(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.PullImageResponse]{{
		name: "answers the image id; the credentials go along", call: pullImage("busybox", &runtimeapi.AuthConfig{Username: "u", Password: "p", ServerAddress: "docker.io"}),
		want: twice(codes.OK), calls: []string{"Images.Pull busybox"},
		check: func(t *testing.T, f *fixture, r *runtimeapi.PullImageResponse) {
			if !strings.HasPrefix(r.GetImageRef(), "sha256:") || f.imgs.auth != (images.Auth{Username: "u", Password: "p", ServerAddress: "docker.io"}) {
				t.Errorf("image ref %q, auth passed %#v", r.GetImageRef(), f.imgs.auth.Username)
			}
		},
	}, {
		name: "no reference", call: pullImage("", nil), want: twice(codes.InvalidArgument), calls: none,
	}, {
		name: "refused credentials", setup: func(f *fixture) {
			f.rec.fail("Images.Pull", fmt.Errorf("pull busybox: %w", errdefs.ErrUnauthenticated))
		},
		call: pullImage("busybox", nil), want: twice(codes.Unauthenticated),
	}, {
		name: "no such image in the registry", setup: func(f *fixture) {
			f.rec.fail("Images.Pull", fmt.Errorf("manifest unknown: %w", errdefs.ErrNotFound))
		},
		call: pullImage("nosuchimage", nil), want: twice(codes.NotFound),
	}, {
		name: "an image over the size limit", setup: func(f *fixture) {
			f.rec.fail("Images.Pull", fmt.Errorf("layer over the limit: %w", errdefs.ErrResourceExhausted))
		},
		call: pullImage("huge", nil), want: twice(codes.ResourceExhausted),
	}})
}

func removeImage(ref string) func(context.Context, *fixture) (*runtimeapi.RemoveImageResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.RemoveImageResponse, error) {
		return f.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	}
}

func testRemoveImage(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.RemoveImageResponse]{{
		name: "removes; twice is fine", setup: (*fixture).addImages, call: removeImage("busybox"), want: twice(codes.OK),
		calls: []string{"Images.Remove busybox"},
		check: func(t *testing.T, f *fixture, _ *runtimeapi.RemoveImageResponse) {
			if _, ok := f.imgs.imgs["busybox"]; ok {
				t.Error("busybox still stored")
			}
		},
	}, {
		name: "an unknown image is already removed", call: removeImage("nosuchimage"), want: twice(codes.OK),
	}, {
		name: "no reference", call: removeImage(""), want: twice(codes.InvalidArgument), calls: none,
	}, {
		name: "an image in use", setup: func(f *fixture) {
			f.addImages()
			f.rec.fail("Images.Remove", fmt.Errorf("image busybox is used by ctr1: %w", errdefs.ErrFailedPrecondition))
		},
		call: removeImage("busybox"), want: twice(codes.FailedPrecondition),
	}})
}

func testImageFsInfo(t *testing.T) {
	call := func(ctx context.Context, f *fixture) (*runtimeapi.ImageFsInfoResponse, error) {
		return f.img.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	}
	runCases(t, []rpcCase[*runtimeapi.ImageFsInfoResponse]{{
		name: "the image filesystem is the container filesystem", call: call, want: twice(codes.OK), calls: []string{"Images.FsInfo"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ImageFsInfoResponse) {
			img, ctr := r.GetImageFilesystems(), r.GetContainerFilesystems()
			if len(img) != 1 || len(ctr) != 1 || img[0].GetFsId().GetMountpoint() != "/var/lib/peapod/images" ||
				img[0].GetUsedBytes().GetValue() != 4096 || img[0].GetInodesUsed().GetValue() != 7 || ctr[0].GetUsedBytes().GetValue() != 4096 {
				t.Errorf("answer %v", r)
			}
		},
	}, {
		name: "statfs fails", setup: func(f *fixture) { f.rec.fail("Images.FsInfo", errors.New("statfs: input/output error")) },
		call: call, want: twice(codes.Unknown),
	}})
}
