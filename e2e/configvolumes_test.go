package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestConfigVolumes: ConfigMap, Secret, downward-API and projected volumes (and downward-API
// environment) show the API's data inside the container, with the modes asked for; a
// ConfigMap update reaches the mounted file.
func TestConfigVolumes(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ctx := context.Background()
	if _, err := clusterClient.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
		Data:       map[string]string{"greeting": "hello", "color": "blue"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := clusterClient.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sec"},
		Data:       map[string][]byte{"password": []byte("s3cr3t\x00bin")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	downward := []corev1.DownwardAPIVolumeFile{
		{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		{Path: "mem_limit", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
	}
	pod := bbPod("cfgvol", "sleep 3600")
	pod.Labels = map[string]string{"tier": "e2e"}
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec", DefaultMode: ptrTo(int32(0o400))}}},
		{Name: "down", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: downward}}},
		{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "color", Path: "cm/color"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Items: []corev1.KeyToPath{{Key: "password", Path: "sec/pw", Mode: ptrTo(int32(0o440))}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}},
	}
	c := &pod.Spec.Containers[0]
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "cm", MountPath: "/etc/cm"},
		{Name: "sec", MountPath: "/etc/sec", ReadOnly: true},
		{Name: "down", MountPath: "/etc/down"},
		{Name: "proj", MountPath: "/etc/proj"},
	}
	c.Env = []corev1.EnvVar{
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "greeting"}}},
	}
	createPod(t, ns, pod)
	p := waitPodReady(t, ns, "cfgvol")

	read := func(cmd string) string { return mustExec(t, ns, "cfgvol", "c", "sh", "-c", cmd) }
	for _, tc := range []struct{ cmd, want string }{
		{"cat /etc/cm/greeting", "hello"},
		{"cat /etc/cm/color", "blue"},
		{"cat /etc/sec/password | od -An -c | tr -s ' '", " s 3 c r 3 t \\0 b i n\n"},
		{"stat -L -c %a /etc/sec/password", "400\n"},
		{"cat /etc/down/name", "cfgvol"},
		{"cat /etc/down/labels", `tier="e2e"`},
		{"cat /etc/down/mem_limit", "64"},
		{"cat /etc/proj/cm/color", "blue"},
		{"cat /etc/proj/sec/pw | head -c 6", "s3cr3t"},
		{"stat -L -c %a /etc/proj/sec/pw", "440\n"},
		{"cat /etc/proj/ns", ns},
		{"echo $POD_IP", p.Status.PodIP + "\n"},
		{"echo $NODE_NAME", p.Spec.NodeName + "\n"},
		{"echo $GREETING", "hello\n"},
		// The service account token the kubelet projects into every pod by default.
		{"cat /var/run/secrets/kubernetes.io/serviceaccount/namespace", ns},
		{"test -s /var/run/secrets/kubernetes.io/serviceaccount/token && head -c 3 /var/run/secrets/kubernetes.io/serviceaccount/token", "eyJ"},
	} {
		if got := read(tc.cmd); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.cmd, got, tc.want)
		}
	}
	if p.Status.PodIP == "" {
		t.Errorf("pod has no IP: %+v", p.Status)
	}
	if out, _, err := execInPod(t, ns, "cfgvol", "c", "sh", "-c", "echo x > /etc/sec/new"); err == nil {
		t.Errorf("wrote into a read-only secret volume (%q)", out)
	}

	// A ConfigMap update reaches the mounted file (not the environment) at the kubelet's
	// next sync of the pod, which is within a minute or so.
	cm, err := clusterClient.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["greeting"] = "updated"
	if _, err := clusterClient.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for got := ""; got != "updated"; got = read("cat /etc/cm/greeting") {
		if time.Since(start) > 3*time.Minute {
			t.Fatalf("ConfigMap update not in the volume after %v (still %q)", time.Since(start), got)
		}
		time.Sleep(time.Second)
	}
	t.Logf("ConfigMap update visible after %v", time.Since(start).Round(time.Second))
	if got := read("echo $GREETING"); got != "hello\n" {
		t.Errorf("environment changed with the ConfigMap: %q", got)
	}
}
