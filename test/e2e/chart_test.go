package e2e

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// secretState reads the example release's keyring: its data keys, active version and rotation phase.
func secretState(t *testing.T, ns string) (keys []string, active string, st rotation.State) {
	t.Helper()
	s, err := cluster.Client.CoreV1().Secrets(ns).Get(context.Background(), "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range s.Data {
		if k != "active" {
			keys = append(keys, k)
		}
	}
	st, err = rotation.ParseState(s.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	return sortedCopy(keys), string(s.Data["active"]), st
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

// TestHookJobFailureIsResumable stops a hook rotation half-way (the verifier cannot become available within the
// hook's rollout timeout, so the rollout Job fails and Helm fails the upgrade), then reruns `helm rotate-key`: the
// rotation resumes from the state the failed Job left and completes steps 1-4 with exactly one new key.
func TestHookJobFailureIsResumable(t *testing.T) {
	parallel(t, 80*time.Second)
	ctx := context.Background()
	h := newHelm(t, 4)
	ns := namespace(t, "hookfail", nil)
	if out, err := installExample(ctx, h, ns, "app", "--set", "tokenTtlSeconds=60", "--set", "rotate-key.rotation.rolloutTimeoutSeconds=10", "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	hold := func(seconds int) { holdDeployment(t, ns, "app-requests-proxy", seconds) }
	hold(600)
	out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes")
	if exitCode(err) != 1 || !strings.Contains(out, "resumes where it stopped") || !strings.Contains(out, "Job app-rotate-key-2-rollout failed:\n    ") {
		t.Fatalf("a hook rotation whose rollout Job times out must fail with a resumable state: exit %d\n%s", exitCode(err), out)
	}
	keys, active, st := secretState(t, ns)
	if st.Phase != rotation.KeyAdded || fmt.Sprint(keys) != "[key.v1 key.v2]" || active != "v1" {
		t.Fatalf("after the failed Job: phase %s keys %v active %s", st.Phase, keys, active)
	}
	logs := hookJobLogs(t, ns)
	if !strings.Contains(logs, "hook rollout failed: rollout did not finish in time") {
		t.Fatalf("the failed Job must say why:\n%s", logs)
	}
	hold(0)
	out, err = h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes")
	if exitCode(err) != 3 {
		t.Fatalf("the rerun must finish steps 1-4 and wait for the TTL: exit %d\n%s", exitCode(err), out)
	}
	keys, active, st = secretState(t, ns)
	if st.Phase != rotation.Waiting || fmt.Sprint(keys) != "[key.v1 key.v2]" || active != "v2" {
		t.Fatalf("after the rerun: phase %s keys %v active %s (want Waiting, one new key, v2 active)", st.Phase, keys, active)
	}
	t.Logf("failed upgrade left %s; rerun reached %s with keys %v", rotation.KeyAdded, st.Phase, keys)
}

// TestRestrictedNamespaceCronJobAndLeastPrivilege installs the example chart with the scheduled rotation into a
// namespace that enforces Pod Security "restricted", runs an upgrade (every hook Job pod is admitted), triggers
// the CronJob (a due rotation is performed), and asks the real RBAC authorizer what the Jobs' ServiceAccount may do.
func TestRestrictedNamespaceCronJobAndLeastPrivilege(t *testing.T) {
	parallel(t, 25*time.Second)
	ctx := context.Background()
	h := newHelm(t, 3)
	ns := namespace(t, "restricted", map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"})
	if out, err := installExample(ctx, h, ns, "app", "--set", "tokenTtlSeconds=60", "--set", "rotate-key.schedule.enabled=true", "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("install into a restricted namespace: %v\n%s", err, out)
	}
	// The namespace really enforces it: a pod without the restricted settings is refused.
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unrestricted"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example.com/x:1"}}}}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("a pod without securityContext must be refused in the restricted namespace: %v", err)
	}
	if out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values", "--timeout", "3m"); err != nil {
		t.Fatalf("upgrade (five hook Jobs) in a restricted namespace: %v\n%s", err, out)
	}

	// The CronJob performs a due rotation (never rotated: due now) when its Job runs.
	cron, err := cluster.Client.BatchV1().CronJobs(ns).Get(ctx, "app-rotate-key", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cron.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Fatalf("CronJob concurrencyPolicy %s, want Forbid", cron.Spec.ConcurrencyPolicy)
	}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "app-rotate-key-manual", Labels: cron.Spec.JobTemplate.Labels}, Spec: cron.Spec.JobTemplate.Spec}
	if _, err := cluster.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	outcome, pod := waitJob(t, ns, job.Name)
	logs := cluster.PodLogs(ns, pod.Name)
	keys, active, st := secretState(t, ns)
	if outcome != "Complete" || st.Phase != rotation.Waiting || fmt.Sprint(keys) != "[key.v1 key.v2]" || active != "v2" {
		t.Fatalf("CronJob's Job: %s; phase %s keys %v active %s\n%s", outcome, st.Phase, keys, active, logs)
	}

	// Least privilege, asked of the real authorizer.
	sa := "system:serviceaccount:" + ns + ":app-rotate-key"
	other := namespace(t, "other", nil)
	checks := []struct {
		attrs authorizationv1.ResourceAttributes
		want  bool
	}{
		{authorizationv1.ResourceAttributes{Namespace: ns, Verb: "update", Resource: "secrets", Name: "app-requests-proxy-admin"}, true},
		{authorizationv1.ResourceAttributes{Namespace: ns, Verb: "patch", Group: "apps", Resource: "deployments", Name: "app-jobs-manager"}, true},
		{authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "pods"}, true},
		{authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "events"}, true},
		{authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets", Name: "sh.helm.release.v1.app.v1"}, false},
		{authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "secrets"}, false},
		{authorizationv1.ResourceAttributes{Namespace: ns, Verb: "delete", Resource: "secrets", Name: "app-requests-proxy-admin"}, false},
		{authorizationv1.ResourceAttributes{Namespace: ns, Verb: "patch", Group: "apps", Resource: "deployments", Name: "unrelated"}, false},
		{authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: "apps", Resource: "deployments"}, false},
		{authorizationv1.ResourceAttributes{Namespace: other, Verb: "get", Resource: "secrets", Name: "app-requests-proxy-admin"}, false},
		{authorizationv1.ResourceAttributes{Namespace: other, Verb: "list", Resource: "pods"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "namespaces"}, false},
	}
	var report []string
	for _, c := range checks {
		attrs := c.attrs
		review, err := cluster.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}, ResourceAttributes: &attrs}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%s %s/%s %s in %q: allowed=%v", attrs.Verb, attrs.Group, attrs.Resource, attrs.Name, attrs.Namespace, review.Status.Allowed)
		report = append(report, line)
		if review.Status.Allowed != c.want {
			t.Errorf("%s, want %v", line, c.want)
		}
	}
	t.Logf("restricted namespace: install, upgrade with 5 hook Jobs and the CronJob's Job admitted; rotation via CronJob reached %s; authorizer:\n  %s",
		st.Phase, strings.Join(report, "\n  "))
}

