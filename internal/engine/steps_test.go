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

// upgrade runs the hook Jobs of one `helm upgrade` in order, as separate engines (one per Job), in the simulation.
func upgrade(t *testing.T, s *sim, request string) rotation.State {
	t.Helper()
	for _, hook := range rotation.ChartHooks() {
		cluster := &faulty{Keyring: &kube.Keyring{Cluster: &kube.Cluster{Client: s.client, Namespace: ns, Clock: func() time.Time { return s.now }}, SecretName: secret}}
		engine := &engine.Engine{
			Cluster: cluster, Config: rotation.Config{TTL: simTTL, ClockSkew: rotation.DefaultClockSkew, Interval: 90 * 24 * time.Hour, Consumers: []rotation.ConsumerRef{{Kind: "Deployment", Name: "signer"}, {Kind: "Deployment", Name: "verifier"}}},
			Holder: "job", Actor: "job", Rand: cryptoRand{s.rng}, RolloutTimeout: time.Hour, Poll: time.Second,
			NewRotationID: func(time.Time) string { t.Fatal("a requested rotation must take the request as its id"); return "" },
			LocalNow:      func() time.Time { return s.now },
			Sleep:         func(_ context.Context, d time.Duration) error { s.advance(d); return nil },
			Request:       request, Force: request != "", Hook: hook,
		}
		if _, err := engine.Run(context.Background(), request != ""); err != nil {
			t.Fatalf("hook Job %s: %v", hook, err)
		}
	}
	st, err := rotation.ParseState(s.mustSecret().Annotations)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestHookJobsRotateOnceAndRetireWhenDue(t *testing.T) {
	s := newSim(t, 7)
	s.advance(2 * time.Second)
	keysOf := func() string { return keyring.DataKeys(s.secretData()) }

	if st := upgrade(t, s, ""); st.Phase != rotation.Idle || keysOf() != "active,key.v1" {
		t.Fatalf("an upgrade without a request must change nothing: %s %s", st.Phase, keysOf())
	}
	st := upgrade(t, s, "2026q4")
	if st.Phase != rotation.Waiting || st.RotationID != "2026q4" || keysOf() != "active,key.v1,key.v2" || string(s.secretData()["active"]) != "v2" {
		t.Fatalf("the requested upgrade must run steps 1-4: %+v %s", st, keysOf())
	}
	rv := s.mustSecret().ResourceVersion
	if again := upgrade(t, s, "2026q4"); again.Phase != rotation.Waiting || s.mustSecret().ResourceVersion != rv {
		t.Fatalf("an upgrade before retire-after (same request in the values) must write nothing: %+v", again)
	}
	s.advance(st.RetireAfter.Sub(s.now) + time.Second)
	if done := upgrade(t, s, "2026q4"); done.Phase != rotation.Idle || keysOf() != "active,key.v2" {
		t.Fatalf("the first upgrade after retire-after must retire v1: %+v %s", done, keysOf())
	}
	rv = s.mustSecret().ResourceVersion
	if again := upgrade(t, s, "2026q4"); again.Phase != rotation.Idle || s.mustSecret().ResourceVersion != rv || keysOf() != "active,key.v2" {
		t.Fatalf("a request that has already run must not start a second rotation: %+v %s", again, keysOf())
	}
	if next := upgrade(t, s, "2027q1"); next.Phase != rotation.Waiting || next.RotationID != "2027q1" || keysOf() != "active,key.v2,key.v3" {
		t.Fatalf("a new request must start the next rotation: %+v %s", next, keysOf())
	}
	if s.rejected > 0 {
		t.Fatalf("%d unexpired tokens rejected", s.rejected)
	}
}

// A Job limited to one step leaves a rotation it finds in another phase alone.
func TestStepOutsideTheJobIsLeftAlone(t *testing.T) {
	s := newSim(t, 11)
	cluster := &faulty{Keyring: &kube.Keyring{Cluster: &kube.Cluster{Client: s.client, Namespace: ns, Clock: func() time.Time { return s.now }}, SecretName: secret}}
	run := &engine.Engine{
		Cluster: cluster, Config: rotation.Config{TTL: simTTL, ClockSkew: rotation.DefaultClockSkew, Interval: time.Hour, Consumers: []rotation.ConsumerRef{{Kind: "Deployment", Name: "signer"}}},
		Holder: "job", Actor: "job", Rand: cryptoRand{s.rng}, RolloutTimeout: time.Hour, Poll: time.Second,
		LocalNow: func() time.Time { return s.now }, Sleep: func(_ context.Context, d time.Duration) error { s.advance(d); return nil },
		Request: "r1", Force: true, Hook: "add",
	}
	res, err := run.Run(context.Background(), true)
	if err != nil || res.Decision.Step != rotation.StepRollout {
		t.Fatalf("the add Job must stop after adding, with the rollout next: %v %+v", err, res.Decision)
	}
	rv := s.mustSecret().ResourceVersion
	run.Hook = "promote"
	if res, err = run.Run(context.Background(), false); err != nil || res.State.Phase != rotation.KeyAdded || s.mustSecret().ResourceVersion != rv {
		t.Fatalf("the promote Job must not promote before the rollout: %v %+v", err, res.State)
	}
}

// A request starts one rotation, ever: once another rotation (a run from a machine, the runbook's manual path) has
// run since, the same request left in the release's values (`helm upgrade --reuse-values`) must not start another
// one under the old id — nor must a helm rollback that brings an older request back.
func TestRequestStartsOneRotationEver(t *testing.T) {
	s := newSim(t, 13)
	s.advance(2 * time.Second)
	keysOf := func() string { return keyring.DataKeys(s.secretData()) }
	finish := func(request string) {
		st := upgrade(t, s, request)
		s.advance(st.RetireAfter.Sub(s.now) + time.Second)
		if done := upgrade(t, s, request); done.Phase != rotation.Idle {
			t.Fatalf("rotation %s did not finish: %+v", request, done)
		}
	}
	finish("2026q4")
	// Another rotation since, from a machine (no request): the state's rotation id moves on.
	local := &engine.Engine{
		Cluster: &faulty{Keyring: &kube.Keyring{Cluster: &kube.Cluster{Client: s.client, Namespace: ns, Clock: func() time.Time { return s.now }}, SecretName: secret}},
		Config:  rotation.Config{TTL: simTTL, ClockSkew: rotation.DefaultClockSkew, Interval: 90 * 24 * time.Hour, Consumers: []rotation.ConsumerRef{{Kind: "Deployment", Name: "signer"}, {Kind: "Deployment", Name: "verifier"}}},
		Holder:  "laptop", Actor: "laptop", Rand: cryptoRand{s.rng}, RolloutTimeout: time.Hour, Poll: time.Second,
		NewRotationID: func(time.Time) string { return "manual-1" }, Force: true,
		LocalNow: func() time.Time { return s.now }, Sleep: func(_ context.Context, d time.Duration) error { s.advance(d); return nil },
	}
	res, err := local.Run(context.Background(), true)
	if err != nil || res.State.Phase != rotation.Waiting {
		t.Fatalf("local rotation: %v %+v", err, res.State)
	}
	s.advance(res.State.RetireAfter.Sub(s.now) + time.Second)
	local.Force = false
	if res, err = local.Run(context.Background(), false); err != nil || res.State.Phase != rotation.Idle || keysOf() != "active,key.v3" {
		t.Fatalf("local retirement: %v %+v %s", err, res.State, keysOf())
	}
	rv := s.mustSecret().ResourceVersion
	if again := upgrade(t, s, "2026q4"); again.Phase != rotation.Idle || s.mustSecret().ResourceVersion != rv {
		t.Fatalf("an upgrade that still carries request 2026q4 started a rotation again: %+v %s", again, keysOf())
	}
	finish("2027q1")
	rv = s.mustSecret().ResourceVersion
	if back := upgrade(t, s, "2026q4"); back.Phase != rotation.Idle || s.mustSecret().ResourceVersion != rv {
		t.Fatalf("a rollback to the values of request 2026q4 started a rotation again: %+v %s", back, keysOf())
	}
}

// Issue 15.2: the retirement records the mark; a retired version back in the keyring (a rollback, a chart that
// generates missing keys) stops every run but an emergency, which removes it with the other older versions.
func TestRetiredVersionBackStopsTheRun(t *testing.T) {
	s := newSim(t, 11)
	s.advance(2 * time.Second)
	keysOf := func() string { return keyring.DataKeys(s.secretData()) }
	st := upgrade(t, s, "2026q4")
	s.advance(st.RetireAfter.Sub(s.now) + time.Second)
	if done := upgrade(t, s, "2026q4"); done.Phase != rotation.Idle || keysOf() != "active,key.v2" {
		t.Fatalf("v1 must be retired: %+v %s", done, keysOf())
	}
	if mark := s.mustSecret().Annotations[rotation.AnnoRetiredUpTo]; mark != "v1" {
		t.Fatalf("the retirement must record %s v1, got %q", rotation.AnnoRetiredUpTo, mark)
	}
	sec := s.mustSecret()
	sec.Data["key.v1"] = append([]byte{}, sec.Data["key.v2"]...)
	sec.Data["key.v1"][0] ^= 1
	if _, err := s.client.CoreV1().Secrets(ns).Update(context.Background(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rv := s.mustSecret().ResourceVersion
	run := func(emergency string) error {
		e := &engine.Engine{
			Cluster: &faulty{Keyring: &kube.Keyring{Cluster: &kube.Cluster{Client: s.client, Namespace: ns, Clock: func() time.Time { return s.now }}, SecretName: secret}},
			Config:  rotation.Config{TTL: simTTL, ClockSkew: rotation.DefaultClockSkew, Interval: 90 * 24 * time.Hour, Consumers: []rotation.ConsumerRef{{Kind: "Deployment", Name: "signer"}, {Kind: "Deployment", Name: "verifier"}}},
			Holder:  "op", Actor: "op", Rand: cryptoRand{s.rng}, RolloutTimeout: time.Hour, Poll: time.Second, Force: true, Emergency: emergency,
			NewRotationID: func(time.Time) string { return "r" }, LocalNow: func() time.Time { return s.now },
			Sleep: func(_ context.Context, d time.Duration) error { s.advance(d); return nil },
		}
		_, err := e.Run(context.Background(), true)
		return err
	}
	var v *keyring.Violation
	if err := run(""); !errors.As(err, &v) || v.Rule != keyring.RuleRetiredStays || !strings.Contains(err.Error(), "v1 is back") {
		t.Fatalf("a rotation with retired v1 back must be refused: %v", err)
	}
	if s.mustSecret().ResourceVersion != rv {
		t.Fatalf("the refused run wrote the Secret")
	}
	if err := run("INC-7"); err != nil {
		t.Fatalf("an emergency removes every older version, the one back included: %v", err)
	}
	if keysOf() != "active,key.v3" || s.mustSecret().Annotations[rotation.AnnoRetiredUpTo] != "v2" {
		t.Fatalf("after the emergency: %s, mark %q", keysOf(), s.mustSecret().Annotations[rotation.AnnoRetiredUpTo])
	}
}
