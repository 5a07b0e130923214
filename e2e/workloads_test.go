package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestJob: a Job's pod runs to completion and the Job records one success.
func TestJob(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ctx := context.Background()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "job"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptrTo(int32(0)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:                 corev1.RestartPolicyNever,
				TerminationGracePeriodSeconds: ptrTo(int64(2)),
				Containers:                    []corev1.Container{bbContainer("c", "echo job-done")},
			}},
		},
	}
	if _, err := clusterClient.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *batchv1.Job
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		j, err := clusterClient.BatchV1().Jobs(ns).Get(ctx, "job", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = j
		for _, c := range j.Status.Conditions {
			if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("job not finished: %v; status %+v", err, got.Status)
	}
	if got.Status.Succeeded != 1 || got.Status.Failed != 0 || got.Status.CompletionTime == nil {
		t.Fatalf("want succeeded=1 failed=0 and a completion time; got %+v", got.Status)
	}
	pods, err := clusterClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=job"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("job pods: %v, %d", err, len(pods.Items))
	}
	p := &pods.Items[0]
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("job pod phase %s", statusString(p))
	}
	if logs := podLogs(t, ns, p.Name, "c", false); logs != "job-done\n" {
		t.Errorf("job pod logs = %q", logs)
	}
}

// TestDeploymentRollingUpdate: changing a Deployment's pod template rolls out a new
// ReplicaSet; the old pods go, and every pod left runs the new template and is Ready.
func TestDeploymentRollingUpdate(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "roll"}
	c := bbContainer("c", `trap 'exit 0' TERM; echo "version $VERSION"; sleep 3600 & wait`)
	c.Env = []corev1.EnvVar{{Name: "VERSION", Value: "v1"}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
		PeriodSeconds: 1,
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "roll"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptrTo(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptrTo(int64(5)),
					Containers:                    []corev1.Container{c},
				},
			},
		},
	}
	deps := clusterClient.AppsV1().Deployments(ns)
	if _, err := deps.Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, ns, "roll", 1)
	oldRS := replicaSetOf(t, ns, labels, 1)

	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"name":"VERSION","value":"v2"}]}]}}}}`
	if _, err := deps.Patch(ctx, "roll", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, ns, "roll", 2)
	newRS := replicaSetOf(t, ns, labels, 2)
	if newRS.Name == oldRS.Name {
		t.Fatalf("no new ReplicaSet after the template change (%s)", newRS.Name)
	}
	if rs, err := clusterClient.AppsV1().ReplicaSets(ns).Get(ctx, oldRS.Name, metav1.GetOptions{}); err != nil || *rs.Spec.Replicas != 0 {
		t.Fatalf("old ReplicaSet %s not scaled to 0: %v", oldRS.Name, err)
	}

	// The old pods terminate (grace period 5 s); then only new, Ready pods are left.
	hash := newRS.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	var pods *corev1.PodList
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		pods, err = clusterClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=roll"})
		if err != nil {
			return false, err
		}
		if len(pods.Items) != 3 {
			return false, nil
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash || p.DeletionTimestamp != nil || !podReady(p) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var b strings.Builder
		for _, p := range pods.Items {
			fmt.Fprintf(&b, "\n%s hash=%s deleting=%v %s", p.Name, p.Labels[appsv1.DefaultDeploymentUniqueLabelKey], p.DeletionTimestamp != nil, statusString(&p))
		}
		t.Fatalf("after the rollout, want 3 Ready pods of ReplicaSet %s only: %v%s", newRS.Name, err, b.String())
	}
	for _, p := range pods.Items {
		if got := mustExec(t, ns, p.Name, "c", "sh", "-c", "echo $VERSION"); got != "v2\n" {
			t.Errorf("pod %s runs VERSION=%q, want v2", p.Name, got)
		}
	}
}

// waitRolledOut waits until the Deployment's generation gen is observed and fully rolled out,
// the condition kubectl rollout status waits for.
func waitRolledOut(t *testing.T, ns, name string, gen int64) {
	t.Helper()
	var d *appsv1.Deployment
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		d, err = clusterClient.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		want := *d.Spec.Replicas
		s := d.Status
		return d.Generation >= gen && s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want &&
			s.Replicas == want && s.AvailableReplicas == want && s.ReadyReplicas == want, nil
	})
	if err != nil {
		t.Fatalf("deployment %s generation %d not rolled out: %v; status %+v", name, gen, err, d.Status)
	}
}

// replicaSetOf returns the ReplicaSet of the Deployment's revision rev.
func replicaSetOf(t *testing.T, ns string, labels map[string]string, rev int) *appsv1.ReplicaSet {
	t.Helper()
	list, err := clusterClient.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: labels}),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if list.Items[i].Annotations["deployment.kubernetes.io/revision"] == fmt.Sprint(rev) {
			return &list.Items[i]
		}
	}
	t.Fatalf("no ReplicaSet of revision %d among %d", rev, len(list.Items))
	return nil
}
