package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/engine"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// simEngine is one run's engine on the simulation (hook, when set, limits it to that hook Job's transitions).
func simEngine(s *sim, id string, hook ...string) *engine.Engine {
	cluster := &faulty{Keyring: &kube.Keyring{Cluster: &kube.Cluster{Client: s.client, Namespace: ns, Clock: func() time.Time { return s.now }}, SecretName: secret}}
	return &engine.Engine{
		Cluster: cluster, Config: rotation.Config{TTL: simTTL, ClockSkew: rotation.DefaultClockSkew, Interval: 90 * 24 * time.Hour, Consumers: []rotation.ConsumerRef{{Kind: "Deployment", Name: "signer"}, {Kind: "Deployment", Name: "verifier"}}},
		Holder: "sim", Actor: "sim", Rand: cryptoRand{s.rng}, RolloutTimeout: time.Hour, Poll: time.Second,
		NewRotationID: func(time.Time) string { return id },
		LocalNow:      func() time.Time { return s.now },
		Sleep:         func(_ context.Context, d time.Duration) error { s.advance(d); return nil },
		Hook:          strings.Join(hook, ""),
	}
}

// An emergency rotation, started in any phase, ends with the fresh key alone and active, rejects no token signed
// with it, and rejects every token of the exposed versions once they are retired.
func TestEmergencyRotationInEveryPhase(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		phase   rotation.Phase
		prepare func(t *testing.T, s *sim)
		fresh   string // the emergency's new version
	}{
		{rotation.Idle, func(*testing.T, *sim) {}, "v2"},
		{rotation.KeyAdded, func(t *testing.T, s *sim) {
			if _, err := simEngine(s, "r1", "add").Run(ctx, true); err != nil {
				t.Fatal(err)
			}
		}, "v3"},
		{rotation.Waiting, func(t *testing.T, s *sim) {
			if res, err := simEngine(s, "r1").Run(ctx, true); err != nil || res.Decision.Step != rotation.StepWaitTTL {
				t.Fatalf("to Waiting: %v %+v", err, res.Decision)
			}
		}, "v3"},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			s := newSim(t, 42)
			s.advance(3 * time.Second)
			tc.prepare(t, s)
			if st, _ := rotation.ParseState(s.mustSecret().Annotations); st.Phase != tc.phase {
				t.Fatalf("prepared phase %s, want %s", st.Phase, tc.phase)
			}
			before := map[string]int{}
			for kid, n := range s.rejectedKid {
				before[kid] = n
			}
			e := simEngine(s, "leak")
			e.Emergency = "INC-1 key leaked"
			res, err := e.Run(ctx, true)
			if err != nil || res.State.Phase != rotation.Idle || res.State.Emergency != "INC-1 key leaked" {
				t.Fatalf("the emergency must finish in one run, without a TTL wait: %v %+v", err, res.State)
			}
			data := s.secretData()
			if got := keyring.DataKeys(data); got != "active,key."+tc.fresh || string(data["active"]) != tc.fresh {
				t.Fatalf("every exposed version must be gone and %s active: %s active %s", tc.fresh, got, data["active"])
			}
			s.advance(simTTL + 5*time.Second)
			if s.rejectedKid[tc.fresh] > 0 {
				t.Fatalf("%d tokens signed with the fresh key %s rejected", s.rejectedKid[tc.fresh], tc.fresh)
			}
			// Tokens of the exposed versions are rejected (that is the point); before the emergency none was.
			if len(before) > 0 {
				t.Fatalf("tokens rejected before the emergency: %v", before)
			}
			// The same command pasted again starts nothing: a second emergency would reject the fresh key's tokens.
			rv := s.mustSecret().ResourceVersion
			again := simEngine(s, "leak2")
			again.Emergency = "INC-1 key leaked"
			if res, err := again.Run(ctx, true); err != nil || s.mustSecret().ResourceVersion != rv {
				t.Fatalf("the same emergency run again must write nothing: %v %+v", err, res.Decision)
			}
			// A new incident is a new emergency.
			again.Emergency = "INC-2 leaked again"
			if res, err := again.Run(ctx, true); err != nil || res.State.Phase != rotation.Idle || res.State.Emergency != "INC-2 leaked again" {
				t.Fatalf("a new incident must rotate again: %v %+v", err, res.State)
			}
		})
	}
}

