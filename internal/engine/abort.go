package engine

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// Abort stops the rotation in progress with the abort transition of its phase (rotation.Table). Before the
// promotion it removes v(N+1) (nobody signed with it) and returns to Idle in one write. After it, `active` goes back
// to vN and v(N+1) stays, because tokens may already be signed with it; the consumers are then restarted so every
// signer uses vN again. A phase without an abort transition (a retired vN cannot come back) is refused: finish the
// rotation instead.
func (e *Engine) Abort(ctx context.Context) (Result, error) {
	for attempt := 0; ; attempt++ {
		secret, k, st, now, err := e.observe(ctx)
		if err != nil {
			return Result{}, err
		}
		res := Result{State: st, Keyring: k}
		if !st.InProgress() {
			res.Decision = rotation.Decision{Step: rotation.StepNothing, Reason: "no rotation in progress: nothing to abort"}
			return res, nil
		}
		if st.Phase == rotation.Waiting && st.Aborted() {
			res.Decision = rotation.Decision{Step: rotation.StepNothing, Reason: fmt.Sprintf("rotation %s was already aborted: %s is active and %s is retired after %s", st.RotationID, keyring.Kid(st.To), keyring.Kid(st.From), st.RetireAfter.UTC().Format(time.RFC3339))}
			return res, nil
		}
		t, ok := rotation.Lookup(st.Phase, rotation.StepAbort)
		if !ok {
			return res, &keyring.Violation{Secret: secretName(secret), Rule: keyring.RuleTransition, Detail: fmt.Sprintf("rotation %s is in phase %s, past the point it can be undone (v%d is already removed)", st.RotationID, st.Phase, st.From), Fix: "finish it: helm rotate-key run RELEASE"}
		}
		if t.Write == rotation.WriteRevert && st.Emergency != "" {
			// Reverting an emergency makes a leaked version active again and drops the record of the leak.
			return res, &keyring.Violation{Secret: secretName(secret), Rule: keyring.RuleTransition,
				Detail: fmt.Sprintf("rotation %s is an emergency rotation (%s) past its promotion: aborting it would make v%d, a leaked version, active again", st.RotationID, st.Emergency, st.From),
				Fix:    "finish it: helm rotate-key run RELEASE --emergency --reason \"" + st.Emergency + "\" (it retires every leaked version)"}
		}
		w, err := e.perform(ctx, t, secret, k, st, now)
		if err != nil {
			return res, err
		}
		if err := e.acquire(ctx, secret, st.RotationID, now); err != nil {
			if apierrors.IsConflict(err) && attempt < MaxConflictRetries {
				continue
			}
			return res, err
		}
		if t.Write != rotation.WriteNothing {
			err = e.write(ctx, secret, w, t.Event)
		}
		if then, _ := rotation.Forward(t.Then); err == nil && then.Rollout != "" {
			if fresh, ferr := e.Cluster.Secret(ctx); ferr != nil {
				err = ferr
			} else {
				err = e.rollout(ctx, fresh, w.next)
			}
		}
		if apierrors.IsConflict(err) && attempt < MaxConflictRetries {
			continue
		}
		if err != nil {
			return res, err
		}
		_, _, st, _, err = e.observe(ctx)
		res.State = st
		res.Decision = rotation.Decision{Step: rotation.StepNothing, Reason: "rotation aborted"}
		return res, err
	}
}
