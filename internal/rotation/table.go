package rotation

import (
	"fmt"
	"strings"
	"time"
)

// Phase is where a rotation stands. Every transition between phases is one write of the Secret, guarded by its
// resourceVersion; a run that crashes anywhere finds the last phase written and carries on from there.
type Phase string

const (
	// Idle: no rotation in progress. A finished rotation returns here with NextRotationDue set.
	Idle Phase = "Idle"
	// KeyAdded: v(N+1) is in the Secret, `active` still names vN. Next: restart every consumer so that each one
	// knows v(N+1) before anyone signs with it.
	KeyAdded Phase = "KeyAdded"
	// RolledOut: no pod that started before the add is left. Next: promote.
	RolledOut Phase = "RolledOut"
	// Promoted: `active` names v(N+1). Next: restart every consumer again, because a signer that read `active` at
	// start keeps signing with vN until it restarts.
	Promoted Phase = "Promoted"
	// Waiting: every pre-promotion pod is gone; vN-signed tokens may live until RetireAfter. Next, once the API
	// server's clock passes RetireAfter: retire vN.
	Waiting Phase = "Waiting"
	// Retired: vN is removed from the Secret. Next: restart the consumers once more, so that no running process
	// still trusts vN (a leaked vN must stop working), then back to Idle.
	Retired Phase = "Retired"
	// Reverted: an abort after the promotion set `active` back to vN and kept v(N+1) (tokens may already be
	// signed with it). Next: restart the consumers so every signer uses vN again; then it waits like any other
	// rotation, with the aborted version outgoing (retired after the TTL).
	Reverted Phase = "Reverted"
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
	// StepEmergency starts an emergency rotation in any phase: it adds v(highest+1) beside every present version
	// and moves to KeyAdded; the rotation in progress, if any, is superseded (its versions are retired with the rest).
	StepEmergency Step = "emergency-add-key"
)

// Write names the change a transition makes to the keyring Secret. The engine has one function per Write; every
// other fact about a transition lives in Table.
type Write string

// The writes. Each is one resourceVersion-guarded update of the Secret (data and state together).
const (
	// WriteAddKey adds v(highest+1); active is unchanged.
	WriteAddKey Write = "add-key"
	// WritePromote sets active to the rotation's new version.
	WritePromote Write = "promote"
	// WriteRetire removes the outgoing version (in an emergency: every version but the new one).
	WriteRetire Write = "retire"
	// WriteRolledOut records that every consumer restarted (state only).
	WriteRolledOut Write = "rolled-out"
	// WriteScheduleRetirement records retire-after = end of the rollout + TTL + margin (state only).
	WriteScheduleRetirement Write = "schedule-retirement"
	// WriteScheduleReturn, after an abort's rollout, makes the aborted version the outgoing one of a rotation back
	// to the old version, retired after the TTL like any other (state only).
	WriteScheduleReturn Write = "schedule-return"
	// WriteFinish records finished-at and the next rotation's due date (state only).
	WriteFinish Write = "finish"
	// WriteDropNew removes the new version before anyone signed with it (abort before the promotion).
	WriteDropNew Write = "drop-new"
	// WriteRevert sets active back to the old version and keeps the new one (abort after the promotion).
	WriteRevert Write = "revert"
	// WriteNothing changes nothing: the transition only resumes what its phase still owes (a rollout).
	WriteNothing Write = "nothing"
)

// StepAbort stops the rotation in progress (see the abort rows of Table).
const StepAbort Step = "abort"

// AnyPhase is the From of a transition that may start in every phase (the emergency rotation).
const AnyPhase Phase = "*"

