package e2e

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// imageVolumeImage is the critest framework's ImageVolumeContent, served by the cluster's
// test registry: /data/hello.txt and /data/run.sh (0755) in its lower layer,
// /data/sub/inner.txt, /data/top.txt in its upper.
const imageVolumeImage = "registry.k8s.io/e2e-test-images/peapod-imagevolume:1.0"

// TestImageVolume: a pod with an `image` volume (GA in Kubernetes 1.36) runs; the kubelet
// pulls the image and peapod shows its layers read-only, nosuid, nodev and noexec at the
// mount path, and a subPath of it at another.
func TestImageVolume(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("imagevol", "sleep 3600")
	pod.Spec.Volumes = []corev1.Volume{{Name: "img", VolumeSource: corev1.VolumeSource{
		Image: &corev1.ImageVolumeSource{Reference: imageVolumeImage, PullPolicy: corev1.PullIfNotPresent},
	}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
		{Name: "img", MountPath: "/vol"},
		{Name: "img", MountPath: "/sub", SubPath: "data/sub"},
	}
	createPod(t, ns, pod)
	waitPodReady(t, ns, "imagevol")

	got := mustExec(t, ns, "imagevol", "c", "sh", "-c", `cat /vol/data/hello.txt /vol/data/top.txt /sub/inner.txt
touch /vol/new 2>/dev/null && echo wrote
/vol/data/run.sh 2>/dev/null; echo exec=$?`)
	if want := "hello from an image volume\nfrom the top layer\ninner file\nexec=126\n"; got != want {
		t.Errorf("inside the pod:\n%s\nwant (both layers, the sub path, not writable, not executable):\n%s", got, want)
	}
	mounts := mustExec(t, ns, "imagevol", "c", "cat", "/proc/self/mountinfo")
	for _, p := range []string{"/vol", "/sub"} {
		var opts []string
		for line := range strings.Lines(mounts) {
			if f := strings.Fields(line); len(f) > 5 && f[4] == p {
				opts = strings.Split(f[5], ",")
			}
		}
		for _, flag := range []string{"ro", "nosuid", "nodev", "noexec"} {
			if !slices.Contains(opts, flag) {
				t.Errorf("mount %s in the pod has options %v, want %s", p, opts, flag)
			}
		}
	}
}
