package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// written is what one transition writes: the data change, the next state and the Event's message.
type written struct {
	data keyring.Change
	next rotation.State
	msg  string
	// requests, when set, is the new value of rotation.AnnoRequests (a request started this rotation).
	requests string
}

// perform computes the write of transition t from the state st at now: the only place that knows what each
// rotation.Write does. The next phase is t.Then, whatever the write.
func (e *Engine) perform(ctx context.Context, t rotation.Transition, secret *corev1.Secret, k *keyring.Keyring, st rotation.State, now time.Time) (written, error) {
	var w written
	next := st
	switch t.Write {
	case rotation.WriteAddKey:
		emergency := ""
		if t.Step == rotation.StepEmergency {
			emergency = e.Emergency
		}
		if emergency == "" {
			if err := e.ttlKnown(secret); err != nil {
				return w, err
			}
		}
		id := e.newRotationID(now, emergency != "")
		c, v, err := k.Add(e.Rand, st.NextVersion(k.Newest()))
		if err != nil {
			return w, err
		}
		w.data = c
		if emergency == "" && e.Request != "" {
			w.requests = rotation.RecordRequest(secret.Annotations, e.Request)
		}
		next = rotation.State{RotationID: id, From: k.Active, To: v, StartedAt: now, Actor: e.Actor, NextRotationDue: st.NextRotationDue, Emergency: emergency}
		w.msg = fmt.Sprintf("added %s; active stays %s (rotation %s)", keyring.Kid(v), keyring.Kid(k.Active), id)
		if emergency != "" {
			w.msg = fmt.Sprintf("emergency (%s): added %s; active stays %s until it is known everywhere (rotation %s)", emergency, keyring.Kid(v), keyring.Kid(k.Active), id)
			if st.InProgress() {
				w.msg += fmt.Sprintf("; supersedes rotation %s (%s)", st.RotationID, st.Phase)
			}
		}
	case rotation.WritePromote:
		consumers, err := e.consumers(ctx)
		if err != nil {
			return w, err
		}
		if blind := rotation.Blind(consumers, k.Names[st.To]); len(blind) > 0 {
			var names []string
			for _, c := range blind {
				names = append(names, c.String())
			}
			return w, &keyring.Violation{Secret: k.Secret, Rule: keyring.RuleReadable,
				Detail: fmt.Sprintf("%s read the keyring only through the data keys they name (volume items, secretKeyRef), not %s: promoted, %s would be unknown to them", strings.Join(names, ", "), k.Names[st.To], keyring.Kid(st.To)),
				Fix:    fmt.Sprintf("make each read the whole keyring (a volume without items, or envFrom) or add %s to its items, let it roll out, then rerun", k.Names[st.To])}
		}
		c, err := k.Promote(st.To)
		if err != nil {
			return w, err
		}
		w.data, next.PromotedAt = c, now
		w.msg = fmt.Sprintf("active is now %s; %s stays for verification (rotation %s)", keyring.Kid(st.To), keyring.Kid(st.From), st.RotationID)
	case rotation.WriteRetire:
		consumers, err := e.consumers(ctx)
		if err != nil {
			return w, err
		}
		var pinned []string
		for _, c := range consumers {
			pinned = append(pinned, c.Pinned...)
		}
		c, err := rotation.Retirement(k, st, pinned)
		if err != nil {
			return w, err
		}
		w.data, next.RetiredAt = c, now
		w.msg = fmt.Sprintf("%s; active %s (rotation %s)", c.Summary, keyring.Kid(st.To), st.RotationID)
	case rotation.WriteRolledOut:
		w.msg = fmt.Sprintf("every consumer restarted after %s was added (%d workloads)", keyring.Kid(st.To), len(e.found))
	case rotation.WriteScheduleRetirement:
		if err := e.refreshTTL(ctx, secret); err != nil && st.Emergency == "" {
			return w, err
		}
		if err := e.ttlKnown(secret); err != nil && st.Emergency == "" {
			return w, err
		}
		ttl := rotation.RetirementTTL(st, e.Config.TTL)
		next.RetireAfter, next.TTLUsed = rotation.RetireAfter(now, ttl, e.Config.ClockSkew), ttl
		if st.Emergency != "" { // the leaked versions' tokens are rejected now: no TTL to wait for
			next.RetireAfter, next.TTLUsed = now.Truncate(time.Second), 0
		}
		next.NextRotationDue = rotation.NextRotationDue(next, e.Config.Interval, time.Time{})
		source := e.Config.TTLSource
		if ttl > e.Config.TTL {
			source = fmt.Sprintf("the highest TTL in force while %s signed, recorded in %s; %s is %s now", keyring.Kid(st.From), rotation.AnnoTTLInForce, e.Config.TTLSource, e.Config.TTL)
		}
		w.msg = fmt.Sprintf("no pod from before the promotion of %s is left; %s can be retired after %s (TTL %s, %s, + %s clock-skew margin, %s)",
			keyring.Kid(st.To), keyring.Kid(st.From), next.RetireAfter.UTC().Format(time.RFC3339), ttl, source, e.Config.ClockSkew, e.Config.ClockSkewSource)
		if st.Emergency != "" {
			w.msg = fmt.Sprintf("no pod from before the emergency promotion of %s is left; every other version is retired now (%s)", keyring.Kid(st.To), st.Emergency)
		}
	case rotation.WriteScheduleReturn:
		if err := e.refreshTTL(ctx, secret); err != nil {
			return w, err
		}
		if err := e.ttlKnown(secret); err != nil {
			return w, err
		}
		// The aborted version signed tokens until now: it becomes the outgoing version of a rotation back to the
		// old one, retired after the TTL like any other (so it is not trusted forever).
		ttl := rotation.RetirementTTL(st, e.Config.TTL)
		next = rotation.State{RotationID: st.RotationID, From: st.To, To: st.From, StartedAt: st.StartedAt, PromotedAt: st.TransitionAt,
			RetireAfter: rotation.RetireAfter(now, ttl, e.Config.ClockSkew), TTLUsed: ttl, Actor: st.Actor}
		next.NextRotationDue = rotation.NextRotationDue(next, e.Config.Interval, time.Time{})
		w.msg = fmt.Sprintf("rotation %s aborted: active %s; %s stays until every token signed with it has expired and can be retired after %s (TTL %s, %s)",
			st.RotationID, keyring.Kid(st.From), keyring.Kid(st.To), next.RetireAfter.UTC().Format(time.RFC3339), e.Config.TTL, e.Config.TTLSource)
	case rotation.WriteFinish:
		next = rotation.State{RotationID: st.RotationID, From: st.From, To: st.To, StartedAt: st.StartedAt, PromotedAt: st.PromotedAt, RetireAfter: st.RetireAfter,
			RetiredAt: st.RetiredAt, FinishedAt: now, Actor: st.Actor, Emergency: st.Emergency}
		next.NextRotationDue = rotation.NextRotationDue(next, e.Config.Interval, now)
		w.msg = fmt.Sprintf("rotation %s finished: active %s; next rotation due %s", st.RotationID, keyring.Kid(st.To), next.NextRotationDue.UTC().Format(time.RFC3339))
		if st.Aborted() {
			w.msg = fmt.Sprintf("rotation %s was aborted and is rolled back: active %s, %s retired. The key was NOT rotated: rotate again (due %s)", st.RotationID, keyring.Kid(st.To), keyring.Kid(st.From), next.NextRotationDue.UTC().Format(time.RFC3339))
		}
	case rotation.WriteDropNew:
		c, err := k.Remove(st.To, nil)
		if err != nil {
			return w, err
		}
		w.data = c
		next = rotation.State{RotationID: st.RotationID, From: st.From, To: st.To, StartedAt: st.StartedAt, FinishedAt: now, Actor: e.Actor, NextRotationDue: st.NextRotationDue,
			RetiredUpTo: max(st.RetiredUpTo, st.To)} // consumers loaded it: it must not come back either
		w.msg = fmt.Sprintf("rotation %s aborted before the promotion: removed %s; active stays %s", st.RotationID, keyring.Kid(st.To), keyring.Kid(st.From))
	case rotation.WriteRevert:
		c, err := k.Promote(st.From)
		if err != nil {
			return w, err
		}
		w.data = c
		w.msg = fmt.Sprintf("rotation %s aborted after the promotion: active is %s again; %s kept", st.RotationID, keyring.Kid(st.From), keyring.Kid(st.To))
	case rotation.WriteNothing:
	default:
		return w, fmt.Errorf("internal error: the engine has no function for write %s", t.Write)
	}
	next.Phase, next.TransitionAt = t.Then, now
	next.RetiredUpTo = max(next.RetiredUpTo, st.RetiredUpTo) // a new rotation's state starts from scratch, the mark never does
	next.TTLInForce = max(next.TTLInForce, st.TTLInForce)
	if !e.Config.TTLDefaulted {
		next.TTLInForce = max(next.TTLInForce, e.Config.TTL)
		if t.Write == rotation.WriteScheduleRetirement {
			// The outgoing version's tokens are in retire-after now; the new active version's start under this TTL.
			next.TTLInForce = e.Config.TTL
		}
	}
	w.next = next
	return w, nil
}

