package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tracebloc/helm-rotate-key/internal/action/actiontest"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// cmdCase is one command line against a fake world, in the style of helm's cmdTestCase: its stdout, stderr, exit
// code, the Helm command lines it ran and the keyring it left are compared with testdata/golden/<name>.txt
// (go test ./internal/cli -run TestGolden -update rewrites them; review the diff).
type cmdCase struct {
	name    string
	args    []string
	objects []runtime.Object
	// helm answers the recording Helm (nil: no Helm call is expected).
	helm     func(bin string, args []string) (string, int)
	stdin    string
	terminal bool
	env      map[string]string
	code     exitcode.Code
	// upgraded, when set, is what the chart's hook Jobs leave on the keyring during `helm upgrade`.
	upgraded *corev1.Secret
}

const secretName = "app-requests-proxy-admin"

var (
	now     = actiontest.Now
	ttlAnno = map[string]string{rotation.AnnoTTLSeconds: "3600", "helm.sh/resource-policy": "keep"}
)

// keyring is the fake keyring with versions 1..n, active `active` (0: n), the configuration annotations, and st.
func keyring(n, active int, st *rotation.State, extra ...string) *corev1.Secret {
	anno := map[string]string{}
	for k, v := range ttlAnno {
		anno[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(anno, extra[i])
		} else {
			anno[extra[i]] = extra[i+1]
		}
	}
	if st != nil {
		anno = st.ApplyAnnotations(anno)
	}
	return actiontest.Keyring(secretName, n, active, anno)
}

// waiting is a rotation v1 -> v2 waiting for the TTL until retireAfter.
func waiting(retireAfter time.Time) *rotation.State {
	return &rotation.State{Phase: rotation.Waiting, RotationID: "r1", From: 1, To: 2, StartedAt: now.Add(-2 * time.Hour), PromotedAt: retireAfter.Add(-time.Hour - time.Minute),
		RetireAfter: retireAfter, TTLUsed: time.Hour, TransitionAt: retireAfter.Add(-time.Hour - time.Minute), NextRotationDue: retireAfter.Add(90 * 24 * time.Hour)}
}

// retiredV1 is a finished rotation v1 -> v2: v1 retired.
func retiredV1() *rotation.State {
	return &rotation.State{Phase: rotation.Idle, RotationID: "r0", From: 1, To: 2, PromotedAt: now.Add(-48 * time.Hour), RetireAfter: now.Add(-25 * time.Hour),
		RetiredAt: now.Add(-24 * time.Hour), FinishedAt: now.Add(-24 * time.Hour), NextRotationDue: now.Add(60 * 24 * time.Hour)}
}

func withID(st *rotation.State, id string) *rotation.State {
	st.RotationID = id
	return st
}

func idleDue(due time.Time) *rotation.State {
	return &rotation.State{Phase: rotation.Idle, RotationID: "r0", From: 1, To: 2, FinishedAt: due.Add(-90 * 24 * time.Hour), NextRotationDue: due}
}

func release(rev int, values map[string]any, hooks ...string) *corev1.Secret {
	return actiontest.Release("app", rev, "deployed", values, hooks...)
}

// withHooks is the release record of a chart that has the rotation hook Jobs.
func withHooks() *corev1.Secret {
	var hooks []string
	for i, step := range rotation.ChartHooks() {
		hooks = append(hooks, actiontest.HookJob(step, 10*(i+1), secretName))
	}
	return release(2, map[string]any{"tokenTtlSeconds": 3600}, hooks...)
}

// without is s without the data keys named.
func without(s *corev1.Secret, keys ...string) *corev1.Secret {
	for _, k := range keys {
		delete(s.Data, k)
	}
	return s
}

// stalled is a consumer whose controller never catches up: its rollouts never finish.
func stalled(name string) *appsv1.Deployment {
	d := consumer(name)
	d.Generation = 2
	return d
}

// pendingUpgrade is the record a helm killed mid-upgrade leaves: the newest revision pending-upgrade, hooks rendered.
func pendingUpgrade() *corev1.Secret {
	var hooks []string
	for i, step := range rotation.ChartHooks() {
		hooks = append(hooks, actiontest.HookJob(step, 10*(i+1), secretName))
	}
	return actiontest.Release("app", 3, "pending-upgrade", map[string]any{"tokenTtlSeconds": 3600}, hooks...)
}

// deadHookUpgrade is the record the hook path's own helm leaves when it dies mid-upgrade on another machine, past
// the time that helm would have given up: revision 3 pending-upgrade with its run token, after the deployed 2.
func deadHookUpgrade() []runtime.Object {
	var hooks []string
	for i, step := range rotation.ChartHooks() {
		hooks = append(hooks, actiontest.HookJob(step, 10*(i+1), secretName))
	}
	values := map[string]any{"tokenTtlSeconds": 3600}
	token := map[string]any{"tokenTtlSeconds": 3600, "rotate-key": map[string]any{"rotation": map[string]any{"run": "r-0badf00d rev 3 on ci-runner-4 until 2026-11-30T11:00:00Z"}}}
	return []runtime.Object{actiontest.Release("app", 2, "deployed", values, hooks...),
		actiontest.ReleaseDescribed("app", 3, "pending-upgrade", "Preparing upgrade", token, hooks...)}
}

