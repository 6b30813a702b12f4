package action_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/action/actiontest"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

const secret = "app-requests-proxy-admin"

var target = action.Target{Release: "app", Secret: secret, Namespace: actiontest.Namespace}

func withTTL(st *rotation.State) map[string]string {
	anno := map[string]string{rotation.AnnoTTLSeconds: "3600", "helm.sh/resource-policy": "keep"}
	if st != nil {
		anno = st.ApplyAnnotations(anno)
	}
	return anno
}

func waitingUntil(t time.Time) *rotation.State {
	return &rotation.State{Phase: rotation.Waiting, RotationID: "r1", From: 1, To: 2, PromotedAt: t.Add(-61 * time.Minute), RetireAfter: t, TTLUsed: time.Hour, TransitionAt: t.Add(-61 * time.Minute)}
}

func hooked() *corev1.Secret {
	var jobs []string
	for i, step := range rotation.ChartHooks() {
		jobs = append(jobs, actiontest.HookJob(step, 10*(i+1), "app-keys"))
	}
	return actiontest.Release("app", 2, "deployed", nil, jobs...)
}

func fixture(objects ...runtime.Object) (*actiontest.Fixture, *action.Config) {
	f := actiontest.New(objects...)
	return f, f.Config("", actiontest.Env(nil))
}

func liveSecret(t *testing.T, f *actiontest.Fixture, name string) *corev1.Secret {
	t.Helper()
	s, err := f.Client.CoreV1().Secrets(actiontest.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The path a run takes: the hook Jobs for a release whose last render has them, unless --local, an emergency or an
// abort; and the hook Jobs' own Secret wins over the default name, never over --secret.
func TestRotateChoosesItsPath(t *testing.T) {
	keys := actiontest.Keyring("app-keys", 2, 0, withTTL(waitingUntil(actiontest.Now.Add(-time.Minute))))
	tests := []struct {
		name       string
		a          action.Rotate
		wantHelm   bool
		wantSecret string
	}{
		{"hooks, the Jobs' Secret", action.Rotate{Target: target, Mode: action.ModeRun, Yes: true, Timeout: time.Minute, Chart: "./c"}, true, "app-keys"},
		{"--local", action.Rotate{Target: target, Mode: action.ModeRun, Yes: true, Local: true, Timeout: time.Minute}, false, secret},
		{"abort is local", action.Rotate{Target: target, Mode: action.ModeAbort, Yes: true, Timeout: time.Minute}, false, secret},
		{"--secret wins", action.Rotate{Target: action.Target{Release: "app", Secret: "app-keys", Namespace: actiontest.Namespace}, SecretGiven: true, Mode: action.ModeRetire, Yes: true, Timeout: time.Minute, Chart: "./c"}, true, "app-keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := fixture(keys.DeepCopy(), actiontest.Keyring(secret, 1, 0, withTTL(nil)), hooked())
			f.Helm.Answer = func(string, []string) (string, int) { return "", 0 }
			a := tt.a
			_, err := a.Run(context.Background(), c)
			if err != nil && exitcode.Of(err) == exitcode.Usage {
				t.Fatal(err)
			}
			if got := len(f.Helm.Calls) > 0; got != tt.wantHelm {
				t.Fatalf("helm called: %v, want %v (%v)", got, tt.wantHelm, f.Helm.Calls)
			}
			if a.Secret != tt.wantSecret {
				t.Fatalf("acted on %s, want %s", a.Secret, tt.wantSecret)
			}
		})
	}
}

// While the TTL runs the hook path upgrades nothing: no helm call, and the run says when to come back.
func TestHookPathWaitsWithoutAnUpgrade(t *testing.T) {
	later := actiontest.Now.Add(20 * time.Minute)
	f, c := fixture(actiontest.Keyring("app-keys", 2, 0, withTTL(waitingUntil(later))), hooked())
	a := action.Rotate{Target: target, Mode: action.ModeRun, Yes: true, Timeout: time.Minute}
	res, err := a.Run(context.Background(), c)
	if err != nil || res.Decision.Step != rotation.StepWaitTTL || res.Waiting != 20*time.Minute || len(f.Helm.Calls) != 0 {
		t.Fatalf("got %v %+v, %d helm calls", err, res, len(f.Helm.Calls))
	}
}

// A failed hook upgrade names the failed Jobs' last lines and the command that resumes.
func TestHookPathFailureNamesTheJobs(t *testing.T) {
	failed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app-rotate-key-2-rollout-abc", Namespace: actiontest.Namespace, Labels: map[string]string{"app.kubernetes.io/component": "rotate-key", "job-name": "app-rotate-key-2-rollout"}},
		Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "rollout did not finish in time"}}}}}}
	f, c := fixture(actiontest.Keyring("app-keys", 1, 0, withTTL(nil)), hooked(), failed)
	f.Helm.Answer = func(string, []string) (string, int) { return "", 1 }
	a := action.Rotate{Target: target, Mode: action.ModeRun, Yes: true, Timeout: time.Minute, Chart: "./c"}
	_, err := a.Run(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "helm upgrade of app failed (exit 1)") || !strings.Contains(err.Error(), "rerun: helm -n team rotate-key app --secret app-keys --yes") {
		t.Fatalf("got %v", err)
	}
}

