package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPreflightNamesMissingPermissions runs as an identity that may read and update the Secret but nothing else:
// the run names every missing permission before writing anything.
func TestPreflightNamesMissingPermissions(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "preflight", nil)
	fixture(t, ns)
	if _, err := cluster.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secret-only"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "update"}, ResourceNames: []string{"app-requests-proxy-admin"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "secret-only"},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "secret-only"}, Subjects: []rbacv1.Subject{{Kind: "User", Name: "limited"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := endState(t, ns)
	s0, _ := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	out, err := exec.Command(cluster.Binary, "--kubeconfig", cluster.Kubeconfig, "--kube-as-user", "limited", "-n", ns,
		"run", "app", "--yes", "--consumer", "Deployment/signer", "--consumer", "Deployment/verifier").CombinedOutput()
	for _, want := range []string{"missing permissions in namespace " + ns, "create events", "list pods", "get deployments.apps/signer", "patch deployments.apps/verifier", "nothing was changed"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("want %q in the refusal (exit %d):\n%s", want, exitCode(err), out)
		}
	}
	s1, _ := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	if after, _ := endState(t, ns); after != before || s0.ResourceVersion != s1.ResourceVersion {
		t.Fatalf("the Secret changed: %q -> %q", before, after)
	}
}

// TestRolloutTimeoutIsResumable: a rollout that does not finish in --timeout stops the run with the state kept and
// the command to resume; the rerun completes without a second key.
func TestRolloutTimeoutIsResumable(t *testing.T) {
	ns := namespace(t, "timeout", nil)
	fixture(t, ns)
	time.Sleep(2 * time.Second) // initial pods Available
	holdVerifier(t, ns, 3600)
	out, err := exec.Command(cluster.Binary, "--kubeconfig", cluster.Kubeconfig, "-n", ns, "run", "app", "--yes", "--timeout", "5s").CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "rollout did not finish in time") || !strings.Contains(string(out), "Resume with: helm -n "+ns+" rotate-key app --yes") {
		t.Fatalf("timed-out run: exit %d\n%s", exitCode(err), out)
	}
	if state, _ := endState(t, ns); state != "KeyAdded keys=active,key.v1,key.v2 active=v1" {
		t.Fatalf("state after the timeout: %q", state)
	}
	holdVerifier(t, ns, 0)
	out, err = exec.Command(cluster.Binary, "--kubeconfig", cluster.Kubeconfig, "-n", ns, "run", "app", "--yes", "--timeout", "2m").CombinedOutput()
	if state, _ := endState(t, ns); exitCode(err) != 3 || state != "Waiting keys=active,key.v1,key.v2 active=v2" {
		t.Fatalf("resumed run: exit %d, state %q\n%s", exitCode(err), state, out)
	}
	if !strings.Contains(string(out), "took over the lock") {
		t.Fatalf("the resumed run should say it took over the dead run's lock:\n%s", out)
	}
}