// newRotationID is the id of the rotation a WriteAddKey starts: the request, or a fresh id (emergency-… for an
// emergency, so that an emergency annotation on any other rotation reads as the hand edit it is).
func (e *Engine) newRotationID(now time.Time, emergency bool) string {
	switch {
	case emergency:
		return rotation.EmergencyIDPrefix + e.NewRotationID(now)
	case e.Request != "":
		return e.Request
	}
	return e.NewRotationID(now)
}

// refreshTTL raises the run's TTL to the one configured now (Reconfigure) when that is higher, or when the run
// started with none: a retirement scheduled with the TTL the run started with would reject the tokens that pods
// restarted after a raise signed with the longer one. A lower TTL now changes nothing: tokens signed under the
// higher one still live.
func (e *Engine) refreshTTL(ctx context.Context, secret *corev1.Secret) error {
	if e.Reconfigure == nil {
		return nil
	}
	now, err := e.Reconfigure(ctx, secret)
	if err != nil {
		return fmt.Errorf("cannot read the token TTL again before scheduling a retirement (a TTL raised during this run must count): %w", err)
	}
	if now.TTLDefaulted || !e.Config.TTLDefaulted && now.TTL <= e.Config.TTL {
		return nil
	}
	source := now.TTLSource
	if !e.Config.TTLDefaulted {
		source = fmt.Sprintf("%s, raised during this run from %s", now.TTLSource, e.Config.TTL)
	}
	e.Config.TTL, e.Config.TTLSource, e.Config.TTLDefaulted = now.TTL, source, false
	return nil
}

