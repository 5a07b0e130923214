package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestHostUsersFalse: a pod with hostUsers: false runs in a user namespace of its own that
// the kubelet chose (peapod advertises user_namespaces): /proc/self/uid_map inside is not the
// node's identity mapping, root inside is root, and the pod works: it writes to an emptyDir
// and reads its service account token, both idmapped mounts, as root's files.
func TestHostUsersFalse(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	no := false
	c := shContainer("c", "echo written > /data/f && exec sleep 3600")
	c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	pod := podOf("userns", c)
	pod.Spec.HostUsers = &no
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	created := createPod(t, ns, pod)
	waitPodReady(t, ns, "userns")

	uidMap := strings.Fields(mustExec(t, ns, "userns", "c", "cat", "/proc/self/uid_map"))
	if len(uidMap) != 3 || uidMap[0] != "0" || uidMap[1] == "0" {
		t.Fatalf("uid_map inside = %q, want container root mapped to a host id other than 0", uidMap)
	}
	if strings.Join(uidMap, " ") == "0 0 4294967295" {
		t.Errorf("uid_map inside is the node's identity mapping")
	}
	t.Logf("uid_map inside: %v", uidMap)
	if got := strings.TrimSpace(mustExec(t, ns, "userns", "c", "id", "-u")); got != "0" {
		t.Errorf("id -u = %q, want 0 (root of the pod's namespace)", got)
	}
	if got := strings.TrimSpace(mustExec(t, ns, "userns", "c", "sh", "-c", "cat /data/f; stat -c %u:%g /data/f")); got != "written\n0:0" {
		t.Errorf("emptyDir file and its owner inside = %q, want written and 0:0", got)
	}
	// On the node the file keeps the host's ids: the idmapped emptyDir maps the writer (the
	// pod's root, a high host id) back to 0. Only for the cluster hack/cluster.sh runs here,
	// whose kubelet keeps its pods under /var/lib/peapod-cluster/kubelet.
	hostFile := filepath.Join("/var/lib/peapod-cluster/kubelet/pods", string(created.UID), "volumes/kubernetes.io~empty-dir/data/f")
	if fi, err := os.Stat(hostFile); err != nil {
		t.Logf("not checking the file on the node: %v", err)
	} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
		t.Errorf("%s is %d:%d on the node, want 0:0 (host ids kept)", hostFile, st.Uid, st.Gid)
	}
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount"
	if got := strings.TrimSpace(mustExec(t, ns, "userns", "c", "sh", "-c", "head -c 3 "+sa+"/token; echo; cat "+sa+"/namespace")); got != "eyJ\n"+ns {
		t.Errorf("service account token and namespace = %q, want eyJ... and %s", got, ns)
	}
	if got := strings.TrimSpace(mustExec(t, ns, "userns", "c", "sh", "-c", "grep -c idmapped /proc/self/mountinfo")); got == "0" {
		t.Errorf("no idmapped mount in the container")
	}
}
