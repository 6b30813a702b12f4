package rotation

import (
	"fmt"
	"time"
)

// Step is what the next run does.
type Step string

const (
	// StepStart adds v(N+1) and moves to KeyAdded.
	StepStart Step = "add-key"
	// StepRollout restarts every consumer and waits until no pod from before the last write remains.
	StepRollout Step = "rollout"
	// StepPromote sets active to v(N+1).
	StepPromote Step = "promote"
	// StepWaitTTL: nothing to do until RetireAfter.
	StepWaitTTL Step = "wait-ttl"
	// StepRetire removes vN.
	StepRetire Step = "retire"
	// StepNothing: no rotation in progress and none due (or not asked for).
	StepNothing Step = "nothing"
)

// RolloutName labels the rollout of a phase: the restart annotation's value is "<rotation id>/<name>", so
// re-running a rollout after a crash patches the same value again and restarts nobody twice.
func RolloutName(p Phase) string {
	switch p {
	case KeyAdded:
		return "after-add"
	case Promoted:
		return "after-promote"
	case Retired:
		return "after-retire"
	case Reverted:
		return "after-revert"
	}
	return ""
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
	switch s.Phase {
	case KeyAdded:
		return Decision{Step: StepRollout, Reason: fmt.Sprintf("v%d was added: every consumer must restart and know it before it is promoted", s.To)}
	case RolledOut:
		return Decision{Step: StepPromote, Reason: fmt.Sprintf("every consumer knows v%d: promote it", s.To)}
	case Promoted:
		return Decision{Step: StepRollout, Reason: fmt.Sprintf("v%d is active: restart the consumers so no signer keeps using v%d", s.To, s.From)}
	case Waiting:
		if now.Before(s.RetireAfter) {
			return Decision{Step: StepWaitTTL, Until: s.RetireAfter, Reason: fmt.Sprintf("tokens signed with v%d may be valid until %s (last pre-promotion pod gone + TTL)", s.From, s.RetireAfter.UTC().Format(time.RFC3339))}
		}
		return Decision{Step: StepRetire, Reason: fmt.Sprintf("every token signed with v%d has expired (retire-after %s passed)", s.From, s.RetireAfter.UTC().Format(time.RFC3339))}
	case Retired:
		return Decision{Step: StepRollout, Reason: fmt.Sprintf("v%d is removed: restart the consumers so no running process still trusts it", s.From)}
	case Reverted:
		return Decision{Step: StepRollout, Reason: fmt.Sprintf("the rotation was aborted and v%d is active again: restart the consumers so no signer keeps using v%d", s.From, s.To)}
	}
	if !startRequested {
		return Decision{Step: StepNothing, Reason: "no rotation in progress", Until: s.NextRotationDue}
	}
	if !s.NextRotationDue.IsZero() && now.Before(s.NextRotationDue) && !force {
		return Decision{Step: StepNothing, Until: s.NextRotationDue, Reason: fmt.Sprintf("the last rotation finished at %s and the next one is due %s; to rotate now (e.g. a leaked key) add --force --reason \"...\"",
			s.FinishedAt.UTC().Format(time.RFC3339), s.NextRotationDue.UTC().Format(time.RFC3339))}
	}
	return Decision{Step: StepStart, Reason: "no rotation in progress: add the next key version"}
}
