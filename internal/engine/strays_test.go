package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/internal/engine"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// Issue 15.4: a pod that reads the keyring and belongs to no consumer (a Job's) is restarted by no rollout. One
// started before the add would reject the new key's tokens after the promotion; one started before the promotion
// would sign with the old key after its retirement. The engine refuses both steps, naming the pod, writes nothing,
// and carries on once the pod is gone.
func TestStepsRefusedWhileAPodNoRolloutRestartsReadsTheKeyring(t *testing.T) {
	s := newSim(t, 17)
	s.advance(2 * time.Second)
	ctx := context.Background()
	run := func() (engine.Result, error) {
		e := simEngine(s, "manual-1")
		e.Force = true
		return e.Run(ctx, true)
	}
	job := func(name string, created time.Time) { t.Helper(); readerPod(t, s, name, created, "Job") }
	gone := func(name string) { t.Helper(); removePod(t, s, name) }
	snapshot := func() string { sec := s.mustSecret(); return fmt.Sprint(sec.Annotations, sec.Data) }
	refused := func(step string, phase rotation.Phase, keys string, wroteBefore bool) {
		t.Helper()
		for i := 0; i < 2; i++ { // the first run may carry the rotation up to the step; the second writes nothing
			before := snapshot()
			_, err := run()
			var v *keyring.Violation
			if !errors.As(err, &v) || v.Rule != keyring.RuleReadersKnown || !strings.Contains(err.Error(), "minter-1") {
				t.Fatalf("%s must be refused naming the Job's pod: %v", step, err)
			}
			if lease := s.mustSecret().Annotations[rotation.AnnoLease]; lease != "" {
				t.Fatalf("a refused %s must give the lock back (round 25: it was left to lapse): %s", step, lease)
			}
			if i == 0 && wroteBefore != strings.Contains(err.Error(), "this step wrote nothing") {
				t.Fatalf("the refusal must say whether the run wrote earlier steps (it did: %v): %v", wroteBefore, err)
			}
			st, _ := rotation.ParseState(s.mustSecret().Annotations)
			if st.Phase != phase || keyring.DataKeys(s.secretData()) != keys || i == 1 && snapshot() != before {
				t.Fatalf("a refused %s must write nothing: %s %s", step, st.Phase, keyring.DataKeys(s.secretData()))
			}
		}
	}

	job("minter-1", s.now.Add(-time.Minute)) // reads the keyring from before the rotation
	job("minter-ended", s.now.Add(-time.Minute))
	ended, _ := s.client.CoreV1().Pods(ns).Get(ctx, "minter-ended", metav1.GetOptions{})
	ended.Status.Phase = corev1.PodFailed // Evicted: no process holds a key
	if _, err := s.client.CoreV1().Pods(ns).UpdateStatus(ctx, ended, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	refused("the promotion", rotation.RolledOut, "active,key.v1,key.v2", true)
	gone("minter-1")
	job("minter-2", s.now.Add(time.Second)) // started after the add: it knows v2
	res, err := run()
	if err != nil || res.State.Phase != rotation.Waiting {
		t.Fatalf("with the pod gone the rotation must promote and wait: %v %+v", err, res.State)
	}
	gone("minter-2")
	job("minter-1", res.State.PromotedAt.Add(-time.Second)) // a pod from before the promotion signs with v1
	s.wait(res.State.RetireAfter.Sub(s.now) + time.Second)
	refused("the retirement", rotation.Waiting, "active,key.v1,key.v2", false)
	gone("minter-1")
	if res, err = run(); err != nil || res.State.Phase != rotation.Idle || keyring.DataKeys(s.secretData()) != "active,key.v2" {
		t.Fatalf("with the pod gone v1 must be retired: %v %+v", err, res.State)
	}
	if s.rejected > 0 {
		t.Fatalf("%d unexpired tokens rejected", s.rejected)
	}
}

// The seventh attack on the traffic instrument: a bare signer that read v2 while it was active kept signing with it
// after an abort set active back, ended between the abort's rollout and retire-after, and the retirement rejected its
// tokens. The abort's rollout is now refused while such a pod runs (the revert itself stands), and resumes once it
// is gone. And after an emergency's retirement, a verifier that read the leaked versions before it is refused too.
func TestAbortAndEmergencyRefusedWhileAPodNoRolloutRestartsReadsTheKeyring(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 19)
	s.advance(2 * time.Second)
	if res, err := simEngine(s, "r1").Run(ctx, true); err != nil || res.State.Phase != rotation.Waiting {
		t.Fatalf("to Waiting: %v %+v", err, res.State)
	}
	pod := func(name string) {
		t.Helper()
		readerPod(t, s, name, s.now, "")
		s.advance(2 * time.Second)
	}
	gone := func(name string) { t.Helper(); removePod(t, s, name) }
	pod("signs-with-v2")
	_, err := simEngine(s, "r1").Abort(ctx)
	var v *keyring.Violation
	st, _ := rotation.ParseState(s.mustSecret().Annotations)
	if !errors.As(err, &v) || v.Rule != keyring.RuleReadersKnown || !strings.Contains(err.Error(), "signs-with-v2") || !strings.Contains(err.Error(), "this step wrote nothing") {
		t.Fatalf("the abort's rollout must be refused naming the pod: %v", err)
	}
	if st.Phase != rotation.Reverted || string(s.secretData()["active"]) != "v1" || s.mustSecret().Annotations[rotation.AnnoLease] != "" {
		t.Fatalf("the revert stands, the lock goes back: %+v active %s lease %q", st, s.secretData()["active"], s.mustSecret().Annotations[rotation.AnnoLease])
	}
	gone("signs-with-v2")
	pod("started-after-the-revert") // reads active=v1: no reason to wait
	res, err := simEngine(s, "r1").Abort(ctx)
	if err != nil || res.State.Phase != rotation.Waiting || res.State.From != 2 {
		t.Fatalf("with the pod gone the abort's rollout must go on: %v %+v", err, res.State)
	}
	gone("started-after-the-revert")
	s.wait(res.State.RetireAfter.Sub(s.now) + time.Second)
	if res, err = simEngine(s, "r1").Run(ctx, false); err != nil || res.State.Phase != rotation.Idle {
		t.Fatalf("the aborted v2 must be retired after its TTL: %v %+v", err, res.State)
	}

	if s.rejected > 0 {
		t.Fatalf("%d unexpired tokens rejected", s.rejected)
	}

	// An emergency: a pod from before its add does not know the fresh key.
	s.rejectedKid = map[string]int{}
	e := simEngine(s, "e1")
	e.Emergency = "INC-1: leaked"
	e.Poll = time.Second
	s.advance(2 * time.Second)
	pod("verifies-with-leaked")
	if _, err := e.Run(ctx, false); !errors.As(err, &v) || v.Rule != keyring.RuleReadersKnown {
		t.Fatalf("an emergency must not promote while a pod from before its add runs: %v", err)
	}
	gone("verifies-with-leaked")
	e = simEngine(s, "e1")
	e.Emergency = "INC-1: leaked"
	res, err = e.Run(ctx, false)
	if err != nil || res.State.Phase != rotation.Idle || keyring.DataKeys(s.secretData()) != "active,key.v3" {
		t.Fatalf("the emergency must finish once the pod is gone: %v %+v %s", err, res.State, keyring.DataKeys(s.secretData()))
	}
	if s.rejectedKid["v3"] > 0 {
		t.Fatalf("%d tokens signed with the fresh key rejected", s.rejectedKid["v3"])
	}
}

