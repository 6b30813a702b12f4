package action_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/action/actiontest"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// A helm upgrade raises the token TTL (release value tokenTtlSeconds, 1 h to 2 h) while a local run restarts the
// consumers after the promotion: pods it restarted sign with 2 h, so the retirement it schedules counts 2 h, read
// from the release's values at that moment — not the 1 h the run started with.
func TestTTLRaisedDuringTheRunCounts(t *testing.T) {
	now := actiontest.Now
	st := &rotation.State{Phase: rotation.Promoted, RotationID: "r1", From: 1, To: 2, StartedAt: now.Add(-time.Hour), PromotedAt: now.Add(-time.Minute), TransitionAt: now.Add(-time.Minute)}
	anno := st.ApplyAnnotations(map[string]string{"helm.sh/resource-policy": "keep", rotation.AnnoConsumers: "Deployment/signer", rotation.AnnoClockSkew: "60"})
	signer := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "signer", Namespace: actiontest.Namespace, Generation: 1},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "signer"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "signer",
				EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-keys"}}}}}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1}}
	f, c := fixture(actiontest.Keyring("app-keys", 2, 0, anno), signer, actiontest.Release("app", 2, "deployed", map[string]any{"tokenTtlSeconds": 3600}))
	f.Client.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		raised := actiontest.Release("app", 3, "deployed", map[string]any{"tokenTtlSeconds": 7200})
		if err := f.Client.Tracker().Add(raised); err != nil {
			t.Error(err)
		}
		return false, nil, nil
	})
	a := action.Rotate{Target: action.Target{Release: "app", Secret: "app-keys", Namespace: actiontest.Namespace}, SecretGiven: true, Mode: action.ModeRun, Yes: true, Local: true, Timeout: time.Minute}
	res, err := a.Run(context.Background(), c)
	if err != nil || res.Decision.Step != rotation.StepWaitTTL {
		t.Fatalf("got %v %+v\n%s", err, res.Decision, f.Out.String())
	}
	got, err := rotation.ParseState(liveSecret(t, f, "app-keys").Annotations)
	if err != nil {
		t.Fatal(err)
	}
	if got.TTLUsed != 2*time.Hour || got.RetireAfter.Before(now.Add(2*time.Hour+time.Minute)) || got.TTLInForce != 2*time.Hour {
		t.Fatalf("retirement scheduled with TTL %s (in force %s), retire-after %s; want 2h from the raised values\n%s", got.TTLUsed, got.TTLInForce, got.RetireAfter, f.Out.String())
	}
}
