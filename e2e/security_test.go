package e2e

import (
	"bufio"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestSecurityContext: runAsUser, runAsGroup and fsGroup reach the process and the volume,
// allowPrivilegeEscalation false sets no_new_privs, readOnlyRootFilesystem makes / read-only,
// and a privileged container gets every capability the node's root has and may mount.
func TestSecurityContext(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	uid, gid, fsGroup := int64(1000), int64(3000), int64(2000)
	no, yes := false, true

	c := shContainer("c", "touch /data/made-by-c && exec sleep 3600")
	c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	c.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes}
	restricted := podOf("restricted", c)
	restricted.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &gid, FSGroup: &fsGroup}
	restricted.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	createPod(t, ns, restricted)

	p := shContainer("p", "exec sleep 3600")
	p.SecurityContext = &corev1.SecurityContext{Privileged: &yes}
	createPod(t, ns, podOf("privileged", p))

	waitPodReady(t, ns, "restricted")
	// The supplementary groups hold fsGroup and, as containerd has done since its fix of
	// CVE-2023-25173 (and Kubernetes' documentation shows), the primary group too.
	if got := strings.TrimSpace(mustExec(t, ns, "restricted", "c", "id")); got != "uid=1000 gid=3000 groups=2000,3000" {
		t.Errorf("id = %q, want uid=1000 gid=3000 groups=2000,3000", got)
	}
	if got := strings.TrimSpace(mustExec(t, ns, "restricted", "c", "stat", "-c", "%u:%g", "/data/made-by-c")); got != "1000:2000" {
		t.Errorf("owner of a file the container made in the volume = %s, want 1000:2000 (fsGroup)", got)
	}
	if got := strings.TrimSpace(mustExec(t, ns, "restricted", "c", "sh", "-c", "grep NoNewPrivs /proc/self/status")); got != "NoNewPrivs:\t1" {
		t.Errorf("%q, want NoNewPrivs 1", got)
	}
	out, errOut, err := execInPod(t, ns, "restricted", "c", "touch", "/rootfs-write")
	if err == nil || !strings.Contains(errOut, "Read-only file system") {
		t.Errorf("touch /rootfs-write on a read-only root: err %v, stdout %q, stderr %q; want a Read-only file system error", err, out, errOut)
	}
	if _, _, err := execInPod(t, ns, "restricted", "c", "touch", "/data/writable"); err != nil {
		t.Errorf("the volume must stay writable under a read-only root: %v", err)
	}

	waitPodReady(t, ns, "privileged")
	want := ownStatus(t, "CapBnd")
	if got := strings.TrimSpace(mustExec(t, ns, "privileged", "p", "sh", "-c", "grep CapEff /proc/self/status | cut -f2")); got != want {
		t.Errorf("privileged container's CapEff %s, want the node root's bounding set %s", got, want)
	}
	if _, errOut, err := execInPod(t, ns, "privileged", "p", "sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs tmpfs /tmp/m"); err != nil {
		t.Errorf("mount in a privileged container: %v (%s)", err, errOut)
	}
	if _, _, err := execInPod(t, ns, "restricted", "c", "sh", "-c", "mkdir -p /data/m && mount -t tmpfs tmpfs /data/m"); err == nil {
		t.Errorf("mount succeeded in an unprivileged container")
	}
}

// ownStatus is a field of this process's /proc/self/status.
func ownStatus(t *testing.T, field string) string {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return ""
}