// Aborting after the promotion is a rotation back: v(N+1) signed tokens, so it stays until they expire and is
// then retired by the next run; no live token is rejected on the way.
func TestAbortAfterPromotionRetiresTheAbortedVersionAfterTheTTL(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 5)
	s.advance(2 * time.Second)
	if res, err := simEngine(s, "r1").Run(ctx, true); err != nil || res.State.Phase != rotation.Waiting {
		t.Fatalf("to Waiting: %v %+v", err, res.State)
	}
	s.advance(3 * time.Second)
	res, err := simEngine(s, "r1").Abort(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := res.State
	if st.Phase != rotation.Waiting || st.From != 2 || st.To != 1 || string(s.secretData()["active"]) != "v1" || !st.RetireAfter.After(s.now.Add(simTTL)) {
		t.Fatalf("after the abort v1 must be active and v2 wait for its TTL: %+v active %s", st, s.secretData()["active"])
	}
	if res, err = simEngine(s, "r1").Run(ctx, true); err != nil || res.Decision.Step != rotation.StepWaitTTL {
		t.Fatalf("before the TTL the aborted v2 must stay: %v %+v", err, res.Decision)
	}
	s.wait(st.RetireAfter.Sub(s.now) + time.Second)
	if res, err = simEngine(s, "r1").Run(ctx, true); err != nil || res.State.Phase != rotation.Idle {
		t.Fatalf("after the TTL the run must retire v2 and finish: %v %+v", err, res.State)
	}
	if got := keyring.DataKeys(s.secretData()); got != "active,key.v1" {
		t.Fatalf("the aborted v2 must be retired: %s", got)
	}
	s.advance(simTTL + 5*time.Second)
	if s.rejected > 0 {
		t.Fatalf("%d unexpired tokens rejected (%v)", s.rejected, s.rejectedKid)
	}
}

// An abort run again after it finished changes nothing: it must not promote the aborted version again.
func TestAbortTwiceIsAbortOnce(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 9)
	s.advance(2 * time.Second)
	if _, err := simEngine(s, "r1").Run(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := simEngine(s, "r1").Abort(ctx); err != nil {
		t.Fatal(err)
	}
	rv := s.mustSecret().ResourceVersion
	res, err := simEngine(s, "r1").Abort(ctx)
	if err != nil || s.mustSecret().ResourceVersion != rv || string(s.secretData()["active"]) != "v1" {
		t.Fatalf("a second abort must write nothing: %v %+v active %s", err, res.Decision, s.secretData()["active"])
	}
}

// With no TTL configured anywhere, no rotation starts: a guessed TTL could retire a key whose tokens still live.
// An emergency needs no TTL and still runs.
func TestNoConfiguredTTLRefusesARotation(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 3)
	e := simEngine(s, "r1")
	e.Config.TTLDefaulted = true
	rv := s.mustSecret().ResourceVersion
	if _, err := e.Run(ctx, true); err == nil || !strings.Contains(err.Error(), "no token TTL is configured") || s.mustSecret().ResourceVersion != rv {
		t.Fatalf("a rotation without a configured TTL must be refused before any write: %v", err)
	}
	e = simEngine(s, "leak")
	e.Config.TTLDefaulted, e.Emergency = true, "INC-1"
	if res, err := e.Run(ctx, true); err != nil || res.State.Phase != rotation.Idle {
		t.Fatalf("an emergency needs no TTL: %v %+v", err, res.State)
	}
}

