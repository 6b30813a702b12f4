package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// TestAdmissionPolicy installs the example chart with the opt-in ValidatingAdmissionPolicy and proves each of its
// promises against the real API server: `helm template | kubectl apply` (fresh keys) and a client update that
// drops a key are denied, as is deleting the Secret; the rotation ServiceAccount's writes pass (a rotation and
// the retirement through the hook Jobs); deleting the namespace still completes.
func TestAdmissionPolicy(t *testing.T) {
	parallel(t, 40*time.Second)
	ctx := context.Background()
	h := newHelm(t, 4)
	ns := namespace(t, "policy", nil)
	if out, err := installExample(ctx, h, ns, "app", "--set", "tokenTtlSeconds=60", "--set", "rotate-key.admissionPolicy.enabled=true", "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("install with the admission policy: %v\n%s", err, out)
	}
	// The policy is enforced once the API server has loaded it: wait until a denied DELETE proves it.
	var deleteErr error
	_ = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		deleteErr = cluster.Client.CoreV1().Secrets(ns).Delete(ctx, "app-requests-proxy-admin", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		return deleteErr != nil, nil
	})
	if deleteErr == nil || !apierrors.IsForbidden(deleteErr) && !apierrors.IsInvalid(deleteErr) || !strings.Contains(deleteErr.Error(), "may not be") {
		t.Fatalf("deleting the keyring Secret must be denied: %v", deleteErr)
	}

	// The rotation ServiceAccount's writes pass: steps 1-4 through the hook Jobs.
	if out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes"); exitCode(err) != 3 {
		t.Fatalf("rotation through the hook Jobs under the policy: %v\n%s", err, out)
	}

	// A client update that drops a key version.
	s, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dropped := s.DeepCopy()
	delete(dropped.Data, "key.v1")
	_, updateErr := cluster.Client.CoreV1().Secrets(ns).Update(ctx, dropped, metav1.UpdateOptions{})
	if updateErr == nil || !strings.Contains(updateErr.Error(), "removes a key version") || !strings.Contains(updateErr.Error(), "helm rotate-key app") {
		t.Fatalf("an update that drops key.v1 must be denied with the way out: %v", updateErr)
	}
	noKeep := s.DeepCopy()
	delete(noKeep.Annotations, "helm.sh/resource-policy")
	if _, err := cluster.Client.CoreV1().Secrets(ns).Update(ctx, noKeep, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "keep annotation") {
		t.Fatalf("an update that drops the keep annotation must be denied: %v", err)
	}
	policyBypasses(t, ns, s)

	// helm template renders fresh keys (lookup returns nothing): kubectl apply of it must be denied.
	rendered, _, err := h.RunSplit(ctx, "template", "app", exampleChart(), "--namespace", ns)
	if err != nil {
		t.Fatal(err)
	}
	secretDoc := ""
	for _, doc := range strings.Split(rendered, "\n---") {
		if strings.Contains(doc, "\nkind: Secret\n") {
			secretDoc = doc // only the keyring: the other objects would change the release behind Helm's back
		}
	}
	manifest := filepath.Join(t.TempDir(), "rendered-secret.yaml")
	if err := os.WriteFile(manifest, []byte(secretDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	apply := exec.Command(cluster.Tools.Kubectl, "--kubeconfig", cluster.Kubeconfig, "-n", ns, "apply", "-f", manifest)
	applyOut, applyErr := apply.CombinedOutput()
	if applyErr == nil || !strings.Contains(string(applyOut), "removes a key version") && !strings.Contains(string(applyOut), "changes the bytes of a key version") {
		t.Fatalf("helm template | kubectl apply must be denied for the keyring Secret (exit %d):\n%s", exitCode(applyErr), redactKeys(string(applyOut)))
	}
	after, _, _ := secretState(t, ns)
	if fmt.Sprint(after) != "[key.v1 key.v2]" {
		t.Fatalf("the keyring changed under the policy: %v", after)
	}

	// The retirement by the rotation ServiceAccount passes (the TTL made due, as the passing of time would: written
	// as the ServiceAccount, since the policy lets only a rotator write the state).
	retireDueWith(t, impersonating(t, "system:serviceaccount:"+ns+":app-rotate-key"), ns, "app-requests-proxy-admin", "")
	if out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values"); err != nil {
		t.Fatalf("the retirement through the hook Jobs under the policy: %v\n%s", err, out)
	}
	keys, active, st := secretState(t, ns)
	if fmt.Sprint(keys) != "[key.v2]" || active != "v2" || st.Phase != rotation.Idle {
		t.Fatalf("after the retirement: keys %v active %s phase %s", keys, active, st.Phase)
	}
	// Issue 15.9: that upgrade's guard Job ran as the guard's own ServiceAccount, which can read the keyring and
	// nothing more.
	job, err := cluster.Client.BatchV1().Jobs(ns).Get(ctx, "app-rotate-key-guard-upgrade", metav1.GetOptions{})
	if err != nil || job.Spec.Template.Spec.ServiceAccountName != "app-rotate-key-guard" {
		t.Fatalf("the guard Job must run as app-rotate-key-guard: %v %v", err, job.Spec.Template.Spec.ServiceAccountName)
	}
	guard := impersonating(t, "system:serviceaccount:"+ns+":app-rotate-key-guard")
	ks, err := guard.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the guard's ServiceAccount must read the keyring: %v", err)
	}
	ks.Annotations["x"] = "y"
	if _, err := guard.CoreV1().Secrets(ns).Update(ctx, ks, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
		t.Fatalf("the guard's ServiceAccount must not write the keyring: %v", err)
	}
	if _, err := guard.AppsV1().Deployments(ns).Patch(ctx, "app-jobs-manager", types.MergePatchType, []byte(`{"metadata":{"annotations":{"x":"y"}}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
		t.Fatalf("the guard's ServiceAccount must not patch a workload: %v", err)
	}

	// Issue 15.3: status names the layers that protect the keyring.
	if out, err := h.Run(ctx, "-n", ns, "rotate-key", "status", "app"); err != nil || !strings.Contains(out, "PROTECTION:") || !strings.Contains(out, "guard hooks on helm rollback and upgrade") || !strings.Contains(out, "admission policy rotate-key."+ns+".app-requests-proxy-admin") {
		t.Fatalf("status must name the guard hooks and the admission policy: %v\n%s", err, out)
	}

	// Issue 15.2: adding the retired v1 back (as a rollback's three-way patch or a generating chart would) is denied.
	s, err = cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mark := s.Annotations[rotation.AnnoRetiredUpTo]; mark != "v1" {
		t.Fatalf("the retirement must record %s v1, got %q", rotation.AnnoRetiredUpTo, mark)
	}
	back := s.DeepCopy()
	back.Data["key.v1"] = append([]byte("not the retired key, but its number: "), back.Data["key.v2"][:8]...)
	if _, err := cluster.Client.CoreV1().Secrets(ns).Update(ctx, back, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "retired already") {
		t.Fatalf("an update that adds the retired v1 back must be denied: %v", err)
	}

	// Deleting the namespace completes: the namespace controller is exempt.
	began := time.Now()
	if err := cluster.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("deleting the namespace did not complete under the policy: %v", err)
	}
	t.Logf("policy: DELETE, a dropped key, a dropped keep annotation and helm template | kubectl apply denied; rotation and retirement by the ServiceAccount passed; namespace deleted in %s", time.Since(began).Round(time.Second))
}

// policyBypasses (issue 15.7): the ways around the first policy, each denied now. As a user who is no rotator: a
// forged rotation state (phase Waiting with a past retire-after: the next run would retire v1 early), a moved
// `active`, an owner (deleting it would make the exempt garbage collector delete the keyring). As the rotation's
// ServiceAccount, which anyone who can create pods in the namespace can use: a rewritten key, a deletion, an owner.
// What stays allowed (server-side dry runs): a configuration annotation by a user, a state write by the ServiceAccount.
func policyBypasses(t *testing.T, ns string, s *corev1.Secret) {
	t.Helper()
	ctx := context.Background()
	sa := impersonating(t, "system:serviceaccount:"+ns+":app-rotate-key")
	dry := metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}
	update := func(c kubernetes.Interface, change func(*corev1.Secret)) error {
		x := s.DeepCopy()
		change(x)
		_, err := c.CoreV1().Secrets(ns).Update(ctx, x, dry)
		return err
	}
	owner := func(x *corev1.Secret) {
		x.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "app-settings", UID: "0b4d0b4d-0000-4000-8000-000000000000"}}
	}
	for _, c := range []struct {
		name   string
		client kubernetes.Interface
		change func(*corev1.Secret)
		denied string // "" : allowed
	}{
		{"a user forges the state (past retire-after)", cluster.Client, func(x *corev1.Secret) { x.Annotations[rotation.AnnoRetireAfter] = "2020-01-01T00:00:00Z" }, "writes the rotation state"},
		{"a user adds a state annotation", cluster.Client, func(x *corev1.Secret) { x.Annotations[rotation.AnnoRetiredAt] = "2020-01-01T00:00:00Z" }, "writes the rotation state"},
		{"a user removes the state", cluster.Client, func(x *corev1.Secret) { delete(x.Annotations, rotation.AnnoPhase) }, "writes the rotation state"},
		{"a user moves active", cluster.Client, func(x *corev1.Secret) { x.Data["active"] = []byte("v1") }, "moves or removes `active`"},
		{"a user sets an owner", cluster.Client, owner, "gives keyring Secret"},
		{"the ServiceAccount rewrites a key", sa, func(x *corev1.Secret) { x.Data["key.v1"] = append([]byte{}, x.Data["key.v2"]...) }, "changes the bytes of a key version"},
		{"the ServiceAccount sets an owner", sa, owner, "gives keyring Secret"},
		{"a user changes a configuration annotation", cluster.Client, func(x *corev1.Secret) { x.Annotations[rotation.AnnoInterval] = "30d" }, ""},
		{"the ServiceAccount writes the state", sa, func(x *corev1.Secret) { x.Annotations[rotation.AnnoRetireAfter] = "2030-01-01T00:00:00Z" }, ""},
	} {
		err := update(c.client, c.change)
		switch {
		case c.denied == "" && err != nil:
			t.Errorf("%s must be allowed: %v", c.name, err)
		case c.denied != "" && (err == nil || !strings.Contains(err.Error(), c.denied)):
			t.Errorf("%s must be denied (%q): %v", c.name, c.denied, err)
		}
	}
	// Issue 15.9: the ServiceAccount may patch the consumers only to restart them.
	for _, c := range []struct {
		name, patch string
		allowed     bool
	}{
		{"a restart", `{"spec":{"template":{"metadata":{"annotations":{"rotate-key.tracebloc.io/restarted-for":"test"}}}}}`, true},
		{"another image", `{"spec":{"template":{"spec":{"containers":[{"name":"jobs-manager","image":"evil.example.com/x:1"}]}}}}`, false},
		{"another pod annotation", `{"spec":{"template":{"metadata":{"annotations":{"x":"y"}}}}}`, false},
	} {
		_, err := sa.AppsV1().Deployments(ns).Patch(ctx, "app-jobs-manager", types.StrategicMergePatchType, []byte(c.patch), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		if c.allowed && err != nil || !c.allowed && (err == nil || !strings.Contains(err.Error(), "may only restart this workload")) {
			t.Errorf("the ServiceAccount patching a consumer with %s: allowed %v, got %v", c.name, c.allowed, err)
		}
	}
	// Deleting: its Role has no delete verb, so RBAC refuses before the policy is asked (the policy's DELETE rule
	// holds for every rotator: TestAdmissionPolicy's first check).
	if err := sa.CoreV1().Secrets(ns).Delete(ctx, s.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err == nil || !apierrors.IsForbidden(err) {
		t.Errorf("the ServiceAccount deleting the keyring must be refused: %v", err)
	}
}

// impersonating is a client of the test cluster acting as user.
func impersonating(t *testing.T, user string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// redactKeys removes data lines from kubectl's output before it is printed.
func redactKeys(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "key.v") {
			l = "<line with key data removed>"
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// TestGuardFailsClosed: the post-renderer refuses, with what to do, when it cannot read the live Secret (API
// server unreachable, or reading it forbidden), and --offline checks the stream alone.
func TestGuardFailsClosed(t *testing.T) {
	ctx := context.Background()
	h := newHelm(t, 3)
	ns := namespace(t, "failclosed", nil)
	if out, err := installExample(ctx, h, ns, "app"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	stream, _, err := h.RunSplit(ctx, "template", "app", exampleChart(), "--namespace", ns, "--kube-version", cluster.Tools.Versions["K8S_VERSION"])
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(t.TempDir(), "dead.kubeconfig")
	if err := os.WriteFile(dead, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {token: x}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(cluster.Binary, append([]string{"guard", "--release=app", "--namespace=" + ns}, args...)...)
		cmd.Stdin = strings.NewReader(stream)
		var out, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &stderr
		err := cmd.Run()
		return out.String(), stderr.String(), exitCode(err)
	}
	for name, args := range map[string][]string{
		"unreachable": {"--kubeconfig", dead},
		"forbidden":   {"--kubeconfig", cluster.Kubeconfig, "--kube-as-user", "nobody"},
	} {
		out, stderr, code := run(args...)
		if code != 6 || out != "" || !strings.Contains(stderr, "cannot read keyring Secret") || !strings.Contains(stderr, "--offline") {
			t.Fatalf("%s: want exit 6, no output and a message naming the way out; got exit %d, %d bytes out:\n%s", name, code, len(out), stderr)
		}
	}
	out, stderr, code := run("--kubeconfig", dead, "--offline")
	if code != 0 || out != stream {
		t.Fatalf("--offline must pass the stream through unchanged: exit %d\n%s", code, stderr)
	}
	t.Logf("guard: unreachable API server and forbidden read refused with exit 6 and no output; --offline passed %d bytes through unchanged", len(stream))
}
