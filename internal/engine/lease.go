package engine

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// claim decides this run's lease from the one the Secret carries (e.lease; nothing is written): ours already, a
// new one, or a takeover (notice says whose). A lease held by another live run refuses the step.
func (e *Engine) claim(secret *corev1.Secret, rotationID string, now time.Time) (string, error) {
	current, err := rotation.ParseLease(secret.Annotations[rotation.AnnoLease])
	if err != nil {
		return "", err
	}
	if e.lease != nil && current != nil && current.Holder == e.Holder {
		return "", nil // ours, renewed with every write
	}
	lease, notice, err := rotation.DecideLease(current, e.Holder, rotationID, now, e.TakeOver, e.HolderAlive)
	if err != nil {
		return "", err
	}
	e.lease = &lease
	return notice, nil
}

// tookOver reports a lease taken from a dead run, once the write that took it (written) succeeded.
func (e *Engine) tookOver(ctx context.Context, written *corev1.Secret, notice string) {
	if notice == "" {
		return
	}
	e.printf("%s: %s", secretName(written), notice)
	e.Cluster.Event(ctx, written, corev1.EventTypeWarning, "LockTakenOver", notice)
}

// acquire takes or renews the lease in a write of its own (before a rollout).
func (e *Engine) acquire(ctx context.Context, secret *corev1.Secret, rotationID string, now time.Time) error {
	had := e.lease
	notice, err := e.claim(secret, rotationID, now)
	if err != nil || e.lease == had {
		return err
	}
	updated := secret.DeepCopy()
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	updated.Annotations[rotation.AnnoLease] = e.lease.Format()
	written, err := e.Cluster.UpdateSecret(ctx, updated)
	if err != nil {
		e.lease = had
		return err
	}
	*secret = *written
	e.tookOver(ctx, written, notice)
	return nil
}

// renew refreshes the lease during a long rollout.
func (e *Engine) renew(ctx context.Context) (*corev1.Secret, error) {
	secret, err := e.Cluster.Secret(ctx)
	if err != nil {
		return nil, err
	}
	current, err := rotation.ParseLease(secret.Annotations[rotation.AnnoLease])
	if err != nil {
		return nil, err
	}
	if current == nil || current.Holder != e.Holder {
		return nil, fmt.Errorf("the rotation lock was taken over by %s while this run waited for a rollout; this run stops (the other one carries on)", holderOf(current))
	}
	now, err := e.Cluster.Now(ctx)
	if err != nil {
		return nil, err
	}
	e.lease.Renewed = now
	updated := secret.DeepCopy()
	updated.Annotations[rotation.AnnoLease] = e.lease.Format()
	return e.Cluster.UpdateSecret(ctx, updated)
}

// release removes our lease when the run stops with the rotation waiting.
func (e *Engine) release(ctx context.Context, secret *corev1.Secret) error {
	current, err := rotation.ParseLease(secret.Annotations[rotation.AnnoLease])
	if err != nil || current == nil || current.Holder != e.Holder {
		return nil
	}
	updated := secret.DeepCopy()
	delete(updated.Annotations, rotation.AnnoLease)
	_, err = e.Cluster.UpdateSecret(ctx, updated)
	e.lease = nil
	return err
}

// rest ends a run that has nothing to do now (Idle, or waiting for the TTL): it gives back the lock it holds and,
// when the TTL configured now is higher than the one the state records as in force, records it in the same write.
// A raise comes with a helm upgrade that restarts the signers with the longer TTL, and that upgrade's hook Jobs (or
// the CronJob's next run) find nothing else to do: unrecorded, a TTL lowered again before the next rotation would
// retire the active version before the tokens signed under the raise expire. A conflict leaves the record to the
// next run (someone else just wrote the Secret).
func (e *Engine) rest(ctx context.Context, secret *corev1.Secret, st rotation.State, reconstructed bool) error {
	if reconstructed || e.Config.TTLDefaulted || e.Config.TTL <= st.TTLInForce || st.Phase != rotation.Idle && st.Phase != rotation.Waiting {
		return e.release(ctx, secret)
	}
	was := st.TTLInForce
	st.TTLInForce = e.Config.TTL
	updated := secret.DeepCopy()
	updated.Annotations = st.ApplyAnnotations(secret.Annotations)
	if current, err := rotation.ParseLease(secret.Annotations[rotation.AnnoLease]); err == nil && current != nil && current.Holder == e.Holder {
		delete(updated.Annotations, rotation.AnnoLease)
	}
	out, err := e.Cluster.UpdateSecret(ctx, updated)
	if apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return err
	}
	e.lease, e.Seen = nil, out
	before := "none"
	if was > 0 {
		before = was.String()
	}
	msg := fmt.Sprintf("token TTL in force is now %s (%s; recorded before: %s): the active version's retirement waits for it", e.Config.TTL, e.Config.TTLSource, before)
	e.Cluster.Event(ctx, out, corev1.EventTypeNormal, "TTLInForce", msg)
	if was > 0 { // a raise is news; the first record is not
		e.printf("%s: %s", secretName(secret), msg)
	}
	return nil
}

// ReleaseTimeout bounds the write that releases the lock after an interruption (the run's own context is done).
const ReleaseTimeout = 10 * time.Second

// releaseInterrupted returns a run's error cause as it is, unless the run was interrupted (its context cancelled)
// while holding the lock: then it releases the lock on a context of its own and says so in the returned error
// (which keeps cause, so errors.Is(err, context.Canceled) holds).
func (e *Engine) releaseInterrupted(ctx context.Context, cause error) error {
	if cause == nil || ctx.Err() == nil || e.lease == nil {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReleaseTimeout)
	defer cancel()
	secret, err := e.Cluster.Secret(ctx)
	if err == nil {
		err = e.release(ctx, secret)
	}
	if err != nil {
		return fmt.Errorf("%w; releasing the rotation lock failed too (%v): it lapses by itself %s after its last renewal", cause, err, rotation.LeaseDuration)
	}
	return fmt.Errorf("%w; the rotation lock was released", cause)
}

func holderOf(l *rotation.Lease) string {
	if l == nil {
		return "nobody (the lock was removed)"
	}
	return l.Holder
}