// ttlKnown refuses a step that would compute a retirement time from a TTL nobody configured.
func (e *Engine) ttlKnown(secret *corev1.Secret) error {
	if !e.Config.TTLDefaulted {
		return nil
	}
	return &keyring.Violation{Secret: secretName(secret), Rule: keyring.RuleTransition,
		Detail: "no token TTL is configured, and retiring a key after a guessed TTL can reject live tokens",
		Fix:    fmt.Sprintf("set the Secret annotation %s (seconds), or %s to the dotted path of the release value that holds the TTL (e.g. requestsProxy.tokenTtlSeconds), or pass --ttl", rotation.AnnoTTLSeconds, rotation.AnnoTTLPath)}
}

// write applies a transition's data change and next state (plus the renewed lease, or its release when the
// rotation goes Idle or starts waiting for the TTL) in one update; the result must still satisfy every keyring
// invariant.
func (e *Engine) write(ctx context.Context, secret *corev1.Secret, w written, reason string) error {
	updated := secret.DeepCopy()
	updated.Data = keyring.Apply(secret.Data, w.data)
	if err := keyring.Validate(secretName(secret), updated.Data); err != nil {
		return err
	}
	updated.Annotations = w.next.ApplyAnnotations(secret.Annotations)
	if w.requests != "" {
		updated.Annotations[rotation.AnnoRequests] = w.requests
	}
	if w.next.Phase == rotation.Idle || rotation.Waits(w.next.Phase) { // the run stops here: the lease goes with the same write
		delete(updated.Annotations, rotation.AnnoLease)
		e.lease = nil
	} else if e.lease != nil {
		now, err := e.Cluster.Now(ctx)
		if err != nil {
			return err
		}
		e.lease.Renewed = now
		updated.Annotations[rotation.AnnoLease] = e.lease.Format()
	}
	out, err := e.Cluster.UpdateSecret(ctx, updated)
	if err != nil {
		return err
	}
	e.Seen = out
	e.Cluster.Event(ctx, out, corev1.EventTypeNormal, reason, w.msg)
	e.printf("%s: %s", secretName(secret), w.msg)
	return nil
}