// TestPlainUpgradeRequestsRotation requests a rotation the way a GitOps tool would: a plain `helm upgrade` that
// sets rotate-key.rotation.request. The hook Jobs run steps 1-4 once; the same request kept by --reuse-values
// starts nothing more and writes nothing; `plan` says the release rotates through its hooks.
func TestPlainUpgradeRequestsRotation(t *testing.T) {
	parallel(t, 25*time.Second)
	ctx := context.Background()
	h := newHelm(t, 4)
	ns := namespace(t, "request", nil)
	if out, err := installExample(ctx, h, ns, "app", "--set", "tokenTtlSeconds=60", "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	plan, err := h.Run(ctx, "-n", ns, "rotate-key", "plan", "app")
	if err != nil || !strings.Contains(plan, "Path:      hooks — through the chart's hook Jobs") || !strings.Contains(plan, "drift such as a manual replica change is reverted") {
		t.Fatalf("plan must name the hook path and what it re-applies: %v\n%s", err, plan)
	}
	if out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values", "--set", "rotate-key.rotation.request=2026q4"); err != nil {
		t.Fatalf("upgrade with a rotation request: %v\n%s", err, out)
	}
	keys, active, st := secretState(t, ns)
	if st.Phase != rotation.Waiting || st.RotationID != "2026q4" || fmt.Sprint(keys) != "[key.v1 key.v2]" || active != "v2" {
		t.Fatalf("after the requested upgrade: phase %s id %s keys %v active %s", st.Phase, st.RotationID, keys, active)
	}
	before, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values", "--set", "jobsManager.replicas=1"); err != nil {
		t.Fatalf("an unrelated upgrade during the TTL wait: %v\n%s", err, out)
	}
	after, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys, active, st = secretState(t, ns)
	// Helm 4's server-side apply may take co-ownership of the data fields it renders from lookup (a write that
	// changes managedFields only), so the proof is the content and our own field manager's entry, not the
	// resourceVersion.
	if !reflect.DeepEqual(before.Data, after.Data) || !reflect.DeepEqual(before.Annotations, after.Annotations) ||
		ownWrite(before) != ownWrite(after) || st.Phase != rotation.Waiting {
		t.Fatalf("an unrelated upgrade with the same request must not touch the keyring: data equal %v, annotations equal %v, rotate-key's last write %s -> %s, phase %s keys %v",
			reflect.DeepEqual(before.Data, after.Data), reflect.DeepEqual(before.Annotations, after.Annotations), ownWrite(before), ownWrite(after), st.Phase, keys)
	}
	t.Logf("request 2026q4 ran once: phase %s, keys %v, active %s; the next upgrade (5 hook Jobs) left data, annotations and rotate-key's last write (%s) unchanged", st.Phase, keys, active, strings.SplitN(ownWrite(after), " {", 2)[0])
}

// ownWrite is the time of rotate-key's last write to the object, from its managedFields entry.
func ownWrite(s *corev1.Secret) string {
	for _, m := range s.ManagedFields {
		if m.Manager == "helm-rotate-key" {
			return m.Time.String() + " " + m.FieldsV1.GetRawString()
		}
	}
	return "none"
}
