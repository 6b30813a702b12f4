package engine

import (
	"context"
	"errors"
	"fmt"

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
	res, err := e.abort(ctx)
	return res, e.releaseInterrupted(ctx, err) // as Run: an interrupted abort leaves no lock behind
}

func (e *Engine) abort(ctx context.Context) (Result, error) {
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
		t, ok := rotation.Lookup(st.Phase, rotation.StepAbort)
		if !ok {
			return res, &keyring.Violation{Secret: secretName(secret), Rule: keyring.RuleTransition, Detail: fmt.Sprintf("rotation %s cannot be undone in phase %s (v%d is no longer in the keyring or the step is past the point of return)", st.RotationID, st.Phase, st.From), Fix: "finish it: helm rotate-key run RELEASE"}
		}
		if t.Skip != nil && t.Skip(st) != "" {
			res.Decision = rotation.Decision{Step: rotation.StepNothing, Reason: t.Skip(st)}
			return res, nil
		}
		if t.Refuse != nil && t.Refuse(st) != "" {
			fix := "finish it: helm rotate-key run RELEASE"
			if st.Emergency != "" {
				fix = "finish it: helm rotate-key run RELEASE --emergency --reason \"" + st.Emergency + "\" (it retires every leaked version)"
			}
			return res, &keyring.Violation{Secret: secretName(secret), Rule: keyring.RuleTransition, Detail: t.Refuse(st), Fix: fix}
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
			} else if serr := e.noStrays(ctx, fresh, revertedAt(st, w.next, t), then); serr != nil {
				// The revert stands (active is back); the rollout waits until those pods are restarted.
				var v *keyring.Violation
				if t.Write != rotation.WriteNothing && errors.As(serr, &v) {
					v.Earlier = true
				}
				return res, errors.Join(serr, e.release(ctx, fresh))
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

// revertedAt is the state whose transition time is the revert's: the one just written, or, when the abort only
// resumes a rollout (already Reverted), the one stored.
func revertedAt(stored, written rotation.State, t rotation.Transition) rotation.State {
	if t.Write == rotation.WriteNothing {
		return stored
	}
	return written
}