// Transition is one row of the rotation's state machine: in phase From, step Step restarts every consumer with
// the restart value "<rotation id>/<Rollout>" when Rollout is set and waits until none has a pod from before, then
// performs Write and moves to Then, recording an Event with reason Event.
type Transition struct {
	From Phase
	Step Step
	// Rollout names the restart of the consumers this step waits for; "" when it restarts nobody.
	Rollout string
	Write   Write
	Then    Phase
	Event   string
	// Hooks are the chart's hook Jobs that may perform this transition; the first is the Job that performs it on
	// the forward path (the chart runs them in that order). None: only a run from a machine performs it.
	Hooks []string
	// Plan is what `plan` lists for this transition, {from}, {to}, {restart}, {ttl}, {skew} and {retireAfter} filled
	// in.
	Plan []string
	// Upgrade describes the hook path's `helm upgrade` that carries this step ("" for the default).
	Upgrade string
	// Reason says why this is the next step (status, plan, the run's output).
	Reason func(State) string
	// Until, when set, is the time before which the step must not run (the decision is then StepWaitTTL).
	Until func(State) time.Time
	// Late says what is overdue when the step has waited OverdueGrace past Until.
	Late func(State) string
	// Skip, when it returns a reason, makes the step a no-op in this state (an abort already done); Refuse makes it
	// a refusal (an abort that would make a leaked key active again).
	Skip, Refuse func(State) string
	// Readers, when set, is the moment no pod outside the consumers may have started before when this step runs, and
	// why: such a pod (a Job's, a CronJob's, a bare one) reads the keyring but no rollout restarts it, so it keeps
	// the keyring it read — a verifier that does not know the new version, or a signer that signs with the old one
	// after its retirement was scheduled. The step is refused, naming the pods, until they are restarted.
	Readers func(State) (since time.Time, why string)
	// Active is the version the keyring's `active` must name in phase From ("from" or "to" of the state), and
	// ToNewest whether the state's `to` must be the newest version: what Consistent checks against a hand edit.
	Active   string
	ToNewest bool
}

// Table is the rotation: every phase, what the next run does there, and what it writes. The engine, Next, plan,
// status, check, the hook path and the chart's hook Jobs read it; adding a phase is a row here plus, when it
// writes something new, the engine function for its Write (docs/design.md, "The transition table").
var Table = []Transition{
	{From: Idle, Step: StepStart, Write: WriteAddKey, Then: KeyAdded, Event: "KeyAdded", Hooks: []string{"add"},
		Plan:    []string{"add {to} (active stays {from})"},
		Upgrade: "add {next}, roll out, promote, roll out",
		Reason:  func(State) string { return "no rotation in progress: add the next key version" }},
	{From: KeyAdded, Step: StepRollout, Rollout: "after-add", Active: "from", ToNewest: true, Write: WriteRolledOut, Then: RolledOut, Event: "ConsumersRestarted", Hooks: []string{"rollout", "retire"},
		Plan: []string{"{restart}"},
		Reason: func(s State) string {
			return fmt.Sprintf("v%d was added: every consumer must restart and know it before it is promoted", s.To)
		}},
	{From: RolledOut, Step: StepPromote, Active: "from", ToNewest: true, Write: WritePromote, Then: Promoted, Event: "KeyPromoted", Hooks: []string{"promote"},
		Plan:    []string{"promote {to}"},
		Readers: readersSinceAdd,
		Reason:  func(s State) string { return fmt.Sprintf("every consumer knows v%d: promote it", s.To) }},
	{From: Promoted, Step: StepRollout, Rollout: "after-promote", Active: "to", Write: WriteScheduleRetirement, Then: Waiting, Event: "ConsumersRestarted", Hooks: []string{"rollout", "retire"},
		Plan:    []string{"{restart}", "stop: {from} stays until now + TTL + clock-skew margin ({ttl} + {skew})"},
		Readers: readersSincePromotion,
		Reason: func(s State) string {
			return fmt.Sprintf("v%d is active: restart the consumers so no signer keeps using v%d", s.To, s.From)
		}},
	{From: Waiting, Step: StepRetire, Active: "to", Write: WriteRetire, Then: Retired, Event: "KeyRetired", Hooks: []string{"retire"},
		Plan:    []string{"after {retireAfter}: remove {from}"},
		Upgrade: "retire {from}, token TTL passed",
		Readers: readersSincePromotion,
		Until:   func(s State) time.Time { return s.RetireAfter },
		Reason: func(s State) string {
			if s.Emergency != "" { // a leaked key: its tokens are rejected now, that is the point
				return fmt.Sprintf("emergency rotation (%s): v%d is active everywhere; retire every other version now", s.Emergency, s.To)
			}
			return fmt.Sprintf("every token signed with v%d has expired (retire-after %s passed)", s.From, s.RetireAfter.UTC().Format(time.RFC3339))
		},
		Late: func(s State) string {
			return fmt.Sprintf("v%d could be retired since %s and is still trusted", s.From, s.RetireAfter.UTC().Format(time.RFC3339))
		}},
	{From: Retired, Step: StepRollout, Rollout: "after-retire", Active: "to", Write: WriteFinish, Then: Idle, Event: "RotationFinished", Hooks: []string{"retire", "rollout"},
		Plan:    []string{"{restart}", "record the next rotation's due date"},
		Readers: readersSinceLeakRetired,
		Reason: func(s State) string {
			if s.Emergency != "" {
				return fmt.Sprintf("every version but v%d is removed: restart the consumers so no running process still trusts a leaked one", s.To)
			}
			return fmt.Sprintf("v%d is removed: restart the consumers so no running process still trusts it", s.From)
		}},
	{From: Reverted, Step: StepRollout, Rollout: "after-revert", Active: "from", Write: WriteScheduleReturn, Then: Waiting, Event: "RotationAborted", Hooks: []string{"rollout", "retire"},
		Plan:    []string{"{restart}", "stop: {to} stays until now + TTL + clock-skew margin ({ttl} + {skew}), then it is retired"},
		Readers: readersSinceRevert,
		Reason: func(s State) string {
			return fmt.Sprintf("the rotation was aborted and v%d is active again: restart the consumers so no signer keeps using v%d", s.From, s.To)
		}},

	// The emergency rotation of a leaked keyring starts in any phase and supersedes the rotation in progress.
	{From: AnyPhase, Step: StepEmergency, Write: WriteAddKey, Then: KeyAdded, Event: "EmergencyKeyAdded",
		Reason: func(s State) string {
			return fmt.Sprintf("emergency rotation (%s): add a fresh key; once it is active everywhere every other version is retired at once", s.Emergency)
		}},

	// Aborts. Before the promotion nobody signed with the new version; after it, somebody may have.
	{From: KeyAdded, Step: StepAbort, Write: WriteDropNew, Then: Idle, Event: "RotationAborted", Refuse: undoesAnEmergency},
	{From: RolledOut, Step: StepAbort, Write: WriteDropNew, Then: Idle, Event: "RotationAborted", Refuse: undoesAnEmergency},
	{From: Promoted, Step: StepAbort, Write: WriteRevert, Then: Reverted, Event: "RotationReverted", Refuse: undoesAnEmergency},
	{From: Waiting, Step: StepAbort, Write: WriteRevert, Then: Reverted, Event: "RotationReverted", Refuse: undoesAnEmergency,
		Skip: func(s State) string {
			if !s.Aborted() {
				return ""
			}
			return fmt.Sprintf("rotation %s was already aborted: v%d is active and v%d is retired after %s", s.RotationID, s.To, s.From, s.RetireAfter.UTC().Format(time.RFC3339))
		}},
	{From: Reverted, Step: StepAbort, Write: WriteNothing, Then: Reverted},
}

