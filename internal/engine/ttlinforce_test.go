package engine_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// The tenth attack on the traffic instrument: a TTL raised while the keyring is Idle (the upgrade that raised it
// restarts the signers, and its hook Jobs find nothing to do) was never recorded, so after it was lowered again the
// next rotation retired the active version before the tokens signed under the raise expired. An idle run records
// the higher TTL; a lower one, or none configured, records nothing.
func TestTTLRaisedWhileIdleIsRecorded(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, 21)
	s.advance(3 * time.Second)
	idle := simEngine(s, "r0")
	idle.Config.TTL = 4 * simTTL
	if res, err := idle.Run(ctx, false); err != nil || res.Decision.Step != rotation.StepNothing {
		t.Fatalf("idle run: %v %+v", err, res.Decision)
	}
	st, _ := rotation.ParseState(s.mustSecret().Annotations)
	if st.TTLInForce != 4*simTTL {
		t.Fatalf("an idle run with a TTL of %s configured recorded %s in force", 4*simTTL, st.TTLInForce)
	}
	before := s.mustSecret().ResourceVersion
	for _, c := range []rotation.Config{{TTL: simTTL}, {TTL: rotation.DefaultTTL, TTLDefaulted: true}} {
		e := simEngine(s, "r0")
		e.Config.TTL, e.Config.TTLDefaulted = c.TTL, c.TTLDefaulted
		if _, err := e.Run(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	if after := s.mustSecret().ResourceVersion; after != before {
		t.Fatalf("an idle run with a lower or no TTL configured wrote the Secret (resourceVersion %s -> %s)", before, after)
	}
	short := simEngine(s, "r1")
	if res, err := short.Run(ctx, true); err != nil || res.Decision.Step != rotation.StepWaitTTL {
		t.Fatalf("rotation to Waiting: %v %+v", err, res.Decision)
	}
	st, _ = rotation.ParseState(s.mustSecret().Annotations)
	if st.TTLUsed != 4*simTTL || st.RetireAfter.Before(st.PromotedAt.Add(4*simTTL)) {
		t.Fatalf("v1 signed under a TTL of %s: retire-after %s (TTL used %s) must be at least promoted-at %s + that TTL", 4*simTTL, st.RetireAfter, st.TTLUsed, st.PromotedAt)
	}
}

// The abort path keeps the same TTL rules as the forward one (the tenth attack: an abort that used only the TTL
// configured now passed every unit test): after a promotion under a longer TTL, an abort under a shorter one
// retires the aborted version after the longer; a TTL raised during the abort's rollout counts too.
func TestAbortKeepsTheHigherTTL(t *testing.T) {
	for _, raised := range []bool{false, true} {
		ctx := context.Background()
		s := newSim(t, 23)
		s.advance(3 * time.Second)
		long := simEngine(s, "r1")
		long.Config.TTL = 3 * simTTL
		if res, err := long.Run(ctx, true); err != nil || res.Decision.Step != rotation.StepWaitTTL {
			t.Fatalf("rotation to Waiting: %v %+v", err, res.Decision)
		}
		abort := simEngine(s, "r1")
		want := 3 * simTTL
		if raised { // a helm upgrade during the abort's rollout sets 4 x simTTL
			want = 4 * simTTL
			abort.Reconfigure = func(context.Context, *corev1.Secret) (rotation.Config, error) {
				return rotation.Config{TTL: want, TTLSource: "raised"}, nil
			}
		}
		if _, err := abort.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		st, _ := rotation.ParseState(s.mustSecret().Annotations)
		if st.Phase != rotation.Waiting || st.From != 2 || st.TTLUsed != want || st.RetireAfter.Before(st.PromotedAt.Add(want)) {
			t.Fatalf("raised %v: after the abort phase %s from v%d, TTL used %s, retire-after %s (promoted-at %s); want v2 retired after %s", raised, st.Phase, st.From, st.TTLUsed, st.RetireAfter, st.PromotedAt, want)
		}
	}
}
