package rotation

import "fmt"

// AnnoRetiredUpTo records the highest version ever removed from the keyring by a retirement or an abort ("vN").
// No version at or below it may come back: a `helm rollback` to a revision rendered during the TTL wait would re-add
// the retired (possibly leaked) key, and a chart that generates `v1` whenever it is missing would add a fresh,
// unknown v1. Versions below the mark that the keyring still holds (the active one after an abort, say) stay.
const AnnoRetiredUpTo = Prefix + "retired-up-to"

// removedBy returns the versions the state's own rotation retired: its outgoing version (every version below the
// new one for an emergency). The runbook's manual path writes the state but not the mark, so the mark is always at
// least what the state says. (A new version dropped by an abort before the promotion is in the mark only when the
// plugin dropped it: a state alone cannot tell that abort from a finished rotation written without promoted-at.)
func (s State) removedBy() (lowest, highest int) {
	switch {
	case !s.RetiredAt.IsZero() && s.Emergency != "":
		return 1, s.To - 1
	case !s.RetiredAt.IsZero():
		return s.From, s.From
	}
	return 0, 0
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
	if low, high := s.removedBy(); low > 0 && v >= low && v <= high {
		return false
	}
	named := v == s.From || v == s.To
	return v == active && (v > s.RetiredUpTo || named) || s.InProgress() && named
}
