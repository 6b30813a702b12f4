package rotation

import (
	"fmt"
	"time"
)

// Timing rules, each written once: the engine, status, check, remind and the runbook's manual path use these.
const (
	// OverdueGrace is how long past its time a retirement or the next rotation may wait before `check` calls it
	// overdue (a scheduled run picks it up within a day).
	OverdueGrace = 24 * time.Hour
	// StuckAfter is how long a rollout phase may sit unfinished before `check` calls the rotation stopped half-way.
	StuckAfter = time.Hour
)

// RetireAfter is when tokens signed with the outgoing version have all expired: the moment no signer uses it any
// more (the post-promotion rollout finished at rolledOut) plus the TTL plus the clock-skew margin (Config.ClockSkew),
// in whole seconds rounded up (annotations store whole seconds: never early).
func RetireAfter(rolledOut time.Time, ttl, clockSkew time.Duration) time.Time {
	t := rolledOut.Add(ttl).Add(clockSkew)
	if t.Truncate(time.Second).Equal(t) {
		return t
	}
	return t.Truncate(time.Second).Add(time.Second)
}

// RetirementTTL is the TTL the outgoing version's retire-after is computed with: the TTL configured now, or the
// highest one a run saw in force while that version signed (s.TTLInForce), whichever is higher — a token keeps the
// TTL it was signed with, so lowering tokenTtlSeconds from 90 days to 1 day must not retire a key 89 days early.
func RetirementTTL(s State, configured time.Duration) time.Duration {
	return max(s.TTLInForce, configured)
}

// NextRotationDue is when the next rotation is due: one interval after the new key went into service
// (promoted-at), but never before the day after the old key may be retired (retire-after + OverdueGrace) or the day
// after the rotation finished — so that with an interval equal to the TTL the next rotation is due right after this
// one can finish, and `check` is green right after a finish. An aborted rotation rotated nothing: the next one is
// due the day after its rotation back can finish. finished is zero while the rotation waits.
func NextRotationDue(s State, interval time.Duration, finished time.Time) time.Time {
	due := s.PromotedAt.Add(interval)
	if s.Aborted() { // the key was not rotated: the next rotation is due as soon as the rotation back finishes
		due = time.Time{}
	}
	if r := s.RetireAfter.Add(OverdueGrace); !s.RetireAfter.IsZero() && r.After(due) {
		due = r
	}
	if f := finished.Add(OverdueGrace); !finished.IsZero() && f.After(due) {
		due = f
	}
	return due.UTC().Truncate(time.Second)
}

// Overdue says why the keyring is overdue at now, or "" when it is not: the next rotation past due, a step that
// waits for a time (the retirement) left undone a day after it could have run, or any other step of a rotation
// unfinished for an hour (a run stopped half-way).
func Overdue(s State, now time.Time) string {
	if !s.InProgress() {
		if !s.NextRotationDue.IsZero() && now.After(s.NextRotationDue) {
			return fmt.Sprintf("the next rotation was due %s (%s ago)", s.NextRotationDue.UTC().Format(time.RFC3339), now.Sub(s.NextRotationDue).Round(time.Minute))
		}
		return ""
	}
	t, _ := Forward(s.Phase)
	switch {
	case t.Until != nil:
		if now.After(t.Until(s).Add(OverdueGrace)) {
			return t.Late(s)
		}
	case !s.TransitionAt.IsZero() && now.After(s.TransitionAt.Add(StuckAfter)):
		return fmt.Sprintf("rotation %s has been in phase %s since %s: a run stopped half-way", s.RotationID, s.Phase, s.TransitionAt.UTC().Format(time.RFC3339))
	}
	return ""
}

// EmergencyPending reports whether an emergency rotation for reason must start now: yes, in any phase, unless an
// emergency rotation is in progress (the run resumes it first, and asks again once it has finished) or the last one
// had the same reason and retired the leaked versions. So a command pasted twice never starts a second emergency,
// which would reject the tokens of the first one's fresh key; a new leak is a new incident with its own reason; and
// an emergency that ended without retiring anything (its new key vanished before the promotion) rotated nothing.
func EmergencyPending(s State, reason string) bool {
	if s.InProgress() && s.Emergency != "" {
		return false
	}
	return s.Emergency != reason || s.RetiredAt.IsZero()
}

// Decision is the next step with its reason, for `plan`, `status` and the run loop.
type Decision struct {
	Step   Step
	Reason string
	// Until is when a waiting step becomes due (StepWaitTTL, or StepNothing with a next rotation due).
	Until time.Time
}

// Next decides the next step from the state and the API server's time. startRequested is true for `run` (which
// starts a rotation when none is in progress and one is due, or when forced) and false for the scheduled retire
// check; force starts a rotation that is not due yet.
func Next(s State, now time.Time, startRequested, force bool) Decision {
	if s.InProgress() {
		t, ok := Forward(s.Phase)
		if !ok { // ParseState refuses a phase the table does not know
			return Decision{Step: StepNothing, Reason: fmt.Sprintf("phase %s has no next step", s.Phase)}
		}
		if t.Until != nil && now.Before(t.Until(s)) {
			return Decision{Step: StepWaitTTL, Until: t.Until(s), Reason: fmt.Sprintf("tokens signed with v%d may be valid until %s (last pre-promotion pod gone + TTL + clock-skew margin)", s.From, t.Until(s).UTC().Format(time.RFC3339))}
		}
		return Decision{Step: t.Step, Reason: t.Reason(s)}
	}
	if !startRequested {
		return Decision{Step: StepNothing, Reason: "no rotation in progress", Until: s.NextRotationDue}
	}
	if !s.NextRotationDue.IsZero() && now.Before(s.NextRotationDue) && !force {
		return Decision{Step: StepNothing, Until: s.NextRotationDue, Reason: fmt.Sprintf("the last rotation finished at %s and the next one is due %s; to rotate now add --force --reason \"...\"; if a key leaked, use --emergency --reason \"INCIDENT\" instead (it retires the leaked versions at once, not after the TTL)",
			s.FinishedAt.UTC().Format(time.RFC3339), s.NextRotationDue.UTC().Format(time.RFC3339))}
	}
	start, _ := Forward(Idle)
	return Decision{Step: start.Step, Reason: start.Reason(s)}
}