// After an emergency's retirement a pod that read the keyring before it still trusts the leaked versions: the
// rollout that finishes the emergency waits for it. After a normal retirement nothing needs that (the retired
// version's tokens have expired).
func TestReadersAfterTheRetirementOnlyForAnEmergency(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tr, _ := rotation.Forward(rotation.Retired)
	if tr.Readers == nil {
		t.Fatal("the rollout after the retirement has no readers rule")
	}
	if since, _ := tr.Readers(rotation.State{Phase: rotation.Retired, From: 1, To: 2, RetiredAt: t0}); !since.IsZero() {
		t.Fatalf("after a normal retirement no pod needs restarting: %s", since)
	}
	if since, why := tr.Readers(rotation.State{Phase: rotation.Retired, From: 1, To: 2, RetiredAt: t0, Emergency: "INC-1"}); !since.Equal(t0) || !strings.Contains(why, "leaked") {
		t.Fatalf("after an emergency's retirement every pod from before it: %s %q", since, why)
	}
}

// The eighth attack: the promotion is refused while a consumer reads the keyring only through data keys it names
// and not the new version's (it would reject that version's tokens); the lock goes back, and once its template
// names the new key too the rotation goes on.
func TestPromotionRefusedWhileAConsumerCannotReadTheNewVersion(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 23)
	s.advance(2 * time.Second)
	items := func(keys ...string) {
		t.Helper()
		d, err := s.client.AppsV1().Deployments(ns).Get(ctx, "verifier", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ks []corev1.KeyToPath
		for _, k := range keys {
			ks = append(ks, corev1.KeyToPath{Key: k, Path: k})
		}
		d.Spec.Template.Spec.Containers[0].EnvFrom = nil
		d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret, Items: ks}}}}
		if _, err := s.client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	items("key.v1", "active")
	_, err := simEngine(s, "r1").Run(ctx, true)
	var v *keyring.Violation
	if !errors.As(err, &v) || v.Rule != keyring.RuleReadable || !strings.Contains(err.Error(), "Deployment/verifier") || !strings.Contains(err.Error(), "key.v2") {
		t.Fatalf("the promotion must be refused naming the verifier and key.v2: %v", err)
	}
	st, _ := rotation.ParseState(s.mustSecret().Annotations)
	if st.Phase != rotation.RolledOut || string(s.secretData()["active"]) != "v1" || s.mustSecret().Annotations[rotation.AnnoLease] != "" {
		t.Fatalf("refused before the promotion, lock given back: %s active %s lease %q", st.Phase, s.secretData()["active"], s.mustSecret().Annotations[rotation.AnnoLease])
	}
	items("key.v1", "key.v2", "active")
	if res, err := simEngine(s, "r1").Run(ctx, false); err != nil || res.State.Phase != rotation.Waiting {
		t.Fatalf("once the verifier names key.v2 the rotation must go on: %v %+v", err, res.State)
	}
}

// readerPod creates a running pod that reads the keyring (its active version, by env) and that no rollout restarts:
// owned by a controller of kind owner ("Job") or bare ("").
func readerPod(t *testing.T, s *sim, name string, created time.Time, owner string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: metav1.NewTime(created)},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "m", Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: "active"}}}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if owner != "" {
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: owner, Name: "token-minter", UID: "u", Controller: ptr.To(true)}}
	}
	if _, err := s.client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// removePod deletes pod name, as an operator restarting it would.
func removePod(t *testing.T, s *sim, name string) {
	t.Helper()
	if err := s.client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}