// A version an abort removed before its promotion is never given to a new key: other bytes under that number may
// still sit in Helm's release records (which the runbook's REPAIR restores from) or in a pod's memory.
func TestAVersionAnAbortRemovedIsNeverReused(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 11)
	s.advance(2 * time.Second)
	if res, err := simEngine(s, "r1", "add").Run(ctx, true); err != nil || res.State.Phase != rotation.KeyAdded || res.State.To != 2 {
		t.Fatalf("the add hook must add v2: %v %+v", err, res.State)
	}
	if res, err := simEngine(s, "r1").Abort(ctx); err != nil || res.State.Phase != rotation.Idle {
		t.Fatalf("abort before the promotion: %v %+v", err, res.State)
	}
	if got := keyring.DataKeys(s.secretData()); got != "active,key.v1" {
		t.Fatalf("the abort must remove v2: %s", got)
	}
	s.advance(2 * time.Second)
	res, err := simEngine(s, "r2").Run(ctx, true)
	if err != nil || res.State.To != 3 {
		t.Fatalf("the next rotation must add v3, not reuse v2: %v %+v", err, res.State)
	}
	if got := keyring.DataKeys(s.secretData()); got != "active,key.v1,key.v3" {
		t.Fatalf("keyring after the next rotation: %s", got)
	}
}

// Ctrl-C during a rollout (the context cancelled) releases the rotation lock on the way out: the next run, by
// anyone, resumes at once instead of waiting for the lock to lapse. The run's error says it was interrupted.
func TestInterruptedRolloutReleasesTheLock(t *testing.T) {
	s := newSim(t, 7)
	ctx, cancel := context.WithCancel(context.Background())
	e := simEngine(s, "r1")
	e.Sleep = func(ctx context.Context, d time.Duration) error { s.advance(d); cancel(); return ctx.Err() }
	_, err := e.Run(ctx, true)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want the interruption, got %v", err)
	}
	sec := s.mustSecret()
	st, _ := rotation.ParseState(sec.Annotations)
	if lease := sec.Annotations[rotation.AnnoLease]; lease != "" {
		t.Fatalf("the interrupted run left its lock (%s) in phase %s", lease, st.Phase)
	}
	if st.Phase != rotation.KeyAdded {
		t.Fatalf("interrupted in the first rollout: want KeyAdded, got %s", st.Phase)
	}
	other := simEngine(s, "r2")
	other.Holder = "someone else"
	if res, err := other.Run(context.Background(), true); err != nil || res.Decision.Step != rotation.StepWaitTTL {
		t.Fatalf("another run resumes at once: %v %+v", err, res.Decision)
	}
}

// Round 18: a second leak reported while an emergency is in progress (the new key leaked too) finishes the first and
// then starts the second in the same run — it was resumed and finished alone, the newly leaked key left active; and
// the same reason again after an emergency that ended without retiring anything (its new key vanished before the
// promotion, and the runbook's ABORT-BEFORE keeps the emergency on record) starts a new one — it exited 0.
func TestSecondLeakDuringAnEmergency(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 5)
	s.advance(3 * time.Second)
	// The first emergency has added v2 (as its run left it when the second leak was reported).
	sec := s.mustSecret()
	sec.Data["key.v2"] = append([]byte{}, sec.Data["key.v1"]...)
	sec.Data["key.v2"][0] ^= 0x55
	sec.Annotations = rotation.State{Phase: rotation.KeyAdded, RotationID: "emergency-1", From: 1, To: 2, StartedAt: s.now, TransitionAt: s.now, Emergency: "INC-1"}.ApplyAnnotations(sec.Annotations)
	if _, err := s.client.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	second := simEngine(s, "leak2")
	second.Emergency = "INC-2: v2 leaked too"
	res, err := second.Run(ctx, true)
	if err != nil || res.State.Phase != rotation.Idle || res.State.Emergency != "INC-2: v2 leaked too" {
		t.Fatalf("the second emergency must run after the first finished: %v %+v", err, res.State)
	}
	if got := keyring.DataKeys(s.secretData()); got != "active,key.v3" {
		t.Fatalf("both leaked versions must be gone, v3 alone: %s", got)
	}

	// The same reason after an emergency that ended without retiring (as the runbook's ABORT-BEFORE leaves it).
	sec = s.mustSecret()
	st, _ := rotation.ParseState(sec.Annotations)
	aborted := rotation.State{Phase: rotation.Idle, RotationID: "emergency-x", From: 3, To: 4, StartedAt: st.TransitionAt, FinishedAt: s.now, Emergency: "INC-3", RetiredUpTo: st.RetiredUpTo}
	sec.Annotations = aborted.ApplyAnnotations(sec.Annotations)
	if _, err := s.client.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	again := simEngine(s, "leak3")
	again.Emergency = "INC-3"
	if res, err := again.Run(ctx, true); err != nil || res.State.RetiredAt.IsZero() || keyring.DataKeys(s.secretData()) != "active,key.v5" {
		t.Fatalf("the same reason after an emergency that retired nothing must rotate: %v %+v %s", err, res.State, keyring.DataKeys(s.secretData()))
	}
}

