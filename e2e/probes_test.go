package e2e

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeEvery is a probe run every second that flips on one result.
func probeEvery(h corev1.ProbeHandler) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: h, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1}
}

// TestReadinessProbes: exec, HTTP and TCP readiness probes turn the pod Ready and not Ready as
// what they check appears and goes away in the container, without restarting it.
func TestReadinessProbes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
		probe  corev1.ProbeHandler
	}{
		{
			name:   "exec",
			script: "touch /tmp/ready; sleep 3600",
			probe:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
		},
		{
			// busybox httpd answers 404 for a missing file.
			name:   "http",
			script: "mkdir -p /www; touch /tmp/ready; echo ok > /www/ready; while true; do if [ -f /tmp/ready ]; then echo ok > /www/ready; else rm -f /www/ready; fi; sleep 0.2; done & exec httpd -f -p 8080 -h /www",
			probe:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}},
		},
		{
			// A listener on 8080 exactly while /tmp/ready exists.
			name: "tcp",
			script: `touch /tmp/ready; mkdir -p /www
while true; do
  if [ -f /tmp/ready ]; then httpd -f -p 8080 -h /www & p=$!; while [ -f /tmp/ready ]; do sleep 0.2; done; kill $p; wait $p; fi
  sleep 0.2
done`,
			probe: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			pod := bbPod("ready-"+tc.name, tc.script)
			pod.Spec.Containers[0].ReadinessProbe = probeEvery(tc.probe)
			createPod(t, ns, pod)
			name := pod.Name
			waitPodReady(t, ns, name)
			mustExec(t, ns, name, "c", "rm", "/tmp/ready")
			waitPod(t, ns, name, 30*time.Second, func(p *corev1.Pod) bool {
				s := ctrStatusOf(p, "c")
				return !podReady(p) && s != nil && !s.Ready && s.State.Running != nil
			})
			mustExec(t, ns, name, "c", "touch", "/tmp/ready")
			p := waitPod(t, ns, name, 30*time.Second, podReady)
			if s := ctrStatusOf(p, "c"); s.RestartCount != 0 {
				t.Errorf("a readiness probe restarted the container: %s", statusString(p))
			}
		})
	}
}

// TestLivenessProbes: a failing liveness probe restarts the container (HTTP: the page goes away;
// exec: the probe hangs past its timeout and must be cut off), and the new attempt stays up.
func TestLivenessProbes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
		probe  corev1.ProbeHandler
		breakc []string
	}{
		{
			name:   "http",
			script: "mkdir -p /www; echo ok > /www/healthz; exec httpd -f -p 8080 -h /www",
			probe:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
			breakc: []string{"rm", "/www/healthz"},
		},
		{
			name:   "exec-timeout",
			script: "sleep 3600",
			probe:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "if [ -f /tmp/hang ]; then sleep 60; fi"}}},
			breakc: []string{"touch", "/tmp/hang"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			pod := bbPod("live-"+tc.name, tc.script)
			pod.Spec.Containers[0].LivenessProbe = probeEvery(tc.probe)
			// Liveness is checked once the startup probe has passed, so a server still
			// starting is not a failure.
			pod.Spec.Containers[0].StartupProbe = &corev1.Probe{ProbeHandler: tc.probe, PeriodSeconds: 1, FailureThreshold: 60}
			createPod(t, ns, pod)
			name := pod.Name
			waitPod(t, ns, name, 2*time.Minute, func(p *corev1.Pod) bool {
				s := ctrStatusOf(p, "c")
				return s != nil && s.State.Running != nil
			})
			time.Sleep(3 * time.Second) // a few passing probes first
			p := getPod(t, ns, name)
			if s := ctrStatusOf(p, "c"); s.RestartCount != 0 {
				t.Fatalf("restarted while its liveness probe passed: %s", statusString(p))
			}
			broken := time.Now()
			mustExec(t, ns, name, "c", tc.breakc...)
			// A probe that is not cut off at its 1 s timeout would hold the restart for 60 s.
			p = waitPod(t, ns, name, 30*time.Second, func(p *corev1.Pod) bool {
				s := ctrStatusOf(p, "c")
				return s != nil && s.RestartCount >= 1 && s.State.Running != nil
			})
			t.Logf("restarted %v after the probe started failing", time.Since(broken).Round(100*time.Millisecond))
			if last := ctrStatusOf(p, "c").LastTerminationState.Terminated; last == nil {
				t.Errorf("no last termination state after the liveness restart: %s", statusString(p))
			}
			// The new attempt has a fresh rootfs, so its probe passes and it stays.
			time.Sleep(4 * time.Second)
			p = getPod(t, ns, name)
			if s := ctrStatusOf(p, "c"); s.RestartCount != 1 || s.State.Running == nil {
				t.Errorf("want exactly one restart and the container running: %s", statusString(p))
			}
		})
	}
}