// readersSinceAdd: a pod that read the keyring before v(N+1) was added does not know it, and would reject the
// tokens signed with it once it is promoted.
func readersSinceAdd(s State) (time.Time, string) {
	return s.StartedAt, fmt.Sprintf("started before v%d was added, so they do not know it and would reject its tokens once it is promoted", s.To)
}

// readersSincePromotion: a pod that read the keyring before the promotion signs with v(N) until it restarts, also
// after the TTL counted from the rollout has passed and v(N) is retired.
func readersSincePromotion(s State) (time.Time, string) {
	return s.PromotedAt, fmt.Sprintf("started before v%d was promoted, so a signer among them signs with v%d until it restarts, also after v%d's retirement", s.To, s.From, s.From)
}

// readersSinceRevert: a pod that read the keyring before the abort set `active` back signs with the aborted
// version until it restarts, also after that version's retirement (found by the seventh attack on the traffic
// instrument: a bare signer ended between the rollout and retire-after, and the retirement rejected its tokens).
func readersSinceRevert(s State) (time.Time, string) {
	return s.TransitionAt, fmt.Sprintf("started before the abort set active back to v%d, so a signer among them signs with v%d until it restarts, also after v%d's retirement", s.From, s.To, s.To)
}

// readersSinceLeakRetired: after an emergency's retirement a pod that read the keyring before it still trusts the
// leaked versions, and would accept tokens forged with them, until it restarts. Retiring a version that did not
// leak needs no such restart: its tokens have expired.
func readersSinceLeakRetired(s State) (time.Time, string) {
	if s.Emergency == "" {
		return time.Time{}, ""
	}
	return s.RetiredAt, "started before the leaked versions were retired, so a verifier among them accepts tokens forged with them until it restarts"
}

// undoesAnEmergency refuses to abort an emergency rotation: before its promotion the abort would leave the leaked
// versions active with nothing saying so, after it make a leaked version active again (found by the sixth and
// seventh cold reads of the runbook).
func undoesAnEmergency(s State) string {
	if s.Emergency == "" {
		return ""
	}
	return fmt.Sprintf("rotation %s is an emergency rotation (%s): aborting it would leave v%d, a leaked version, active", s.RotationID, s.Emergency, s.From)
}

