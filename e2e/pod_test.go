package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podSubnet is the cluster network's subnet (hack/cluster.sh's CNI config).
const podSubnet = "10.88.0.0/16"

// shContainer is a testImage container running script with sh -c.
func shContainer(name, script string) corev1.Container {
	return corev1.Container{Name: name, Image: testImage, Command: []string{"sh", "-c", script}}
}

// podOf is a pod named name with containers, restartPolicy Never and a 1 s grace period.
func podOf(name string, containers ...corev1.Container) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			Containers:                    containers,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

// mustExec runs cmd in the container and returns its stdout, failing t on error.
func mustExec(t *testing.T, ns, pod, container string, cmd ...string) string {
	t.Helper()
	out, errOut, err := execInPod(t, ns, pod, container, cmd...)
	if err != nil {
		t.Fatalf("%v (stdout %q, stderr %q)", err, out, errOut)
	}
	return out
}

// TestSharedEmptyDirAndLocalhost: two containers of one pod share an emptyDir and the pod's
// network namespace: one serves a file from the volume with httpd on 127.0.0.1, the other
// fetches it over localhost and writes what it got back into the volume.
func TestSharedEmptyDirAndLocalhost(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	web := shContainer("web", "echo hello-from-web > /shared/index.html && exec httpd -f -p 127.0.0.1:8080 -h /shared")
	client := shContainer("client", "until wget -q -O /shared/got http://127.0.0.1:8080/index.html; do sleep 0.2; done; exec sleep 3600")
	for _, c := range []*corev1.Container{&web, &client} {
		c.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	}
	pod := podOf("shared", web, client)
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	createPod(t, ns, pod)
	waitPodReady(t, ns, "shared")
	waitPod(t, ns, "shared", time.Minute, func(*corev1.Pod) bool {
		out, _, err := execInPod(t, ns, "shared", "web", "cat", "/shared/got")
		return err == nil && out == "hello-from-web\n"
	})
	// The client's view of the volume is the same directory.
	if got := mustExec(t, ns, "shared", "client", "cat", "/shared/index.html"); got != "hello-from-web\n" {
		t.Errorf("client sees /shared/index.html = %q, want the file web wrote", got)
	}
}

// TestHostPathSharedByTwoContainers: a hostPath directory mounted in two containers: one
// writes, the other copies what it read, and the node sees both files.
func TestHostPathSharedByTwoContainers(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	dir := t.TempDir()
	dirType := corev1.HostPathDirectory
	writer := shContainer("writer", "echo from-writer > /data/a.txt && exec sleep 3600")
	reader := shContainer("reader", "until [ -s /mnt/a.txt ]; do sleep 0.2; done; cp /mnt/a.txt /mnt/b.txt && exec sleep 3600")
	writer.VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/data"}}
	reader.VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/mnt"}}
	pod := podOf("hostpath", writer, reader)
	pod.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &dirType}}}}
	createPod(t, ns, pod)
	waitPodReady(t, ns, "hostpath")
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "b.txt"))
		if err == nil && string(b) == "from-writer\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/b.txt on the node: %q, %v; want the writer's line copied by the reader", dir, b, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := mustExec(t, ns, "hostpath", "writer", "cat", "/data/b.txt"); got != "from-writer\n" {
		t.Errorf("writer sees b.txt = %q", got)
	}
}

// TestHostNetwork: a hostNetwork pod is in the node's network namespace, has the node's
// hostname and reports the node's address as its IP.
func TestHostNetwork(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := podOf("hostnet", shContainer("c", "exec sleep 3600"))
	pod.Spec.HostNetwork = true
	createPod(t, ns, pod)
	p := waitPodReady(t, ns, "hostnet")

	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(mustExec(t, ns, "hostnet", "c", "readlink", "/proc/self/ns/net")); got != hostNS {
		t.Errorf("container's network namespace %s, want the node's %s", got, hostNS)
	}
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(mustExec(t, ns, "hostnet", "c", "hostname")); got != hostname {
		t.Errorf("hostname in a hostNetwork pod %q, want the node's %q", got, hostname)
	}
	_, subnet, _ := net.ParseCIDR(podSubnet)
	if ip := net.ParseIP(p.Status.PodIP); ip == nil || subnet.Contains(ip) {
		t.Errorf("hostNetwork pod IP %q: want the node's address, not one of the pod network %s", p.Status.PodIP, podSubnet)
	}
}

// TestPodToPodByIP: two pods on the pod network, each with its own address in the
// network's subnet; one fetches a page from the other by its pod IP.
func TestPodToPodByIP(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	createPod(t, ns, podOf("server", shContainer("web", "mkdir /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www")))
	createPod(t, ns, podOf("client", shContainer("c", "exec sleep 3600")))
	server := waitPodReady(t, ns, "server")
	client := waitPodReady(t, ns, "client")
	_, subnet, _ := net.ParseCIDR(podSubnet)
	for _, p := range []*corev1.Pod{server, client} {
		if ip := net.ParseIP(p.Status.PodIP); ip == nil || !subnet.Contains(ip) {
			t.Fatalf("pod %s has IP %q, want one in %s", p.Name, p.Status.PodIP, podSubnet)
		}
	}
	if server.Status.PodIP == client.Status.PodIP {
		t.Fatalf("both pods have IP %s", server.Status.PodIP)
	}
	var got string
	waitPod(t, ns, "client", 30*time.Second, func(*corev1.Pod) bool {
		out, _, err := execInPod(t, ns, "client", "c", "wget", "-q", "-O", "-", "http://"+server.Status.PodIP+":8080/")
		got = out
		return err == nil
	})
	if strings.TrimSpace(got) != "server" {
		t.Errorf("GET http://%s:8080/ from pod client = %q, want the server pod's hostname", server.Status.PodIP, got)
	}
}
