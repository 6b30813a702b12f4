package engine

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// rollout performs the rollout transition of st's phase: it restarts every consumer with the transition's restart
// value, waits until none has a pod from before, then writes the transition.
func (e *Engine) rollout(ctx context.Context, secret *corev1.Secret, st rotation.State) error {
	t, _ := rotation.Forward(st.Phase)
	value := rotation.RestartValue(st)
	consumers, err := e.consumers(ctx)
	if err != nil {
		return err
	}
	for _, c := range consumers {
		if err := e.Cluster.Restart(ctx, c.Ref, value); err != nil {
			return fmt.Errorf("restarting %s: %w", c.Ref, err)
		}
	}
	interval := min(FirstPoll, max(e.Poll, time.Millisecond))
	began := e.localNow()
	deadline := e.localNow().Add(e.RolloutTimeout)
	lastRenew := e.localNow()
	progress := map[rotation.ConsumerRef]string{}
	for {
		pending := 0
		for _, c := range consumers {
			rs, err := e.Cluster.Rollout(ctx, c.Ref, value)
			if err != nil {
				return fmt.Errorf("watching the rollout of %s: %w", c.Ref, err)
			}
			if rs.Progress != progress[c.Ref] {
				e.printf("  %s: %s", c.Ref, rs.Progress)
				progress[c.Ref] = rs.Progress
			}
			if !rs.Done {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if e.localNow().After(deadline) {
			return fmt.Errorf("%w: %d of %d consumers still have pods from before the restart after %s; the rotation stays in phase %s and resumes where it stopped: rerun the same command", ErrRolloutTimeout, pending, len(consumers), e.RolloutTimeout, st.Phase)
		}
		if e.localNow().Sub(lastRenew) >= rotation.RenewEvery {
			fresh, err := e.renew(ctx)
			if err != nil {
				return err
			}
			secret, lastRenew = fresh, e.localNow()
		}
		if err := e.sleep(ctx, interval); err != nil {
			return err
		}
		limit := max(e.Poll, FirstPoll)
		if e.localNow().Sub(began) < QuickFor {
			limit = min(limit, QuickPoll)
		}
		interval = min(2*interval, limit)
	}
	// secret is our last write (the lease renewals included): if anyone else wrote the Secret during the rollout,
	// the write below conflicts and the run observes again.
	now, err := e.Cluster.Now(ctx)
	if err != nil {
		return err
	}
	w, err := e.perform(ctx, t, secret, nil, st, now)
	if err != nil {
		return err
	}
	return e.write(ctx, secret, w, t.Event)
}