// Ctrl-C during a local run's rollout: the lock is released and the error says how to resume.
func TestInterruptedLocalRunSaysHowToResume(t *testing.T) {
	anno := withTTL(nil)
	anno[rotation.AnnoConsumers] = "Deployment/signer"
	signer := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "signer", Namespace: actiontest.Namespace, Generation: 1},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "signer"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "signer",
				EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-keys"}}}}}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1}} // never updated: the rollout waits
	f, c := fixture(actiontest.Keyring("app-keys", 1, 0, anno), signer)
	ctx, cancel := context.WithCancel(context.Background())
	c.Sleep = func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }
	a := action.Rotate{Target: action.Target{Release: "app", Secret: "app-keys", Namespace: actiontest.Namespace}, SecretGiven: true, Mode: action.ModeRun, Yes: true, Local: true, Timeout: time.Minute}
	_, err := a.Run(ctx, c)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "lock was released") ||
		!strings.Contains(err.Error(), "resume with: helm -n team rotate-key app --secret app-keys --local --yes") {
		t.Fatalf("got %v", err)
	}
	s, _ := f.Client.CoreV1().Secrets(actiontest.Namespace).Get(context.Background(), "app-keys", metav1.GetOptions{})
	if s.Annotations[rotation.AnnoLease] != "" || s.Annotations[rotation.AnnoPhase] != string(rotation.KeyAdded) {
		t.Fatalf("lease %q, phase %q", s.Annotations[rotation.AnnoLease], s.Annotations[rotation.AnnoPhase])
	}
}

// The engine's refusals carry their exit codes; anything else passes through.
func TestClassify(t *testing.T) {
	violation := &keyring.Violation{Secret: "s", Rule: keyring.RuleTransition, Detail: "d", Fix: "f"}
	held := &rotation.LockHeldError{Lease: &rotation.Lease{Holder: "h", Duration: time.Minute}}
	plain := errors.New("network")
	for err, want := range map[error]exitcode.Code{violation: exitcode.Refused, held: exitcode.LockHeld, plain: exitcode.Of(plain)} {
		if got := exitcode.Of(action.Classify(err)); got != want {
			t.Errorf("%v: exit %d, want %d", err, got, want)
		}
	}
}

func TestTargetSecretFlagAndResumeCommand(t *testing.T) {
	a := action.Rotate{Target: target}
	if a.SecretFlag() != "" || a.ResumeCommand() != "helm -n team rotate-key app --yes" {
		t.Fatalf("default Secret: %q %q", a.SecretFlag(), a.ResumeCommand())
	}
	a.Secret = "other"
	if a.ResumeCommand() != "helm -n team rotate-key app --secret other --yes" {
		t.Fatalf("other Secret: %q", a.ResumeCommand())
	}
}

func TestActorDropsThePID(t *testing.T) {
	if got := action.ActorOf("op@laptop pid 42"); !strings.HasPrefix(got, "op@laptop via rotate-key ") {
		t.Fatalf("got %q", got)
	}
}