// Waits reports whether the rotation, in phase p, waits for a time before its next step (the TTL before the
// retirement): a run stops there and gives the lock back.
func Waits(p Phase) bool {
	t, ok := Forward(p)
	return ok && t.Until != nil
}

// RestartValue is the value of the restart annotation a phase's rollout sets on each consumer's pod template:
// "<rotation id>/<rollout name>", the same on every rerun, so a rollout resumed after a crash restarts nobody twice.
// "" for a phase without a rollout.
func RestartValue(s State) string {
	name := RolloutName(s.Phase)
	if name == "" || !s.InProgress() {
		return ""
	}
	return s.RotationID + "/" + name
}

// Lookup returns the transition of step in phase p (the emergency's row matches every phase).
func Lookup(p Phase, step Step) (Transition, bool) {
	for _, t := range Table {
		if (t.From == p || t.From == AnyPhase) && t.Step == step {
			return t, true
		}
	}
	return Transition{}, false
}

// Forward returns the transition a run performs in phase p when nobody asks for anything else (no abort, no
// emergency): the rotation's way forward.
func Forward(p Phase) (Transition, bool) {
	for _, t := range Table {
		if t.From == p && t.Step != StepAbort && t.Step != StepEmergency {
			return t, true
		}
	}
	return Transition{}, false
}

// Phases lists every phase the table knows, in the order of the forward path.
func Phases() []Phase {
	var out []Phase
	seen := map[Phase]bool{AnyPhase: true}
	for _, t := range Table {
		for _, p := range []Phase{t.From, t.Then} {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// RolloutName labels the rollout of a phase: the restart annotation's value is "<rotation id>/<name>", so
// re-running a rollout after a crash patches the same value again and restarts nobody twice. "" for a phase that
// restarts nobody.
func RolloutName(p Phase) string {
	t, _ := Forward(p)
	return t.Rollout
}

// ChartHooks is the order of the chart's post-upgrade hook Jobs: the hook that performs each transition of the
// forward path from Idle to the end of the retirement, each listed once in a row.
func ChartHooks() []string {
	var out []string
	for p := Idle; ; {
		t, ok := Forward(p)
		if !ok || len(t.Hooks) == 0 {
			return out
		}
		if len(out) == 0 || out[len(out)-1] != t.Hooks[0] {
			out = append(out, t.Hooks[0])
		}
		if p = t.Then; p == Idle {
			return out
		}
	}
}

// HookMayPerform reports whether the chart's hook Job named hook performs transition t.
func HookMayPerform(hook string, t Transition) bool {
	for _, h := range t.Hooks {
		if h == hook {
			return true
		}
	}
	return false
}

// IsHook reports whether name is one of the chart's hook Jobs.
func IsHook(name string) bool {
	for _, t := range Table {
		if HookMayPerform(name, t) {
			return true
		}
	}
	return false
}

// PlanFacts fill the placeholders of Transition.Plan and Transition.Upgrade.
type PlanFacts struct {
	From, To, Next int
	Consumers      int
	TTL            time.Duration
	ClockSkew      time.Duration
	RetireAfter    time.Time
	Phase          Phase
}

func (f PlanFacts) fill(text string) string {
	return strings.NewReplacer(
		"{from}", fmt.Sprintf("v%d", f.From), "{to}", fmt.Sprintf("v%d", f.To), "{next}", fmt.Sprintf("v%d", f.Next),
		"{restart}", fmt.Sprintf("restart %d consumers and wait until none has a pod from before", f.Consumers),
		"{ttl}", f.TTL.String(), "{skew}", f.ClockSkew.String(), "{retireAfter}", f.RetireAfter.UTC().Format(time.RFC3339), "{phase}", string(f.Phase),
	).Replace(text)
}

// PlanSteps lists what runs from phase p on until the rotation stops (waiting for the TTL, or Idle again).
func PlanSteps(p Phase, f PlanFacts) []string {
	var out []string
	for start := p; ; {
		t, ok := Forward(p)
		if !ok {
			return out
		}
		for _, line := range t.Plan {
			out = append(out, f.fill(line))
		}
		if p = t.Then; p == Idle || Waits(p) || p == start {
			return out
		}
	}
}

// UpgradeDescription is the `helm history` description of the hook path's upgrade that performs t.
func UpgradeDescription(t Transition, f PlanFacts) string {
	if t.Upgrade == "" {
		return f.fill("resume at {phase}")
	}
	return f.fill(t.Upgrade)
}