// refusedAtomicRollback is what `helm upgrade --atomic` leaves when a rotation hook Job outlived its timeout: the
// failed upgrade 2, and its rollback 3 pending-rollback because the guard Job refused it.
func refusedAtomicRollback() []runtime.Object {
	var hooks []string
	for i, step := range rotation.ChartHooks() {
		hooks = append(hooks, actiontest.HookJob(step, 10*(i+1), secretName))
	}
	values := map[string]any{"tokenTtlSeconds": 3600}
	guard := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "app-rotate-key-guard-rollback", Namespace: actiontest.Namespace},
		Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}}}
	return []runtime.Object{actiontest.Release("app", 1, "deployed", values, hooks...), actiontest.Release("app", 2, "failed", values, hooks...),
		actiontest.ReleaseDescribed("app", 3, "pending-rollback", "Rollback to 1", values, hooks...), guard}
}

// consumer is a Deployment whose pods read the keyring.
func consumer(name string) *appsv1.Deployment {
	replicas := int32(2)
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: actiontest.Namespace, Generation: 1},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "c", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secretName}}}}}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}}
}

// helm4 answers as a Helm 4 with the guard plugin installed; upgrade exits with code.
func helm4(code int) func(string, []string) (string, int) {
	return func(_ string, args []string) (string, int) {
		switch args[0] {
		case "version":
			return "v4.3.1", 0
		case "plugin":
			return "NAME             VERSION\nrotate-key       0.1.0\nrotate-key-guard 0.1.0\n", 0
		}
		return "", code
	}
}

func helm3(_ string, args []string) (string, int) {
	if args[0] == "version" {
		return "v3.22.0", 0
	}
	return "", 0
}

// manifest is a render holding the keyring Secret with versions 1..n.
func manifest(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  annotations:\n    helm.sh/resource-policy: keep\n    %s: \"3600\"\ndata:\n", secretName, rotation.AnnoTTLSeconds)
	s := actiontest.Keyring(secretName, n, 0, nil)
	for _, k := range sortedKeys(s.Data) {
		fmt.Fprintf(&b, "  %s: %s\n", k, base64.StdEncoding.EncodeToString(s.Data[k]))
	}
	return b.String()
}

// describe is the hook guard's --expect for a keyring with versions 1..n.
func describe(n int) string {
	s := actiontest.Keyring(secretName, n, 0, nil)
	parts := []string{"keep=true", fmt.Sprintf("active=v%d", n)}
	for v := 1; v <= n; v++ {
		parts = append(parts, fmt.Sprintf("key.v%d=%s", v, guard.Fingerprint(s.Data[fmt.Sprintf("key.v%d", v)])))
	}
	return strings.Join(parts, ";")
}

