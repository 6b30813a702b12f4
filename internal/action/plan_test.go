package action_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/action/actiontest"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// A consumer that names a version's data key explicitly pins it: plan says so, and the version is never retired.
func TestPlanNamesPinnedVersions(t *testing.T) {
	pinned := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: actiontest.Namespace},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c",
			Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: "key.v1"}}}}}}}}}}
	_, c := fixture(actiontest.Keyring(secret, 1, 0, withTTL(nil)), pinned)
	p := action.Planner{Rotate: action.Rotate{Target: target, Mode: action.ModeRun}}
	plan, err := p.Run(context.Background(), c)
	if err != nil || len(plan.Consumers) != 1 || !strings.Contains(plan.Consumers[0], "names data keys key.v1 explicitly") {
		t.Fatalf("%v %+v", err, plan.Consumers)
	}
	if plan.Path != "local" || len(plan.Then) != 5 || plan.Then[0] != "add v2 (active stays v1)" || !strings.HasPrefix(plan.Then[1], "restart 1 consumers") {
		t.Fatalf("plan: %+v", plan)
	}
}

// The plan's steps, for every phase, are the table's: what runs from here until the rotation stops.
func TestPlanFollowsTheTable(t *testing.T) {
	for _, p := range rotation.Phases() {
		steps := rotation.PlanSteps(p, rotation.PlanFacts{From: 1, To: 2, Next: 2, Consumers: 3, TTL: time.Hour, ClockSkew: 5 * time.Minute, RetireAfter: actiontest.Now, Phase: p})
		if len(steps) == 0 {
			t.Errorf("phase %s: no plan", p)
		}
		last := steps[len(steps)-1]
		if !strings.HasPrefix(last, "stop:") && last != "record the next rotation's due date" {
			t.Errorf("phase %s: the plan ends with %q, not where the rotation stops", p, last)
		}
	}
}

// What every command that acts on a keyring refuses before it does anything: no Secret, a broken keyring, a
// state it cannot read, a configuration it cannot use — each with its exit code.
func TestRequireRefusesWhatItCannotTrust(t *testing.T) {
	bad := actiontest.Keyring(secret, 2, 0, withTTL(nil))
	bad.Data["active"] = []byte("v9")
	ttl := actiontest.Keyring(secret, 1, 0, map[string]string{rotation.AnnoTTLSeconds: "soon"})
	state := actiontest.Keyring(secret, 1, 0, map[string]string{rotation.AnnoSchema: "99"})
	for name, tt := range map[string]struct {
		secret *corev1.Secret
		code   exitcode.Code
		want   string
	}{
		"no Secret":      {nil, exitcode.Usage, "not found"},
		"broken keyring": {bad, exitcode.Refused, "active"},
		"newer schema":   {state, exitcode.Refused, "newer rotate-key"},
		"unreadable TTL": {ttl, exitcode.Usage, "ttl-seconds"},
	} {
		f := actiontest.New()
		if tt.secret != nil {
			f = actiontest.New(tt.secret)
		}
		c := f.Config("", actiontest.Env(nil))
		chk := action.Check{Target: target}
		_, err := chk.Run(context.Background(), c)
		if exitcode.Of(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: exit %d %v; want %d naming %q", name, exitcode.Of(err), err, tt.code, tt.want)
		}
	}
}

// A release record that cannot be read does not stop status: it reports why, and the keyring.
func TestStatusWithoutTheReleaseRecord(t *testing.T) {
	garbage := actiontest.Release("app", 1, "deployed", nil)
	garbage.Data["release"] = []byte("%%%")
	_, c := fixture(actiontest.Keyring(secret, 1, 0, withTTL(nil)), garbage)
	st := action.Status{Target: target}
	r, err := st.Run(context.Background(), c)
	if err != nil || r.Release != nil || !strings.Contains(r.ReleaseError, "release record") || r.Active != "v1" {
		t.Fatalf("%v %+v", err, r)
	}
}

// A connection that cannot be made is the command's error, before anything is read.
func TestConnectFailure(t *testing.T) {
	_, c := fixture()
	c.Connect = func(string, string) (*kube.Keyring, error) { return nil, errors.New("no kubeconfig") }
	for name, run := range map[string]func() error{
		"status": func() error { _, err := (&action.Status{Target: target}).Run(context.Background(), c); return err },
		"check":  func() error { _, err := (&action.Check{Target: target}).Run(context.Background(), c); return err },
		"remind": func() error { _, _, err := (&action.Remind{Target: target}).Run(context.Background(), c); return err },
		"run": func() error {
			_, err := (&action.Rotate{Target: target, Mode: action.ModeRun}).Run(context.Background(), c)
			return err
		},
		"hook": func() error {
			_, err := (&action.Hook{Name: "add", Secret: secret}).Run(context.Background(), c)
			return err
		},
		"guard": func() error {
			return (&action.Guard{Release: "app", Namespace: actiontest.Namespace}).Check(context.Background(), c, []byte("kind: ConfigMap\n"))
		},
	} {
		if err := run(); err == nil || !strings.Contains(err.Error(), "no kubeconfig") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Check says what is overdue by the one rule, at the API server's time, and names the command to run.
func TestCheckNamesTheCommand(t *testing.T) {
	st := &rotation.State{Phase: rotation.Idle, RotationID: "r0", From: 1, To: 2, NextRotationDue: actiontest.Now.Add(-time.Hour)}
	_, c := fixture(actiontest.Keyring("keys", 2, 0, withTTL(st)))
	chk := action.Check{Target: action.Target{Release: "app", Secret: "keys", Namespace: actiontest.Namespace}}
	_, err := chk.Run(context.Background(), c)
	if exitcode.Of(err) != exitcode.Overdue || !strings.Contains(err.Error(), "run: helm -n team rotate-key app --secret keys") || !strings.Contains(err.Error(), rotation.Overdue(*st, actiontest.Now)) {
		t.Fatalf("%v", err)
	}
}