// Issue 15.6: lowering the TTL between rotations must not shorten the wait for tokens signed under the old one.
// v2 is promoted under a TTL of 3·simTTL; the TTL is then lowered to simTTL and v2 rotated out: its retire-after
// keeps 3·simTTL (the highest TTL in force while v2 signed).
func TestLoweredTTLKeepsTheHigherOne(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 9)
	s.advance(3 * time.Second)
	long := simEngine(s, "r1")
	long.Config.TTL = 3 * simTTL
	if res, err := long.Run(ctx, true); err != nil || res.Decision.Step != rotation.StepWaitTTL {
		t.Fatalf("first rotation to Waiting: %v %+v", err, res.Decision)
	}
	st, _ := rotation.ParseState(s.mustSecret().Annotations)
	s.advance(st.RetireAfter.Sub(s.now) + time.Second)
	if res, err := long.Run(ctx, false); err != nil || res.State.Phase != rotation.Idle {
		t.Fatalf("first rotation's retirement: %v %+v", err, res.State)
	}
	short := simEngine(s, "r2")
	short.Force = true
	if res, err := short.Run(ctx, true); err != nil || res.Decision.Step != rotation.StepWaitTTL {
		t.Fatalf("second rotation to Waiting: %v %+v", err, res.Decision)
	}
	st, _ = rotation.ParseState(s.mustSecret().Annotations)
	if st.TTLUsed != 3*simTTL || st.RetireAfter.Before(st.PromotedAt.Add(3*simTTL)) {
		t.Fatalf("v2 signed under a TTL of %s: retire-after %s must be at least promoted-at %s + that TTL (TTL used %s)", 3*simTTL, st.RetireAfter, st.PromotedAt, st.TTLUsed)
	}
}

// Issue 15.3: `helm upgrade --force` (Helm 3) or `--force-replace` (Helm 4) replaces the keyring Secret with its
// render and erases the rotation state mid-rotation: Idle, no rotation on record, v1 beside the active v2. The next
// run must not start v2 -> v3 and leave v1 trusted forever: it reads the keyring as a rotation just promoted —
// restart, wait the TTL, retire every other version.
func TestErasedStateIsReconstructed(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 13)
	s.advance(3 * time.Second)
	if res, err := simEngine(s, "r1").Run(ctx, true); err != nil || res.Decision.Step != rotation.StepWaitTTL {
		t.Fatalf("to Waiting: %v %+v", err, res.Decision)
	}
	sec := s.mustSecret()
	for k := range sec.Annotations {
		if strings.HasPrefix(k, rotation.Prefix) && k != rotation.AnnoTTLSeconds {
			delete(sec.Annotations, k)
		}
	}
	if _, err := s.client.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	erasedAt := s.now
	res, err := simEngine(s, "r2").Run(ctx, true)
	if err != nil || res.State.Phase != rotation.Waiting || res.State.From != 1 || res.State.To != 2 || keyring.DataKeys(s.secretData()) != "active,key.v1,key.v2" {
		t.Fatalf("a keyring whose state was erased must wait to retire v1, not rotate on: %v %+v %s", err, res.State, keyring.DataKeys(s.secretData()))
	}
	if res.State.RetireAfter.Before(erasedAt.Add(simTTL)) {
		t.Fatalf("retire-after %s must be at least the TTL after the state was found erased (%s)", res.State.RetireAfter, erasedAt)
	}
	s.advance(res.State.RetireAfter.Sub(s.now) + time.Second)
	if res, err := simEngine(s, "r2").Run(ctx, false); err != nil || res.State.Phase != rotation.Idle || keyring.DataKeys(s.secretData()) != "active,key.v2" {
		t.Fatalf("after the TTL v1 must be retired: %v %+v %s", err, res.State, keyring.DataKeys(s.secretData()))
	}
	if s.rejected > 0 {
		t.Fatalf("%d unexpired tokens rejected", s.rejected)
	}
}