// A hook Job that finds the lock held waits for it (here: the fake clock never moves, the holder never lets go, and
// the sleeps are counted) and then fails with the lock's exit code, naming the holder.
func TestHookWaitsOutAHeldLockThenFails(t *testing.T) {
	stuck := &rotation.State{Phase: rotation.KeyAdded, RotationID: "r2", From: 1, To: 2, TransitionAt: actiontest.Now}
	lease := rotation.Lease{Holder: "pod other", RotationID: "r2", Renewed: actiontest.Now, Duration: rotation.LeaseDuration}
	anno := withTTL(stuck)
	anno[rotation.AnnoLease] = lease.Format()
	f, c := fixture(actiontest.Keyring(secret, 2, 1, anno))
	clock, sleeps := actiontest.Now, 0
	c.LocalNow = func() time.Time { return clock }
	c.Sleep = func(context.Context, time.Duration) error { sleeps++; clock = clock.Add(5 * time.Second); return nil }
	h := action.Hook{Name: "rollout", Secret: secret, Namespace: actiontest.Namespace, Timeout: time.Minute}
	_, err := h.Run(context.Background(), c)
	if exitcode.Of(err) != exitcode.LockHeld || sleeps != 15 || !strings.Contains(f.Out.String(), "waiting for the lease") {
		t.Fatalf("got %v after %d sleeps\n%s", err, sleeps, f.Out.String())
	}
}

// The cron step starts a due rotation; a requested step starts it once, under the request's id.
func TestHookStartsOnlyWhatIsAsked(t *testing.T) {
	due := &rotation.State{Phase: rotation.Idle, RotationID: "r0", From: 1, To: 2, NextRotationDue: actiontest.Now.Add(-time.Hour)}
	tests := []struct {
		name, hook, request string
		wantPhase           rotation.Phase
		wantID              string
	}{
		{"cron starts a due rotation and runs it to the wait", action.CronHook, "", rotation.Waiting, "20261130T120000Z-a1b2c3"},
		{"add without a request starts nothing", "add", "", rotation.Idle, "r0"},
		{"add with a request starts it", "add", "2026q4", rotation.KeyAdded, "2026q4"},
		{"add with the last request starts nothing", "add", "r0", rotation.Idle, "r0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := fixture(actiontest.Keyring(secret, 2, 0, withTTL(due)))
			h := action.Hook{Name: tt.hook, Secret: secret, Namespace: actiontest.Namespace, Request: tt.request, Timeout: time.Minute}
			if _, err := h.Run(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			st, err := rotation.ParseState(liveSecret(t, f, secret).Annotations)
			if err != nil || st.Phase != tt.wantPhase || st.RotationID != tt.wantID {
				t.Fatalf("got %v %s %s, want %s %s", err, st.Phase, st.RotationID, tt.wantPhase, tt.wantID)
			}
		})
	}
}

// The post-renderer's flags differ by Helm major: Helm 3 runs this binary, Helm 4 the guard plugin, which must be
// installed; the release and the cluster flags reach the guard either way.
func TestGuardPostRendererFlags(t *testing.T) {
	for _, tt := range []struct {
		version, plugins, want string
		code                   exitcode.Code
	}{
		{"v3.22.0", "", "--post-renderer /plugins/rotate-key/bin/rotate-key --post-renderer-args guard --post-renderer-args --release=app --post-renderer-args --namespace=team", 0},
		{"v4.3.1", "rotate-key-guard 0.1.0", "--post-renderer rotate-key-guard --post-renderer-args --release=app --post-renderer-args --namespace=team", 0},
		{"v4.3.1", "rotate-key 0.1.0", "", exitcode.Usage},
		{"v2.17.0", "", "", exitcode.Code(1)},
	} {
		f, c := fixture()
		f.Helm.Answer = func(_ string, args []string) (string, int) {
			if args[0] == "version" {
				return tt.version, 0
			}
			if args[0] == "plugin" {
				return tt.plugins, 0
			}
			return "", 0
		}
		u := action.Upgrade{Release: "app", Chart: "./c", Namespace: actiontest.Namespace}
		err := u.Run(context.Background(), c)
		if exitcode.Of(err) != tt.code && !(tt.code == 1 && err != nil) {
			t.Fatalf("%s: %v", tt.version, err)
		}
		if tt.want != "" && !strings.HasSuffix(f.Helm.Calls[len(f.Helm.Calls)-1], tt.want) {
			t.Fatalf("%s: ran %s", tt.version, f.Helm.Calls[len(f.Helm.Calls)-1])
		}
	}
}

