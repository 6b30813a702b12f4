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
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// probeJob is a Job whose pod runs this project's binary on the runner node: `rotate-key status probe --secret
// $(SECRET_NAME)`, with the namespace from the downward API — a GET of one Secret that RBAC must allow.
func probeJob(name, serviceAccount string, onRunner bool) *batchv1.Job {
	spec := corev1.PodSpec{
		ServiceAccountName: serviceAccount,
		RestartPolicy:      corev1.RestartPolicyNever,
		Containers: []corev1.Container{{
			Name:    "probe",
			Image:   "registry.example.com/rotate-key:test",
			Command: []string{"/rotate-key"},
			Args:    []string{"status", "probe", "--secret", "$(SECRET_NAME)", "-o", "json"},
			Env: []corev1.EnvVar{
				{Name: "SECRET_NAME", Value: "probe-keys"},
				{Name: "HELM_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			},
		}},
	}
	if onRunner {
		spec.NodeSelector, spec.Tolerations = testcluster.RunnerPlacement()
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"probe": name}}, Spec: spec}},
	}
}

// waitJob waits for a Job to finish and returns "Complete" or "Failed" with its pod.
func waitJob(t *testing.T, ns, name string) (string, corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	var outcome string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		job, err := cluster.Client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range job.Status.Conditions {
			if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
				outcome = string(c.Type)
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("job %s/%s did not finish: %v", ns, name, err)
	}
	pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + name})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of job %s: %v (%d)", name, err, len(pods.Items))
	}
	return outcome, pods.Items[0]
}

// TestRunnerExecutesPodsUnderRealRBAC proves the runner: the same Job succeeds under a ServiceAccount allowed to
// get the Secret and fails with the API server's Forbidden under one that is not.
func TestRunnerExecutesPodsUnderRealRBAC(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "runner", nil)
	c := cluster.Client
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "probe-keys"},
		Data: map[string][]byte{"key.v1": []byte(strings.Repeat("k", 64)), "active": []byte("v1")}}, metav1.CreateOptions{}))
	for _, sa := range []string{"allowed", "denied"} {
		must(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}))
	}
	must(c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-probe-keys"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"probe-keys"}}}}, metav1.CreateOptions{}))
	must(c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "allowed"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "read-probe-keys"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "allowed", Namespace: ns}}}, metav1.CreateOptions{}))

	must(c.BatchV1().Jobs(ns).Create(ctx, probeJob("allowed", "allowed", true), metav1.CreateOptions{}))
	must(c.BatchV1().Jobs(ns).Create(ctx, probeJob("denied", "denied", true), metav1.CreateOptions{}))

	outcome, pod := waitJob(t, ns, "allowed")
	logs := cluster.PodLogs(ns, pod.Name)
	if outcome != "Complete" || !strings.Contains(logs, `"secretFound": true`) || !strings.Contains(logs, `"namespace": "`+ns+`"`) || !strings.Contains(logs, `"key.v1"`) {
		t.Fatalf("allowed job: %s, node %s, log:\n%s", outcome, pod.Spec.NodeName, logs)
	}
	if strings.Contains(logs, strings.Repeat("k", 64)) {
		t.Fatal("key material in the pod's output")
	}

	outcome, pod = waitJob(t, ns, "denied")
	logs = cluster.PodLogs(ns, pod.Name)
	want := fmt.Sprintf(`secrets "probe-keys" is forbidden: User "system:serviceaccount:%s:denied" cannot get resource "secrets"`, ns)
	if outcome != "Failed" || !strings.Contains(logs, want) {
		t.Fatalf("denied job: %s, want Failed with %q in its log:\n%s", outcome, want, logs)
	}
	term := pod.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.ExitCode != 1 || !strings.Contains(term.Message, "forbidden") {
		t.Fatalf("denied pod's terminated state: %+v", term)
	}
	t.Logf("allowed: Complete on %s; denied: Failed, exit %d: %s", pod.Spec.NodeName, term.ExitCode, want)
}

// TestJobPodOnKwokNodeFailsLoudly: kwok never runs containers, so a Job pod scheduled on a kwok node must fail
// with a message, never hang or pretend to succeed.
func TestJobPodOnKwokNodeFailsLoudly(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "kwokjob", nil)
	if _, err := cluster.Client.BatchV1().Jobs(ns).Create(ctx, probeJob("lost", "default", false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	outcome, pod := waitJob(t, ns, "lost")
	term := pod.Status.ContainerStatuses[0].State.Terminated
	if outcome != "Failed" || !strings.HasPrefix(pod.Spec.NodeName, "kwok-node-") || term == nil || term.Reason != "NotExecutedOnKwokNode" {
		t.Fatalf("job on a kwok node: %s on %s, %+v", outcome, pod.Spec.NodeName, term)
	}
}

// TestDeploymentOnKwokRollsOut: a Deployment becomes Available on kwok nodes and `kubectl rollout restart`
// completes with every old pod replaced.
func TestDeploymentOnKwokRollsOut(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "rollout", nil)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/web:1"}}}}},
	}
	if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, ns, "wait", "deployment/web", "--for=condition=Available", "--timeout=60s")
	old, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(old.Items) != 3 {
		t.Fatalf("pods before restart: %v %d", err, len(old.Items))
	}
	kubectl(t, ns, "rollout", "restart", "deployment/web")
	out := kubectl(t, ns, "rollout", "status", "deployment/web", "--timeout=90s")
	if !strings.Contains(out, "successfully rolled out") {
		t.Fatalf("rollout status: %s", out)
	}
	// Pods of the old ReplicaSet are deleted by kwok's pod-delete stage; wait until none is left.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			for _, o := range old.Items {
				if p.UID == o.UID {
					return false, nil
				}
			}
		}
		return len(pods.Items) == 3, nil
	})
	if err != nil {
		t.Fatalf("old pods still present after the rollout: %v", err)
	}
}