func cases() []cmdCase {
	passed := now.Add(-time.Minute)
	later := now.Add(30 * time.Minute)
	stuck := &rotation.State{Phase: rotation.KeyAdded, RotationID: "r2", From: 1, To: 2, StartedAt: now.Add(-2 * time.Hour), TransitionAt: now.Add(-2 * time.Hour)}
	rolledOut := &rotation.State{Phase: rotation.RolledOut, RotationID: "r2", From: 1, To: 2, StartedAt: now.Add(-time.Minute), TransitionAt: now.Add(-time.Minute)}
	retired := &rotation.State{Phase: rotation.Retired, RotationID: "r2", From: 1, To: 2, PromotedAt: now.Add(-2 * time.Hour), RetireAfter: now.Add(-time.Hour), TTLUsed: time.Hour, TransitionAt: now}
	lease := rotation.Lease{Holder: "ci@runner pid 7", RotationID: "r2", Renewed: now.Add(-10 * time.Second), Duration: rotation.LeaseDuration}
	garbled := actiontest.Keyring(secretName, 2, 0, map[string]string{rotation.AnnoPhase: "Sideways"})
	repaired := keyring(2, 0, retiredV1()) // v1 back and active, moved back by the runbook's REPAIR: tokens live an hour more
	repaired.Annotations[rotation.AnnoRepairedUntil] = now.Add(time.Hour).UTC().Format(time.RFC3339)
	other := actiontest.Keyring("billing-keys", 3, 2, map[string]string{rotation.AnnoPhase: "Idle", rotation.AnnoSchema: "1"})
	other.Namespace = "billing"
	pendingRollback := actiontest.Release("app", 3, "pending-rollback", map[string]any{"tokenTtlSeconds": 3600})
	// Round 21: a rotation aborted before its promotion, then the active v1 deleted by hand.
	activeLost := keyring(2, 1, &rotation.State{Phase: rotation.Idle, RotationID: "r1", From: 1, To: 2, StartedAt: now.Add(-2 * time.Hour), FinishedAt: now.Add(-time.Hour)})
	delete(activeLost.Data, "key.v1")
	delete(activeLost.Data, "key.v2")
	return []cmdCase{
		// status
		{name: "status-idle", args: []string{"status", "app"}, objects: []runtime.Object{keyring(1, 0, nil), release(1, nil), consumer("app-requests-proxy")}},
		{name: "status-waiting-locked", args: []string{"status", "app"}, objects: []runtime.Object{keyring(2, 0, waiting(later), rotation.AnnoLease, lease.Format()), release(2, nil)}},
		{name: "status-waiting-json", args: []string{"status", "app", "-o", "json"}, objects: []runtime.Object{keyring(2, 0, waiting(later)), release(2, nil)}},
		{name: "status-not-found", args: []string{"status", "app"}, objects: []runtime.Object{release(1, nil)}},
		{name: "status-garbled-state", args: []string{"status", "app"}, objects: []runtime.Object{garbled}},
		{name: "status-active-key-lost", args: []string{"status", "app"}, objects: []runtime.Object{activeLost, release(2, nil)}},
		{name: "status-fleet", args: []string{"status", "-A"}, objects: []runtime.Object{keyring(2, 0, waiting(later)), other}},
		{name: "status-bad-output", args: []string{"status", "app", "-o", "xml"}, code: exitcode.Usage},
		{name: "status-fleet-with-release", args: []string{"status", "-A", "app"}, code: exitcode.Usage},
		// plan
		{name: "plan-idle-local", args: []string{"plan", "app"}, objects: []runtime.Object{keyring(1, 0, nil), release(1, nil), consumer("app-requests-proxy"), consumer("app-jobs-manager")}},
		{name: "plan-waiting", args: []string{"plan", "app"}, objects: []runtime.Object{keyring(2, 0, waiting(later)), release(2, nil)}},
		{name: "plan-hooks-json", args: []string{"plan", "app", "-o", "json"}, objects: []runtime.Object{keyring(1, 0, nil), withHooks()}},
		{name: "plan-ttl-not-configured", args: []string{"plan", "app"}, objects: []runtime.Object{keyring(1, 0, nil, rotation.AnnoTTLSeconds, "")}},
		{name: "plan-ttl-from-values", args: []string{"plan", "app"}, objects: []runtime.Object{keyring(1, 0, nil, rotation.AnnoTTLSeconds, "", rotation.AnnoTTLPath, "requestsProxy.tokenTtlSeconds"),
			release(1, map[string]any{"requestsProxy": map[string]any{"tokenTtlSeconds": 7200}})}},
		// check
		{name: "check-ok", args: []string{"check", "app"}, objects: []runtime.Object{keyring(2, 0, idleDue(now.Add(24*time.Hour)))}},
		{name: "check-next-rotation-overdue", args: []string{"check", "app"}, objects: []runtime.Object{keyring(2, 0, idleDue(now.Add(-48*time.Hour)))}, code: exitcode.Overdue},
		{name: "check-retirement-overdue", args: []string{"check", "app", "--secret", secretName}, objects: []runtime.Object{keyring(2, 0, waiting(now.Add(-25*time.Hour)))}, code: exitcode.Overdue},
		{name: "check-stopped-half-way", args: []string{"check", "app"}, objects: []runtime.Object{keyring(2, 1, stuck)}, code: exitcode.Overdue},
		{name: "check-no-secret", args: []string{"check", "app"}, code: exitcode.Usage},
		// Issue 15.2: a retired version back in the keyring (a rollback or a generating chart no guard layer saw).
		{name: "check-retired-key-back", args: []string{"check", "app"}, objects: []runtime.Object{keyring(2, 0, retiredV1())}, code: exitcode.Overdue},
		{name: "status-protected-by-hooks", args: []string{"status", "app"}, objects: []runtime.Object{keyring(1, 0, nil), release(1, nil, actiontest.HookJob("guard-upgrade", -10, secretName), actiontest.HookJob("guard-rollback", -10, secretName))}},
		{name: "status-retired-key-back", args: []string{"status", "app"}, objects: []runtime.Object{keyring(2, 0, retiredV1()), release(2, nil), consumer("app-requests-proxy")}},
		// Round 31 of the runbook: status said "remove it" while the runbook's EXTRA waited for the repair's tokens.
		{name: "status-retired-key-back-repaired", args: []string{"status", "app"}, objects: []runtime.Object{repaired, release(2, nil), consumer("app-requests-proxy")}},
		{name: "run-retired-key-back", args: []string{"run", "app", "--yes", "--force", "--reason", "audit"}, objects: []runtime.Object{keyring(2, 0, retiredV1()), release(2, nil)}, code: exitcode.Refused},
		{name: "check-garbled-state", args: []string{"check", "app"}, objects: []runtime.Object{garbled}, code: exitcode.Refused},
		// remind
		{name: "remind-waiting", args: []string{"remind", "app", "--ics", "-"}, objects: []runtime.Object{keyring(2, 0, waiting(later))}},
		{name: "remind-nothing", args: []string{"remind", "app", "--ics", "-"}, objects: []runtime.Object{keyring(1, 0, nil)}, code: exitcode.Usage},
		{name: "remind-no-file", args: []string{"remind", "app"}, code: exitcode.Usage},
		// run, retire, abort: local path
		{name: "run-full-to-waiting", args: []string{"run", "app", "--yes"}, objects: []runtime.Object{keyring(1, 0, nil), release(1, nil)}, code: exitcode.Waiting},
		{name: "run-waiting", args: []string{"app", "--yes"}, objects: []runtime.Object{keyring(2, 0, waiting(later))}, code: exitcode.Waiting},
		{name: "run-retire-after-ttl", args: []string{"retire", "app", "--yes"}, objects: []runtime.Object{keyring(2, 0, waiting(passed))}},
		{name: "run-not-due", args: []string{"run", "app", "--yes"}, objects: []runtime.Object{keyring(2, 0, idleDue(now.Add(24*time.Hour)))}},
		{name: "run-forced", args: []string{"run", "app", "--yes", "--force", "--reason", "audit finding"}, objects: []runtime.Object{keyring(2, 0, idleDue(now.Add(24*time.Hour)))}, code: exitcode.Waiting},
		{name: "run-ttl-not-configured", args: []string{"run", "app", "--yes"}, objects: []runtime.Object{keyring(1, 0, nil, rotation.AnnoTTLSeconds, "")}, code: exitcode.Refused},
		{name: "run-ttl-shorter-than-configured", args: []string{"run", "app", "--yes", "--ttl", "60"}, objects: []runtime.Object{keyring(1, 0, nil)}, code: exitcode.Usage},
		{name: "run-ttl-zero", args: []string{"run", "app", "--ttl", "0"}, code: exitcode.Usage},
		{name: "run-ttl-negative-days", args: []string{"run", "app", "--ttl", "-1d"}, code: exitcode.Usage},
		{name: "run-ttl-beyond-ceiling", args: []string{"run", "app", "--ttl", "4000d"}, code: exitcode.Usage},
		{name: "run-not-a-terminal", args: []string{"run", "app"}, objects: []runtime.Object{keyring(1, 0, nil)}, code: exitcode.Usage},
		{name: "run-prompt-declined", args: []string{"run", "app"}, objects: []runtime.Object{keyring(1, 0, nil)}, terminal: true, stdin: "n\n", code: exitcode.Usage},
		{name: "run-lock-held", args: []string{"run", "app", "--yes"}, objects: []runtime.Object{keyring(2, 1, stuck, rotation.AnnoLease, lease.Format())}, code: exitcode.LockHeld},
		{name: "run-rollout-timeout", args: []string{"run", "app", "--yes", "--timeout", "1ms", "--consumer", "Deployment/app-requests-proxy"}, objects: []runtime.Object{keyring(2, 1, stuck), stalled("app-requests-proxy")}, code: exitcode.Code(1)},
		{name: "run-emergency-declined", args: []string{"run", "app", "--emergency", "--reason", "INC-7"}, objects: []runtime.Object{keyring(2, 0, waiting(later))}, terminal: true, stdin: "no\n", code: exitcode.Usage},
		{name: "run-emergency", args: []string{"run", "app", "--emergency", "--reason", "INC-7", "--yes"}, objects: []runtime.Object{keyring(2, 0, waiting(later))}},
		{name: "run-emergency-with-ttl", args: []string{"run", "app", "--emergency", "--reason", "INC-7", "--ttl", "1h"}, code: exitcode.Usage},
		{name: "abort-before-promotion", args: []string{"abort", "app", "--yes"}, objects: []runtime.Object{keyring(2, 1, rolledOut)}},
		{name: "abort-after-promotion", args: []string{"abort", "app", "--yes"}, objects: []runtime.Object{keyring(2, 0, waiting(later))}},
		{name: "abort-idle", args: []string{"abort", "app", "--yes"}, objects: []runtime.Object{keyring(1, 0, nil)}},
		{name: "abort-retired", args: []string{"abort", "app", "--yes"}, objects: []runtime.Object{without(keyring(2, 0, retired), "key.v1")}, code: exitcode.Refused},
		{name: "run-secret-missing", args: []string{"run", "app", "--yes"}, code: exitcode.Usage},
		// run: hook path
		{name: "run-hooks-upgrade", args: []string{"run", "app", "--yes", "--chart", "./chart"}, objects: []runtime.Object{keyring(1, 0, nil), withHooks()}, helm: helm4(0),
			upgraded: keyring(2, 0, withID(waiting(later), "20261130T120000Z-a1b2c3")), code: exitcode.Waiting},
		{name: "run-hooks-upgrade-fails", args: []string{"run", "app", "--yes", "--chart", "./chart"}, objects: []runtime.Object{keyring(1, 0, nil), withHooks()}, helm: helm4(1), code: exitcode.Code(1)},
		{name: "run-hooks-local-flag-refused", args: []string{"run", "app", "--yes", "--ttl", "2h"}, objects: []runtime.Object{keyring(1, 0, nil), withHooks()}, code: exitcode.Usage},
		{name: "run-hooks-waiting", args: []string{"run", "app", "--yes"}, objects: []runtime.Object{keyring(2, 0, waiting(later)), withHooks()}, code: exitcode.Waiting},
		// hook Jobs
		{name: "hook-add-requested", args: []string{"hook", "step", "add", "--secret", secretName, "--request", "2026q4"}, objects: []runtime.Object{keyring(1, 0, nil)}, env: map[string]string{"POD_NAME": "app-rotate-key-1-add-x7k"}},
		{name: "hook-add-request-already-ran", args: []string{"hook", "step", "add", "--secret", secretName, "--request", "r0"}, objects: []runtime.Object{keyring(2, 0, idleDue(now.Add(24*time.Hour)))}},
		{name: "hook-promote-not-its-phase", args: []string{"hook", "step", "promote", "--secret", secretName}, objects: []runtime.Object{keyring(2, 1, stuck)}},
		{name: "hook-cron-waiting", args: []string{"hook", "cron", "--secret", secretName}, objects: []runtime.Object{keyring(2, 0, waiting(later))}},
		{name: "hook-unknown-step", args: []string{"hook", "step", "promote-now", "--secret", secretName}, code: exitcode.Usage},
		{name: "hook-bad-request", args: []string{"hook", "step", "add", "--secret", secretName, "--request", "q4 please"}, code: exitcode.Usage},
		{name: "hook-no-secret", args: []string{"hook", "step", "add"}, code: exitcode.Usage},
		// the guard's hook Job and the post-renderer
		{name: "hook-guard-allows", args: []string{"hook", "guard", "--release", "app", "--secret", secretName, "--expect", describe(2)}, objects: []runtime.Object{keyring(2, 0, nil)}},
		{name: "hook-guard-refuses-a-dropped-version", args: []string{"hook", "guard", "--release", "app", "--secret", secretName, "--expect", describe(1)}, objects: []runtime.Object{keyring(2, 0, nil)}, code: exitcode.Refused},
		{name: "hook-guard-rollback-absent", args: []string{"hook", "guard", "--where", "pre-rollback", "--release", "app", "--secret", secretName, "--expect", "absent"}, objects: []runtime.Object{keyring(2, 0, nil)}, code: exitcode.Refused},
		{name: "hook-guard-bad-where", args: []string{"hook", "guard", "--where", "post-upgrade", "--secret", secretName, "--expect", "absent"}, code: exitcode.Usage},
		{name: "guard-passes-an-intact-render", args: []string{"guard", "--release", "app", "--namespace", actiontest.Namespace}, stdin: manifest(2), objects: []runtime.Object{keyring(2, 0, nil)}},
		{name: "guard-refuses-a-dropped-version", args: []string{"guard", "--release", "app", "--namespace", actiontest.Namespace}, stdin: manifest(1), objects: []runtime.Object{keyring(2, 0, nil)}, code: exitcode.Refused},
		{name: "guard-first-install", args: []string{"guard", "--release", "app", "--namespace", actiontest.Namespace}, stdin: manifest(1)},
		// Helm passes a post-renderer no namespace: none given and none rendered is refused, never the kubeconfig's.
		{name: "guard-no-namespace", args: []string{"guard", "--release", "app"}, stdin: manifest(1), objects: []runtime.Object{keyring(2, 0, nil)}, code: exitcode.Refused},
		{name: "guard-namespace-from-the-render", args: []string{"guard", "--release", "app"}, stdin: strings.ReplaceAll(manifest(1), "\nmetadata:\n", "\nmetadata:\n  namespace: "+actiontest.Namespace+"\n"), objects: []runtime.Object{keyring(2, 0, nil)}, code: exitcode.Refused},
		// Not found passes only when no deployed revision rendered the keyring (a deleted Secret, a wrong namespace).
		{name: "guard-keyring-deleted", args: []string{"guard", "--release", "app", "--namespace", actiontest.Namespace}, stdin: manifest(1), objects: []runtime.Object{actiontest.ReleaseRendering("app", 2, "deployed", manifest(2))}, code: exitcode.Refused},
		// Issue 15.1: a render that renames the keyring (--set rotate-key.secret.name=...) moves every consumer to fresh keys.
		{name: "guard-keyring-renamed", args: []string{"guard", "--release", "app", "--namespace", actiontest.Namespace}, stdin: strings.ReplaceAll(manifest(1), secretName, "app-keyring-new"), objects: []runtime.Object{keyring(2, 0, nil), actiontest.ReleaseRendering("app", 2, "deployed", manifest(2))}, code: exitcode.Refused},
		{name: "guard-keyring-new-to-the-release", args: []string{"guard", "--release", "app", "--namespace", actiontest.Namespace}, stdin: manifest(1), objects: []runtime.Object{actiontest.ReleaseRendering("app", 2, "deployed", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n")}},
		// upgrade and rollback through the operator's Helm
		{name: "upgrade-helm4", args: []string{"upgrade", "app", "./chart", "--reuse-values", "--set", "replicas=3"}, objects: []runtime.Object{keyring(1, 0, nil)}, helm: helm4(0)},
		{name: "upgrade-helm3", args: []string{"upgrade", "app", "./chart", "-n", "other", "--reuse-values"}, helm: helm3},
		{name: "upgrade-helm4-without-guard-plugin", args: []string{"upgrade", "app", "./chart"}, helm: func(_ string, args []string) (string, int) {
			if args[0] == "version" {
				return "v4.3.1", 0
			}
			return "NAME VERSION\nrotate-key 0.1.0\n", 0
		}, code: exitcode.Usage},
		{name: "upgrade-keeps-helms-exit-code", args: []string{"upgrade", "app", "./chart"}, helm: helm4(3), code: exitcode.Code(3)},
		{name: "upgrade-reset-values-drops-the-secret", args: []string{"upgrade", "app", "./chart", "--reset-values"}, objects: []runtime.Object{keyring(1, 0, nil)}, helm: func(bin string, args []string) (string, int) {
			if args[len(args)-1] == "json" {
				return `{"manifest":"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n"}`, 0
			}
			return helm4(0)(bin, args)
		}, code: exitcode.Refused},
		{name: "upgrade-post-renderer-refused", args: []string{"upgrade", "app", "./chart", "--post-renderer", "x"}, code: exitcode.Usage},
		{name: "rollback-previous", args: []string{"rollback", "app", "--chart", "./chart-v1"}, objects: []runtime.Object{keyring(2, 0, waiting(later)), release(1, map[string]any{"replicas": 1}), release(2, nil)}, helm: helm4(0)},
		{name: "rollback-clears-pending-rollback", args: []string{"rollback", "app", "1", "--chart", "./chart-v1"}, objects: []runtime.Object{keyring(1, 0, nil), release(1, nil), release(2, nil), pendingRollback}, helm: helm4(0)},
		{name: "rollback-bad-revision", args: []string{"rollback", "app", "0"}, code: exitcode.Usage},
		{name: "rollback-to-current", args: []string{"rollback", "app", "2"}, objects: []runtime.Object{release(1, nil), release(2, nil)}, code: exitcode.Usage},
		// more of every command
		{name: "status-waiting-yaml", args: []string{"status", "app", "-o", "yaml"}, objects: []runtime.Object{keyring(2, 0, waiting(later)), release(2, nil)}},
		{name: "status-fleet-json", args: []string{"status", "-A", "-o", "json"}, objects: []runtime.Object{keyring(2, 0, waiting(later)), other}},
		{name: "status-other-secret", args: []string{"status", "app", "--secret", "billing-keys", "-n", "billing"}, objects: []runtime.Object{other}},
		{name: "plan-forced", args: []string{"plan", "app", "--force", "--reason", "audit"}, objects: []runtime.Object{keyring(2, 0, idleDue(now.Add(24*time.Hour)))}},
		{name: "plan-not-due", args: []string{"plan", "app"}, objects: []runtime.Object{keyring(2, 0, idleDue(now.Add(24*time.Hour)))}},
		{name: "plan-reverted", args: []string{"plan", "app"}, objects: []runtime.Object{keyring(2, 1, &rotation.State{Phase: rotation.Reverted, RotationID: "r2", From: 1, To: 2, TransitionAt: now})}},
		{name: "plan-bad-output", args: []string{"plan", "app", "-o", "yaml"}, code: exitcode.Usage},
		{name: "retire-nothing-to-do", args: []string{"retire", "app", "--yes"}, objects: []runtime.Object{keyring(1, 0, nil)}},
		{name: "retire-waits", args: []string{"retire", "app", "--yes"}, objects: []runtime.Object{keyring(2, 0, waiting(later))}, code: exitcode.Waiting},
		{name: "run-take-over", args: []string{"run", "app", "--yes", "--take-over"}, objects: []runtime.Object{keyring(2, 1, stuck, rotation.AnnoLease, lease.Format())}, code: exitcode.Waiting},
		{name: "run-runbook-lock-not-taken-over", args: []string{"run", "app", "--yes", "--take-over"}, objects: []runtime.Object{keyring(2, 1, stuck, rotation.AnnoLease,
			rotation.Lease{Holder: "runbook op@host shell 9 1234", RotationID: "r2", Renewed: now.Add(-time.Minute), Duration: 3 * time.Minute}.Format())}, code: exitcode.LockHeld},
		{name: "run-confirmed", args: []string{"run", "app"}, objects: []runtime.Object{keyring(2, 0, waiting(passed))}, terminal: true, stdin: "yes\n"},
		// Round 19: a second leak during an emergency said "has run … nothing to do" before finishing both.
		{name: "run-emergency-second-leak", args: []string{"run", "app", "--emergency", "--reason", "INC-8: v3 leaked too", "--yes"}, objects: []runtime.Object{keyring(3, 2, &rotation.State{Phase: rotation.KeyAdded, RotationID: "emergency-x", From: 2, To: 3, Emergency: "INC-7", StartedAt: now.Add(-time.Minute), TransitionAt: now.Add(-time.Minute)})}},
		{name: "run-emergency-same-reason-twice", args: []string{"run", "app", "--emergency", "--reason", "INC-7", "--yes"}, objects: []runtime.Object{keyring(3, 0, &rotation.State{Phase: rotation.Idle, RotationID: "emergency-x", From: 2, To: 3, Emergency: "INC-7", PromotedAt: now.Add(-time.Hour), RetireAfter: now.Add(-time.Hour), RetiredAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Hour), NextRotationDue: now.Add(24 * time.Hour)})}},
		{name: "run-interval-and-consumer", args: []string{"run", "app", "--yes", "--interval", "30d", "--consumer", "Deployment/app-requests-proxy"}, objects: []runtime.Object{keyring(1, 0, nil), consumer("app-requests-proxy")}, code: exitcode.Waiting},
		{name: "run-bad-consumer", args: []string{"run", "app", "--consumer", "Pod/x"}, code: exitcode.Usage},
		{name: "run-bad-interval", args: []string{"run", "app", "--interval", "soon"}, code: exitcode.Usage},
		{name: "run-force-without-reason", args: []string{"run", "app", "--force"}, code: exitcode.Usage},
		{name: "abort-reverted-resumes", args: []string{"abort", "app", "--yes"}, objects: []runtime.Object{keyring(2, 1, &rotation.State{Phase: rotation.Reverted, RotationID: "r2", From: 1, To: 2, PromotedAt: now.Add(-time.Hour), TransitionAt: now})}, code: exitcode.Code(0)},
		{name: "abort-twice", args: []string{"abort", "app", "--yes"}, objects: []runtime.Object{keyring(2, 1, &rotation.State{Phase: rotation.Waiting, RotationID: "r2", From: 2, To: 1, PromotedAt: now, RetireAfter: later.Add(time.Hour), TTLUsed: time.Hour, TransitionAt: now})}},
		{name: "abort-edited-state", args: []string{"abort", "app", "--yes"}, objects: []runtime.Object{keyring(2, 2, rolledOut)}, code: exitcode.Refused},
		{name: "hook-retire-after-ttl", args: []string{"hook", "step", "retire", "--secret", secretName}, objects: []runtime.Object{keyring(2, 0, waiting(passed))}, env: map[string]string{"POD_NAME": "app-rotate-key-5-retire-q2w"}},
		{name: "hook-guard-not-found", args: []string{"hook", "guard", "--release", "app", "--secret", secretName, "--expect", describe(1)}},
		{name: "hook-guard-bad-expect", args: []string{"hook", "guard", "--secret", secretName, "--expect", "keep=true;key.v1=short"}, code: exitcode.Usage},
		{name: "guard-offline", args: []string{"guard", "--release", "app", "--offline"}, stdin: manifest(2)},
		{name: "guard-empty-render", args: []string{"guard", "--release", "app", "--namespace", actiontest.Namespace}, code: exitcode.Refused},
		{name: "upgrade-reset-values-keeps-the-secret", args: []string{"upgrade", "app", "./chart", "--reset-values"}, objects: []runtime.Object{keyring(2, 0, nil)}, helm: func(bin string, args []string) (string, int) {
			if args[len(args)-1] == "json" {
				return fmt.Sprintf("{\"manifest\":%q}", manifest(2)), 0
			}
			return helm4(0)(bin, args)
		}},
		{name: "rollback-helm-fails", args: []string{"rollback", "app", "--chart", "./chart-v1"}, objects: []runtime.Object{keyring(1, 0, nil), release(1, nil), release(2, nil)}, helm: helm4(2), code: exitcode.Code(2)},
		// found by the sixth cold read of the runbook
		{name: "abort-emergency-after-promotion", args: []string{"abort", "app", "--yes"}, objects: []runtime.Object{keyring(3, 0, &rotation.State{Phase: rotation.Promoted, RotationID: "emergency-20261130T110000Z-a1b2c3", From: 2, To: 3, Emergency: "INC-3", PromotedAt: now, TransitionAt: now})}, code: exitcode.Refused},
		{name: "abort-emergency-before-promotion", args: []string{"abort", "app", "--yes"}, objects: []runtime.Object{keyring(3, 2, &rotation.State{Phase: rotation.KeyAdded, RotationID: "emergency-20261130T110000Z-a1b2c3", From: 2, To: 3, Emergency: "INC-3", TransitionAt: now})}, code: exitcode.Refused},
		{name: "retire-an-outgoing-key-removed-by-hand", args: []string{"retire", "app", "--yes"}, objects: []runtime.Object{without(keyring(2, 0, waiting(passed)), "key.v1")}},
		{name: "retire-an-aborted-rotation", args: []string{"retire", "app", "--yes"}, objects: []runtime.Object{keyring(2, 1, &rotation.State{Phase: rotation.Waiting, RotationID: "r2", From: 2, To: 1, PromotedAt: now.Add(-2 * time.Hour), RetireAfter: passed, TTLUsed: time.Hour, TransitionAt: now.Add(-2 * time.Hour)})}},
		{name: "run-local-timeout-resumes-locally", args: []string{"run", "app", "--yes", "--local", "--timeout", "1ms", "--consumer", "Deployment/app-requests-proxy"}, objects: []runtime.Object{keyring(2, 1, stuck), stalled("app-requests-proxy"), withHooks()}, code: exitcode.Code(1)},
		{name: "run-keyring-of-another-release", args: []string{"run", "p2", "--secret", secretName, "--yes"}, objects: []runtime.Object{keyring(1, 0, nil, "meta.helm.sh/release-name", "app")}, code: exitcode.Usage},
		{name: "status-keyring-of-another-release", args: []string{"status", "p2", "--secret", secretName}, objects: []runtime.Object{keyring(1, 0, nil, "meta.helm.sh/release-name", "app")}},
		{name: "run-hooks-release-pending-upgrade", args: []string{"run", "app", "--yes", "--chart", "./chart"}, objects: []runtime.Object{keyring(1, 0, nil), pendingUpgrade()}, helm: helm4(1), code: exitcode.Code(1)},
		// Issue 15.8: the hook path's own helm died (its run token, past its deadline): the rerun forgets the revision.
		{name: "run-hooks-dead-helm-revision-cleared", args: []string{"run", "app", "--yes", "--chart", "./chart"}, objects: append([]runtime.Object{keyring(1, 0, nil)}, deadHookUpgrade()...), helm: helm4(0),
			upgraded: keyring(2, 0, withID(waiting(later), "20261130T120000Z-a1b2c3")), code: exitcode.Waiting},
		// Issue 15.8: helm upgrade --atomic whose hook Job outlived its timeout, then its rollback refused by the guard.
		{name: "run-hooks-refused-rollback-cleared", args: []string{"run", "app", "--yes", "--chart", "./chart"}, objects: append([]runtime.Object{keyring(1, 0, nil)}, refusedAtomicRollback()...), helm: helm4(0),
			upgraded: keyring(2, 0, withID(waiting(later), "20261130T120000Z-a1b2c3")), code: exitcode.Waiting},
		// the command line itself
		{name: "usage-extra-argument", args: []string{"app", "extra"}, code: exitcode.Usage},
		{name: "usage-unknown-flag", args: []string{"status", "app", "--no-such-flag"}, code: exitcode.Usage},
	}
}

var tempPath = regexp.MustCompile(`/tmp/rotate-key-[a-z]+-[0-9]+`)

func TestGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range cases() {
		if seen[tc.name] {
			t.Fatalf("two cases named %s", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			f := actiontest.New(tc.objects...)
			f.Helm.Answer, f.Terminal = tc.helm, tc.terminal
			if tc.upgraded != nil {
				f.Helm.Answer = func(bin string, args []string) (string, int) {
					if args[0] == "upgrade" {
						if _, err := f.Client.CoreV1().Secrets(actiontest.Namespace).Update(context.Background(), tc.upgraded, metav1.UpdateOptions{}); err != nil {
							t.Fatal(err)
						}
					}
					return tc.helm(bin, args)
				}
			}
			c := f.Config(tc.stdin, actiontest.Env(tc.env))
			root := NewRoot(c)
			root.SetArgs(tc.args)
			code := Report(root.ExecuteContext(context.Background()), &f.ErrOut)
			got := render(t, tc, f, code)
			// The post-renderer streams keys back to Helm (the fixtures' own, and manifest()'s); a golden file holds none.
			for _, v := range keyMaterial(append(tc.objects, actiontest.Keyring(secretName, 3, 0, nil))) {
				got = strings.ReplaceAll(got, v, "<key>")
			}
			path := filepath.Join("testdata", "golden", tc.name+".txt")
			if *updateReference {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (create it with -update)", err)
			}
			if string(want) != got {
				t.Errorf("output differs from %s (rerun with -update and review the diff):\n%s", path, got)
			}
			if code != int(tc.code) {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			objects := tc.objects
			if s, err := f.Client.CoreV1().Secrets(actiontest.Namespace).Get(context.Background(), secretName, metav1.GetOptions{}); err == nil {
				objects = append(objects, s) // the keys the run added, too
			}
			for _, v := range keyMaterial(objects) {
				if strings.Contains(f.Out.String(), v) && !strings.HasPrefix(tc.name, "guard-") || strings.Contains(f.ErrOut.String(), v) {
					t.Errorf("key material in the output")
				}
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join("testdata", "golden"))
	for _, e := range entries {
		if !seen[strings.TrimSuffix(e.Name(), ".txt")] {
			t.Errorf("testdata/golden/%s belongs to no case: remove it", e.Name())
		}
	}
}

// render is what a golden file holds: the command, its streams, its exit code, the Helm command lines it ran, and
// the keyring Secret it left (versions and annotations; never key bytes).
func render(t *testing.T, tc cmdCase, f *actiontest.Fixture, code int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ rotate-key %s\n--- exit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(tc.args, " "), code, f.Out.String(), f.ErrOut.String())
	if len(f.Helm.Calls) > 0 {
		b.WriteString("--- helm\n")
		for _, call := range f.Helm.Calls {
			b.WriteString(tempPath.ReplaceAllString(call, "<tmp>") + "\n")
		}
	}
	if s, err := f.Client.CoreV1().Secrets(actiontest.Namespace).Get(context.Background(), secretName, metav1.GetOptions{}); err == nil {
		fmt.Fprintf(&b, "--- keyring after (data keys; annotations)\n%s\n", strings.Join(sortedKeys(s.Data), " "))
		for _, k := range sortedKeys(s.Annotations) {
			fmt.Fprintf(&b, "%s=%s\n", k, s.Annotations[k])
		}
	}
	events, _ := f.Client.CoreV1().Events(actiontest.Namespace).List(context.Background(), metav1.ListOptions{})
	if len(events.Items) > 0 {
		b.WriteString("--- events\n")
		for _, e := range events.Items {
			fmt.Fprintf(&b, "%s %s: %s\n", e.Type, e.Reason, e.Message)
		}
	}
	return tempPath.ReplaceAllString(b.String(), "<tmp>")
}

// keyMaterial is every key in the objects, raw and base64, for the check that no output holds one.
func keyMaterial(objects []runtime.Object) []string {
	var out []string
	for _, o := range objects {
		if s, ok := o.(*corev1.Secret); ok && s.Labels["owner"] != "helm" {
			for k, v := range s.Data {
				if k != "active" {
					out = append(out, string(v), base64.StdEncoding.EncodeToString(v))
				}
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
