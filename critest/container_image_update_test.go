package critest

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestContainerImageUpdate does what a kubelet does when a pod's container gets a new image:
// it stops the container and creates the next attempt in the same pod with the new image's id
// as ImageSpec.Image and the name the pod's author wrote as UserSpecifiedImage. The kubelet
// shows ContainerStatus's Image in the pod status, and Kubernetes' node conformance specs
// (Containers Lifecycle, "the image is updated") wait for it to be the new name: each
// attempt's status and list entry name its own image as written, with its own id as ref.
func TestContainerImageUpdate(t *testing.T) {
	p := newTestPod(t, "image-update", nil)
	ctx := framework.Context(t)
	ids := map[string]string{}
	for _, name := range []string{framework.ImageBusybox, framework.ImageVolume} {
		p.pull(t, name)
		st, err := p.img.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: name}, false)
		if err != nil || st.GetImage().GetId() == "" {
			t.Fatalf("ImageStatus %s: %v %v", name, st, err)
		}
		ids[name] = st.GetImage().GetId()
	}
	if ids[framework.ImageBusybox] == ids[framework.ImageVolume] {
		t.Fatalf("%s and %s are one image (%s): the test needs two", framework.ImageBusybox, framework.ImageVolume, ids[framework.ImageBusybox])
	}
	attempt := func(n uint32, name string) string {
		cfg := sleeper("app", ids[name], nil)
		cfg.Metadata.Attempt = n
		cfg.Image.UserSpecifiedImage = name
		id := p.run(t, cfg)
		return id
	}
	first := attempt(0, framework.ImageBusybox)
	if err := p.rt.StopContainer(ctx, first, 0); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	second := attempt(1, framework.ImageVolume)

	list, err := p.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: p.id})
	if err != nil {
		t.Fatalf("ListContainers: %v", err)
	}
	listed := map[string]*runtimeapi.Container{}
	for _, c := range list {
		listed[c.GetId()] = c
	}
	for id, name := range map[string]string{first: framework.ImageBusybox, second: framework.ImageVolume} {
		resp, err := p.rt.ContainerStatus(ctx, id, false)
		if err != nil {
			t.Fatalf("ContainerStatus %s: %v", id, err)
		}
		st := resp.GetStatus()
		if st.GetImage().GetImage() != name || st.GetImage().GetUserSpecifiedImage() != name {
			t.Errorf("attempt %d: status image %+v, want %s as written", st.GetMetadata().GetAttempt(), st.GetImage(), name)
		}
		if st.GetImageRef() != ids[name] || st.GetImageId() != ids[name] {
			t.Errorf("attempt %d: status image_ref %q, image_id %q, want %s", st.GetMetadata().GetAttempt(), st.GetImageRef(), st.GetImageId(), ids[name])
		}
		c := listed[id]
		if c == nil {
			t.Errorf("ListContainers of the pod has no %s", id)
			continue
		}
		if c.GetImage().GetImage() != name || c.GetImageRef() != ids[name] {
			t.Errorf("attempt %d: listed image %q, ref %q, want %s and %s", c.GetMetadata().GetAttempt(), c.GetImage().GetImage(), c.GetImageRef(), name, ids[name])
		}
	}
}