// --reset-values is checked against a server-side dry run: refused when the render lacks the keyring, passed when
// it has it or when there is no live keyring to lose; a failed dry run stops the upgrade.
func TestUpgradeResetValuesCheck(t *testing.T) {
	withSecret := `{"manifest":"apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-requests-proxy-admin\n  annotations:\n    helm.sh/resource-policy: keep\ndata:\n  active: djE=\n"}`
	without := `{"manifest":"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"}`
	for _, tt := range []struct {
		name     string
		live     bool
		render   string
		dryRunOK bool
		code     exitcode.Code
		upgraded bool
	}{
		{"render drops the keyring", true, without, true, exitcode.Refused, false},
		{"render keeps it", true, withSecret, true, 0, true},
		{"no live keyring", false, without, true, 0, true},
		{"dry run fails", true, withSecret, false, exitcode.Code(1), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var objects []runtime.Object
			if tt.live {
				objects = append(objects, actiontest.Keyring(secret, 1, 0, withTTL(nil)))
			}
			f, c := fixture(objects...)
			f.Helm.Answer = func(_ string, args []string) (string, int) {
				switch {
				case args[0] == "version":
					return "v3.22.0", 0
				case args[len(args)-1] == "json" && !tt.dryRunOK:
					return "", 1
				case args[len(args)-1] == "json":
					return tt.render, 0
				}
				return "", 0
			}
			u := action.Upgrade{Release: "app", Chart: "./c", Namespace: actiontest.Namespace, HelmArgs: []string{"--reset-values"}}
			err := u.Run(context.Background(), c)
			if got := exitcode.Of(err); got != tt.code && !(tt.code == 1 && err != nil) {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.code)
			}
			upgraded := false
			for _, call := range f.Helm.Calls {
				upgraded = upgraded || strings.HasPrefix(call, "helm upgrade") && !strings.Contains(call, "--dry-run")
			}
			if upgraded != tt.upgraded {
				t.Fatalf("upgraded %v, want %v: %v", upgraded, tt.upgraded, f.Helm.Calls)
			}
		})
	}
}

// The fleet view sorts by namespace and Secret and reports a keyring it cannot read instead of failing.
func TestFleetSortsAndReportsBrokenKeyrings(t *testing.T) {
	a := actiontest.Keyring("z-keys", 2, 0, map[string]string{rotation.AnnoPhase: "Idle"})
	b := actiontest.Keyring("a-keys", 1, 0, map[string]string{rotation.AnnoPhase: "Nowhere"})
	other := actiontest.Keyring("keys", 1, 0, map[string]string{rotation.AnnoPhase: "Idle"})
	other.Namespace = "alpha"
	_, c := fixture(a, b, other)
	entries, err := action.Fleet{}.Run(context.Background(), c)
	if err != nil || len(entries) != 3 {
		t.Fatalf("%v %+v", err, entries)
	}
	order := entries[0].Namespace + "/" + entries[0].Secret + " " + entries[1].Secret + " " + entries[2].Secret
	if order != "alpha/keys a-keys z-keys" || !strings.Contains(entries[1].Error, "not a known phase") || entries[2].Active != "v2" {
		t.Fatalf("got %s %+v", order, entries)
	}
}

// status -A judges "overdue" by the API server's clock, like every other command, not by this machine's: a laptop
// whose clock is a month behind still sees a keyring overdue since yesterday (server time).
func TestFleetOverdueFollowsTheServersClock(t *testing.T) {
	due := actiontest.Now.Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	k := actiontest.Keyring("keys", 1, 0, map[string]string{rotation.AnnoPhase: "Idle", rotation.AnnoNextRotationDue: due})
	_, c := fixture(k)
	c.LocalNow = func() time.Time { return actiontest.Now.Add(-30 * 24 * time.Hour) }
	entries, err := action.Fleet{}.Run(context.Background(), c)
	if err != nil || len(entries) != 1 {
		t.Fatalf("%v %+v", err, entries)
	}
	if !entries[0].Overdue {
		t.Fatalf("next rotation due %s (a day before the server's now), but not overdue: %+v", due, entries[0])
	}
}

// A fleet listing that fails is the command's error.
func TestFleetListingFails(t *testing.T) {
	_, c := fixture()
	c.FindKeyrings = func(context.Context) (kube.Fleet, error) { return kube.Fleet{}, errors.New("forbidden") }
	if _, err := (action.Fleet{}).Run(context.Background(), c); err == nil {
		t.Fatal("want the listing's error")
	}
}

