package keyring

import (
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
)

// Change is a patch of a keyring Secret's data: only the keys it names are touched, so unknown data and the keys
// it does not change stay byte-identical.
type Change struct {
	Set    map[string][]byte
	Delete []string
	// Summary says what the change does, without key material ("add key.v2").
	Summary string
}

// Apply returns a copy of data with c applied.
func Apply(data map[string][]byte, c Change) map[string][]byte {
	out := maps.Clone(data)
	if out == nil {
		out = map[string][]byte{}
	}
	for k, v := range c.Set {
		out[k] = v
	}
	for _, k := range c.Delete {
		delete(out, k)
	}
	return out
}

// Add creates version v in the keyring's style and encoding, leaving `active` alone. v must be above every present
// version (rotation.State.NextVersion says which: never a number used before).
func (k *Keyring) Add(rand io.Reader, v int) (Change, int, error) {
	if v <= k.Newest() {
		return Change{}, 0, violation(k.Secret, RuleTransition, fmt.Sprintf("cannot add %s: %s is present", Kid(v), Kid(k.Newest())), "add a version above the newest")
	}
	key, err := k.Encoding.Generate(rand)
	if err != nil {
		return Change{}, 0, fmt.Errorf("generating key %s for %s: %w", Kid(v), k.Secret, err)
	}
	name := k.Style.DataKey(v)
	return Change{Set: map[string][]byte{name: key}, Summary: "add " + name}, v, nil
}

// Promote makes version v the active one.
func (k *Keyring) Promote(v int) (Change, error) {
	if _, ok := k.Keys[v]; !ok {
		return Change{}, violation(k.Secret, RuleActive, fmt.Sprintf("cannot promote %s: it is not in the Secret", Kid(v)), "add it first (helm rotate-key run)")
	}
	return Change{Set: map[string][]byte{ActiveKey: []byte(Kid(v))}, Summary: "set active to " + Kid(v)}, nil
}

// Remove deletes version v. The active version and versions pinned by a consumer (a pod template naming the data
// key through secretKeyRef.key or a volume's items[].key) are never removed.
func (k *Keyring) Remove(v int, pinned []string) (Change, error) {
	name, ok := k.Names[v]
	if !ok {
		return Change{}, violation(k.Secret, RuleTransition, fmt.Sprintf("cannot remove %s: it is not in the Secret", Kid(v)), "nothing to do")
	}
	if v == k.Active {
		return Change{}, violation(k.Secret, RuleActive, fmt.Sprintf("cannot remove %s: it is the active key", Kid(v)), "promote another version first")
	}
	for _, p := range pinned {
		if p == name {
			return Change{}, violation(k.Secret, RulePinned, fmt.Sprintf("cannot remove %s: a workload names data key %q explicitly (secretKeyRef.key or volume items[].key)", Kid(v), name),
				"change that workload to read the keyring without naming one version, roll it out, then retire again")
		}
	}
	return Change{Delete: []string{name}, Summary: "remove " + name}, nil
}

// Validate checks that data, about to be written, still satisfies every invariant.
func Validate(secret string, data map[string][]byte) error {
	_, err := Parse(secret, data)
	return err
}

// DataKeys lists the data key names of a Secret, sorted: what may be shown instead of its data.
func DataKeys(data map[string][]byte) string {
	names := make([]string, 0, len(data))
	for n := range data {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
