package e2e

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestTerminationMessage: what a container writes to its terminationMessagePath, or with
// FallbackToLogsOnError the end of its log, becomes its terminated state's message.
func TestTerminationMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
		policy corev1.TerminationMessagePolicy
		path   string
		want   string
	}{
		{name: "file", script: "echo -n bye-message > /dev/termination-log; exit 1", policy: corev1.TerminationMessageReadFile, want: "bye-message"},
		{name: "custompath", script: "echo -n custom > /tmp/msg; exit 0", policy: corev1.TerminationMessageReadFile, path: "/tmp/msg", want: "custom"},
		{name: "logs", script: "echo first; echo last words; exit 2", policy: corev1.TerminationMessageFallbackToLogsOnError, want: "first\nlast words\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			pod := bbPod("msg", tc.script)
			pod.Spec.RestartPolicy = corev1.RestartPolicyNever
			pod.Spec.Containers[0].TerminationMessagePolicy = tc.policy
			if tc.path != "" {
				pod.Spec.Containers[0].TerminationMessagePath = tc.path
			}
			createPod(t, ns, pod)
			p := waitPod(t, ns, "msg", 2*time.Minute, func(p *corev1.Pod) bool {
				s := ctrStatusOf(p, "c")
				return s != nil && s.State.Terminated != nil
			})
			if got := ctrStatusOf(p, "c").State.Terminated.Message; got != tc.want {
				t.Errorf("termination message = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPodIdentityFiles: the pod's hostname, the kubelet's /etc/hosts (with the pod's IP and
// name) and the resolv.conf built from the pod's dnsConfig are what the container sees.
func TestPodIdentityFiles(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("ident", "sleep 3600")
	pod.Spec.Hostname = "myhost"
	pod.Spec.Subdomain = "sub"
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"alias.example"}}}
	pod.Spec.DNSPolicy = corev1.DNSNone
	pod.Spec.DNSConfig = &corev1.PodDNSConfig{
		Nameservers: []string{"10.0.0.10"},
		Searches:    []string{"e2e.example"},
		Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptrTo("2")}},
	}
	createPod(t, ns, pod)
	p := waitPodReady(t, ns, "ident")

	if got := mustExec(t, ns, "ident", "c", "hostname"); got != "myhost\n" {
		t.Errorf("hostname = %q, want myhost", got)
	}
	hosts := mustExec(t, ns, "ident", "c", "cat", "/etc/hosts")
	for _, want := range []string{
		p.Status.PodIP + "\tmyhost.sub." + ns + ".svc.cluster.local\tmyhost",
		"10.1.2.3\talias.example",
		"127.0.0.1\tlocalhost",
	} {
		if !strings.Contains(hosts, want) {
			t.Errorf("/etc/hosts lacks %q:\n%s", want, hosts)
		}
	}
	resolv := mustExec(t, ns, "ident", "c", "cat", "/etc/resolv.conf")
	for _, want := range []string{"nameserver 10.0.0.10", "search e2e.example", "options ndots:2"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("/etc/resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
}
