package rotation

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
)

// Consumer is a workload that reads the keyring, as the cluster layer found it.
type Consumer struct {
	Ref ConsumerRef
	// Pinned lists the keyring data keys the pod template names explicitly (secretKeyRef.key, volume items[].key):
	// those versions are never retired.
	Pinned []string
	// Whole: the pod template reads every data key (a volume without items, envFrom); otherwise only Pinned.
	Whole bool
}

// Blind returns the consumers that cannot read data key name: they read the keyring only through the data keys
// they name, and not this one. Promoting a version they cannot read would make their signers fail and their
// verifiers reject its tokens (found by the eighth attack on the traffic instrument: a verifier mounting items
// key.v1 and active rejected every v2 token from the promotion on).
func Blind(consumers []Consumer, name string) []ConsumerRef {
	var out []ConsumerRef
	for _, c := range consumers {
		if !c.Whole && !slices.Contains(c.Pinned, name) {
			out = append(out, c.Ref)
		}
	}
	return out
}

// RolloutStatus is one consumer's progress towards "no pod from before the restart is left".
type RolloutStatus struct {
	Done     bool
	Progress string
}

// Consistent checks that the state annotations agree with the keyring they describe. Every transition writes data
// and state together, so a disagreement means a hand edit; acting on it could remove a version that is still needed
// (e.g. "abort before the promotion" on a state that names the wrong new version).
func Consistent(st State, k *keyring.Keyring) error {
	if !st.InProgress() {
		return nil
	}
	problem := ""
	// In Reverted `to` is the aborted version: outgoing, like `from` in Promoted, and a rotation carries on without
	// an outgoing version that is gone (its tokens are rejected either way; found by the 24th cold read).
	_, hasTo := k.Keys[st.To]
	hasTo = hasTo || st.Phase == Reverted
	t, _ := Forward(st.Phase)
	active := map[string]int{"from": st.From, "to": st.To}[t.Active]
	switch {
	case !hasTo:
		problem = fmt.Sprintf("the state names v%d as the new version, which is not in the keyring", st.To)
	case t.ToNewest && (k.Active != active || st.To != k.Newest() || st.To <= st.From):
		problem = fmt.Sprintf("phase %s needs active = %s (v%d) and to (v%d) = the newest version; the keyring has active v%d, newest v%d", st.Phase, t.Active, active, st.To, k.Active, k.Newest())
	case active != 0 && k.Active != active:
		problem = fmt.Sprintf("phase %s needs active = v%d, the keyring has v%d", st.Phase, active, k.Active)
	}
	if problem == "" {
		return nil
	}
	return &keyring.Violation{Secret: k.Secret, Rule: keyring.RuleTransition, Detail: "the rotation state contradicts the keyring (edited by hand?): " + problem,
		Fix: "restore the state annotations or the keyring from what the Secret's Events record; nothing was changed"}
}

// Retirement is the retirement's data change: the outgoing version, or, in an emergency rotation, every version but
// the new active one (a leaked Secret exposed all of them). Pinned versions and the active one are never removed.
func Retirement(k *keyring.Keyring, st State, pinned []string) (keyring.Change, error) {
	outgoing := []int{st.From}
	if st.Emergency != "" || st.Reconstructed() {
		outgoing = outgoing[:0]
		for _, v := range k.Versions() {
			if v != st.To {
				outgoing = append(outgoing, v)
			}
		}
	}
	var all keyring.Change
	var removed []string
	for _, v := range outgoing {
		if _, present := k.Keys[v]; !present {
			// Removed already (by hand): its tokens are rejected either way, and the rotation must not stick here
			// (found by the eighth cold read of the runbook).
			continue
		}
		c, err := k.Remove(v, pinned)
		if err != nil {
			return keyring.Change{}, err
		}
		all.Delete = append(all.Delete, c.Delete...)
		removed = append(removed, keyring.Kid(v))
	}
	all.Summary = "removed " + strings.Join(removed, ", ")
	if len(removed) == 0 {
		all.Summary = fmt.Sprintf("v%d was already removed", st.From)
	}
	return all, nil
}