// The hook guard and the post-renderer fail closed when the live Secret cannot be read, and record a refusal as an
// UpgradeRefused Event on the Secret.
func TestGuardsFailClosedAndRecordRefusals(t *testing.T) {
	f, c := fixture(actiontest.Keyring(secret, 2, 0, withTTL(nil)))
	f.Client.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, secret, errors.New("no"))
	})
	hg := action.HookGuard{Where: guard.UpgradeHook, Release: "app", Secret: secret, Namespace: actiontest.Namespace, Expect: guard.Described{}}
	if _, err := hg.Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "cannot read keyring Secret") {
		t.Fatalf("hook guard: %v", err)
	}
	g := action.Guard{Release: "app", Namespace: actiontest.Namespace}
	if err := g.Check(context.Background(), c, []byte("kind: ConfigMap\n")); exitcode.Of(err) != exitcode.Refused || !strings.Contains(err.Error(), "cannot read keyring Secret") {
		t.Fatalf("post-renderer: %v", err)
	}

	f, c = fixture(actiontest.Keyring(secret, 2, 0, withTTL(nil)))
	hg.Expect = guard.Described{Present: true, Keep: true, Active: "v2", Versions: map[string]string{"key.v2": "0123456789abcdef"}}
	if _, err := hg.Run(context.Background(), c); exitcode.Of(err) != exitcode.Refused {
		t.Fatalf("want a refusal, got %v", err)
	}
	events, _ := f.Client.CoreV1().Events(actiontest.Namespace).List(context.Background(), metav1.ListOptions{})
	if len(events.Items) != 1 || events.Items[0].Reason != "UpgradeRefused" || events.Items[0].ReportingInstance != "hook guard" {
		t.Fatalf("events: %+v", events.Items)
	}
}

// The post-renderer takes the keyring's name from --secret, else from the Secret carrying rotate-key's
// annotations in the render, else the default name.
func TestGuardFindsTheKeyringByName(t *testing.T) {
	render := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: custom-keys\n  annotations:\n    rotate-key.tracebloc.io/ttl-seconds: \"60\"\n    helm.sh/resource-policy: keep\ndata:\n  active: djE=\n"
	_, c := fixture(actiontest.Keyring("custom-keys", 2, 0, withTTL(nil)))
	g := action.Guard{Release: "app", Namespace: actiontest.Namespace}
	err := g.Check(context.Background(), c, []byte(render))
	if exitcode.Of(err) != exitcode.Refused || !strings.Contains(err.Error(), "custom-keys") {
		t.Fatalf("a render dropping custom-keys' versions must be refused naming it: %v", err)
	}
}

// helm4WithGuard answers as Helm 4 with the guard plugin installed, and every other command succeeds.
func helm4WithGuard(_ string, args []string) (string, int) {
	if args[0] == "version" {
		return "v4.3.1", 0
	}
	return "rotate-key-guard", 0
}

// Rollback computes the previous revision, refuses the current or a later one, and clears a pending-rollback left
// by a refused helm rollback before upgrading.
func TestRollbackRevisions(t *testing.T) {
	f, c := fixture(actiontest.Release("app", 1, "superseded", map[string]any{"replicas": 1}), actiontest.Release("app", 2, "deployed", nil))
	f.Helm.Answer = helm4WithGuard
	rb := action.Rollback{Target: target, Chart: "./c"}
	if err := rb.Run(context.Background(), c); err != nil || rb.Revision != 1 {
		t.Fatalf("%v, revision %d", err, rb.Revision)
	}
	last := f.Helm.Calls[len(f.Helm.Calls)-1]
	if !strings.Contains(last, "--description 'rotate-key rollback to revision 1 (keyring kept)'") || !strings.Contains(last, "--reset-values -f ") {
		t.Fatalf("ran %s", last)
	}
	for _, rev := range []int{2, 3} {
		rb := action.Rollback{Target: target, Revision: rev, Chart: "./c"}
		if err := rb.Run(context.Background(), c); exitcode.Of(err) != exitcode.Usage {
			t.Fatalf("revision %d: %v", rev, err)
		}
	}
}

