package rotation

import (
	"fmt"
	"strings"
	"time"
)

// AnnoRepairedUntil is written by the runbook's block RESTART after a repair moved 'active' back: signers that
// started while 'active' named another version signed with it, and their tokens live until this time (RFC 3339).
// A retired version brought back that way is needed until then, unless it leaked.
const AnnoRepairedUntil = Prefix + "repaired-until"

// AnnoRetiredUpTo records the highest version ever removed from the keyring by a retirement or an abort ("vN").
// No version at or below it may come back: a `helm rollback` to a revision rendered during the TTL wait would re-add
// the retired (possibly leaked) key, and a chart that generates `v1` whenever it is missing would add a fresh,
// unknown v1. Versions below the mark that the keyring still holds (the active one after an abort, say) stay.
const AnnoRetiredUpTo = Prefix + "retired-up-to"

// removedBy returns the versions the state's own rotation retired, as a test and the highest of them: its outgoing
// version; for an emergency every version below its new one; for a reconstructed rotation every version but its
// active one. The runbook's manual path writes the state but not the mark, so the mark is always at least what the
// state says. (A new version dropped by an abort before the promotion is in the mark only when the plugin dropped
// it: a state alone cannot tell that abort from a finished rotation written without promoted-at.)
func (s State) removedBy() (removed func(v int) bool, highest int) {
	switch {
	case s.RetiredAt.IsZero():
		return func(int) bool { return false }, 0
	case s.Emergency != "":
		return func(v int) bool { return v < s.To }, s.To - 1
	case s.Reconstructed():
		return func(v int) bool { return v != s.To && v <= max(s.From, s.To-1) }, max(s.From, s.To-1)
	}
	return func(v int) bool { return v == s.From }, s.From
}

// retiredMark is the mark from the annotation (0 when absent) and from the state.
func (s State) retiredMark(annotation string, present bool) (int, error) {
	mark := 0
	if present {
		n, ok := parseKid(annotation)
		if !ok {
			return 0, fmt.Errorf("annotation %s=%q is not a key id vN: it was edited by hand; restore it (the highest version ever retired) or remove it", AnnoRetiredUpTo, annotation)
		}
		mark = n
	}
	_, high := s.removedBy()
	return max(mark, high), nil
}

// Resurrected returns the versions of a keyring (versions, active) that were retired and are back: at or below the
// mark and not needed.
func (s State) Resurrected(versions []int, active int) []int {
	var out []int
	for _, v := range versions {
		if v <= s.RetiredUpTo && !s.Needed(v, active) {
			out = append(out, v)
		}
	}
	return out
}

// Needed reports whether the keyring must hold version v by the state (active is the keyring's active version):
// the active one and, during a rotation, both of its versions, unless the state's rotation removed it. A render or
// a repair that adds such a version back restores a lost key; any other version at or below the mark is a retired
// one coming back. An active version below the mark counts only when the last rotation left it active (an abort
// before the promotion keeps its From, an abort after it returns to its To): a rollback that makes a retired
// version active again must not pass as needed.
func (s State) Needed(v, active int) bool {
	if removed, _ := s.removedBy(); removed(v) {
		return false
	}
	named := v == s.From || v == s.To
	return v == active && (v > s.RetiredUpTo || named) || s.InProgress() && named
}

// ReconstructedIDPrefix starts the id of a rotation the engine reconstructed from a keyring whose state was gone.
const ReconstructedIDPrefix = "reconstructed-"

// Reconstructed reports whether the rotation was reconstructed (Reconstruct): its retirement removes every version
// but the active one.
func (s State) Reconstructed() bool { return strings.HasPrefix(s.RotationID, ReconstructedIDPrefix) }

// Reconstruct returns the rotation a keyring without state is in: Idle with no rotation on record while versions
// other than the active one are present — the annotations erased by `helm upgrade --force` or `--force-replace`,
// or a rotation done by hand before the runbook recorded state. Tokens signed with any of them may live, and
// nothing says until when: it is read as a rotation just promoted (restart every consumer, then retire every other
// version the TTL after that), never as a keyring free to rotate on, which would leave them trusted for good. ok
// is false for any other state.
func Reconstruct(s State, versions []int, active int, now time.Time) (State, bool) {
	if s.InProgress() || s.RotationID != "" || len(versions) < 2 || active == 0 {
		return s, false
	}
	from := 0
	for _, v := range versions {
		if v != active {
			from = max(from, v)
		}
	}
	now = now.UTC().Truncate(time.Second)
	return State{Phase: Promoted, RotationID: ReconstructedIDPrefix + now.Format("20060102T150405Z"), From: from, To: active,
		StartedAt: now, PromotedAt: now, TransitionAt: now, RetiredUpTo: s.RetiredUpTo, TTLInForce: s.TTLInForce}, true
}

// ReconstructedNote says why a run treats the keyring as Reconstruct does, for the run's output, status and plan.
func ReconstructedNote(s State) string {
	return fmt.Sprintf("no rotation is on record while v%d is beside the active v%d (the state was erased, e.g. by helm upgrade --force or --force-replace, or a rotation was done by hand before the runbook recorded state): read as a rotation just promoted, every version but v%d is retired the TTL after the consumers restart", s.From, s.To, s.To)
}
