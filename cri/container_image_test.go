package cri

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
)

// TestContainerStatusNamesTheUserImage: a kubelet creates a container with the image's id as
// ImageSpec.Image and the pod's image name as UserSpecifiedImage, and shows the status's
// Image in the pod status, where Kubernetes' node conformance (an image update waits for
// status.image == the new name) and users expect the name. Without UserSpecifiedImage
// (crictl, critest) the status names what the request named.
func TestContainerStatusNamesTheUserImage(t *testing.T) {
	const id = "sha256:9ed63e7d22396beb7dfef24d431841842f7ebd56f0ced7c8543ffd443d70ffb5"
	const name = "registry.k8s.io/e2e-test-images/busybox:1.37.0-1"
	s := New(Options{})
	cfg, err := s.containerConfig(&runtimeapi.CreateContainerRequest{PodSandboxId: "pod", Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: id, UserSpecifiedImage: name},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := container.Container{ID: "c1", Config: cfg, ImageID: id}
	resp, err := criContainerStatus(c, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := resp.GetStatus()
	if st.GetImage().GetImage() != name || st.GetImage().GetUserSpecifiedImage() != name || st.GetImageRef() != id {
		t.Errorf("status image %+v, ref %q; want image %q, ref %q", st.GetImage(), st.GetImageRef(), name, id)
	}
	if got := criContainer(c).GetImage().GetImage(); got != name {
		t.Errorf("ListContainers image %q, want %q", got, name)
	}

	cfg.UserImage = ""
	cfg.Image = "busybox"
	resp, err = criContainerStatus(container.Container{ID: "c2", Config: cfg, ImageID: id}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetStatus().GetImage().GetImage(); got != "busybox" {
		t.Errorf("status image without UserSpecifiedImage %q, want the request's busybox", got)
	}
}