// A pending-rollback whose guard Job failed after the revision was recorded is a rollback the guard refused: Helm
// applied nothing, so its record is deleted (no `helm rollback` to a deployed revision whose own guard may refuse
// a keyring rotated since). A failed guard Job from before the record proves nothing and is not taken for one.
func TestRollbackForgetsARefusedRollback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		jobAge    time.Duration // how long before the pending record the Job was created (negative: after)
		wantHelm  string        // the first helm command that changes something
		forgotten bool
	}{
		{"guard refused it", -time.Second, "upgrade app", true},
		{"an older failed guard Job", time.Hour, "rollback app 2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pending := actiontest.Release("app", 3, "pending-rollback", nil)
			pending.CreationTimestamp = metav1.NewTime(actiontest.Now)
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "app-rotate-key-guard-rollback", Namespace: actiontest.Namespace, CreationTimestamp: metav1.NewTime(actiontest.Now.Add(-tc.jobAge))},
				Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}}}
			f, c := fixture(actiontest.Release("app", 1, "superseded", nil), actiontest.Release("app", 2, "deployed", nil), pending, job)
			f.Helm.Answer = helm4WithGuard
			rb := action.Rollback{Target: target, Revision: 1, Chart: "./c"}
			if err := rb.Run(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			_, err := f.Client.CoreV1().Secrets(actiontest.Namespace).Get(context.Background(), "sh.helm.release.v1.app.v3", metav1.GetOptions{})
			if forgotten := apierrors.IsNotFound(err); forgotten != tc.forgotten {
				t.Fatalf("record of revision 3 deleted: %v, want %v", forgotten, tc.forgotten)
			}
			var first string
			for _, call := range f.Helm.Calls {
				if strings.Contains(call, " upgrade ") || strings.Contains(call, " rollback ") {
					first = call
					break
				}
			}
			if !strings.Contains(first, tc.wantHelm) {
				t.Fatalf("first helm command %q, want %q; calls %v", first, tc.wantHelm, f.Helm.Calls)
			}
		})
	}
}

// The rotation id a rollback passes as the chart's request is recorded as served: the rolled-back values keep it,
// and a later --reuse-values upgrade, once another rotation ran, must not take it for a new request.
func TestRollbackRecordsItsRequest(t *testing.T) {
	f, c := fixture(actiontest.Keyring(secret, 2, 1, withTTL(waitingUntil(actiontest.Now.Add(time.Hour)))), actiontest.Release("app", 1, "superseded", nil), actiontest.Release("app", 2, "deployed", nil))
	f.Helm.Answer = helm4WithGuard
	rb := action.Rollback{Target: target, Revision: 1, Chart: "./c"}
	if err := rb.Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if got := liveSecret(t, f, secret).Annotations[rotation.AnnoRequests]; got != "r1" {
		t.Fatalf("requests-started %q, want the rotation id r1", got)
	}
	if last := f.Helm.Calls[len(f.Helm.Calls)-1]; !strings.Contains(last, "rotate-key.rotation.request=r1") {
		t.Fatalf("ran %s", last)
	}
}

func TestRollbackStuckWithNothingDeployed(t *testing.T) {
	f, c := fixture(actiontest.Release("app", 1, "failed", nil), actiontest.Release("app", 2, "pending-rollback", nil))
	f.Helm.Answer = func(string, []string) (string, int) { return "", 0 }
	rb := action.Rollback{Target: target, Revision: 1, Chart: "./c"}
	if err := rb.Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "has no deployed revision") {
		t.Fatalf("got %v", err)
	}
}

// Status reports a consumer's rollout progress only during a rollout phase, and the lock's holder and age.
func TestStatusDuringARollout(t *testing.T) {
	stuck := &rotation.State{Phase: rotation.KeyAdded, RotationID: "r2", From: 1, To: 2, TransitionAt: actiontest.Now}
	lease := rotation.Lease{Holder: "op@host pid 1", RotationID: "r2", Renewed: actiontest.Now.Add(-7 * time.Second), Duration: time.Minute}
	anno := withTTL(stuck)
	anno[rotation.AnnoLease] = lease.Format()
	anno[rotation.AnnoConsumers] = "Deployment/api"
	_, c := fixture(actiontest.Keyring(secret, 2, 1, anno))
	st := action.Status{Target: target}
	r, err := st.Run(context.Background(), c)
	if err != nil || r.Lock != "op@host pid 1, renewed 7s ago" || r.NextStep != string(rotation.StepRollout) || len(r.Consumers) != 0 || r.Overdue {
		t.Fatalf("%v %+v", err, r)
	}
}
