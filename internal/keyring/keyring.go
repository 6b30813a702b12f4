// Package keyring is the model of a keyring Secret: key versions, the active one, the naming style and the
// encoding of the keys. It is pure: it takes a Secret's data and returns values and data patches, never talks to
// the API server, and never puts key bytes into an error or a String method.
//
// Invariants, checked by Parse (on every read) and by Validate (before every write):
//   - `active` exists and names a present version (vN);
//   - versions are positive integers, no version present in both styles (key.vN and vN);
//   - every key is non-empty and carries at least 256 bits (32 bytes) of entropy by its alphabet and length, with
//     at least 8 distinct symbols.
//
// Data keys that are neither versions nor `active` are preserved untouched: a change is a patch of the keys it
// changes, applied to the Secret's data as read.
package keyring

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ActiveKey is the data key naming the active version.
const ActiveKey = "active"

// Style is how a chart names its version keys.
type Style string

const (
	// StyleKeyDot names versions key.v1, key.v2, … (the requests-proxy-admin Secret).
	StyleKeyDot Style = "key.vN"
	// StyleBare names versions v1, v2, … (the HC-1 chart's requests-proxy-keys Secret).
	StyleBare Style = "vN"
)

// DataKey returns the data key of version v in this style.
func (s Style) DataKey(v int) string {
	if s == StyleBare {
		return "v" + strconv.Itoa(v)
	}
	return "key.v" + strconv.Itoa(v)
}

// Kid is the key id of version v as tokens and `active` carry it: "vN".
func Kid(v int) string { return "v" + strconv.Itoa(v) }

// ParseKid turns "vN" into N.
func ParseKid(kid string) (int, bool) {
	m := kidPattern.FindStringSubmatch(kid)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil && n > 0
}

var (
	kidPattern = regexp.MustCompile(`^v([0-9]{1,9})$`)
	// versionName matches both styles; group 1 is "key." or "", group 2 the number as written.
	versionName = regexp.MustCompile(`^(key\.)?v([0-9]+)$`)
	// looksLikeVersion matches names a human meant as versions but got wrong (v0, v01, v-1, vX, key.v): rejected
	// rather than silently treated as unknown data.
	looksLikeVersion = regexp.MustCompile(`^(key\.)?v[^a-z]*$`)
)

// Keyring is a parsed keyring Secret. Keys holds the key bytes by version; nothing here ever prints them.
type Keyring struct {
	// Secret is "namespace/name", for messages.
	Secret string
	// Active is the version `active` names.
	Active int
	// Keys maps each version to its key bytes.
	Keys map[int][]byte
	// Names maps each version to the data key it is stored under (its style).
	Names map[int]string
	// Style is the style new versions get: the active version's.
	Style Style
	// Encoding describes the keys, so a new key looks like the others.
	Encoding Encoding
}

// Versions returns the versions in ascending order.
func (k *Keyring) Versions() []int {
	out := make([]int, 0, len(k.Keys))
	for v := range k.Keys {
		out = append(out, v)
	}
	sort.Ints(out)
	return out
}

// Newest returns the highest version.
func (k *Keyring) Newest() int {
	vs := k.Versions()
	return vs[len(vs)-1]
}

// String describes the keyring without key material: "ns/name: versions [v1 v2], active v2, key.vN, alphanumeric(64)".
func (k *Keyring) String() string {
	kids := make([]string, 0, len(k.Keys))
	for _, v := range k.Versions() {
		kids = append(kids, Kid(v))
	}
	return fmt.Sprintf("%s: versions [%s], active %s, style %s, keys %s", k.Secret, strings.Join(kids, " "), Kid(k.Active), k.Style, k.Encoding)
}

// Parse reads a Secret's data into a Keyring and checks every invariant. secret is "namespace/name".
func Parse(secret string, data map[string][]byte) (*Keyring, error) {
	k := &Keyring{Secret: secret, Keys: map[int][]byte{}, Names: map[int]string{}}
	if len(data) == 0 {
		return nil, violation(secret, RuleActive, "the Secret has no data: it holds no key and no `active`",
			"restore it from a backup, or let the chart create it (a first install generates key v1)")
	}
	names := make([]string, 0, len(data))
	for name := range data {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m := versionName.FindStringSubmatch(name)
		if m == nil {
			if name != ActiveKey && looksLikeVersion.MatchString(name) {
				return nil, violation(secret, RuleVersionNumber, fmt.Sprintf("data key %q looks like a key version but is not key.vN or vN with N a positive integer", name),
					"rename it to a valid version (e.g. key.v3) or remove it")
			}
			continue
		}
		n, err := strconv.Atoi(m[2])
		if err != nil || n <= 0 || m[2][0] == '0' || len(m[2]) > 9 {
			return nil, violation(secret, RuleVersionNumber, fmt.Sprintf("data key %q: versions are positive integers without leading zeros", name),
				"rename it to a valid version or remove it")
		}
		if other, dup := k.Names[n]; dup {
			return nil, violation(secret, RuleOneStyle, fmt.Sprintf("version v%d is present twice, as %q and %q", n, other, name),
				"keep one of them (the one your application reads) and delete the other")
		}
		k.Keys[n], k.Names[n] = data[name], name
	}
	if len(k.Keys) == 0 {
		return nil, violation(secret, RuleActive, "the Secret holds no key version (key.vN or vN)",
			"if this is not the keyring, name the right Secret (--secret NAME; the runbook's 'Which layout do you have?' finds it); if it is and its versions were deleted, restore them from a backup — never generate new ones, which would reject every live token")
	}
	activeRaw, ok := data[ActiveKey]
	if !ok {
		return nil, violation(secret, RuleActive, "the Secret has no `active` entry", fmt.Sprintf("set active to the version your signers use, e.g. %s", Kid(maxKey(k.Keys))))
	}
	active, ok := ParseKid(strings.TrimSpace(string(activeRaw)))
	if !ok {
		return nil, violation(secret, RuleActive, fmt.Sprintf("`active` is not a key id of the form vN (%d bytes)", len(activeRaw)),
			fmt.Sprintf("set active to one of the present versions, e.g. %s", Kid(maxKey(k.Keys))))
	}
	if _, ok := k.Keys[active]; !ok {
		return nil, violation(secret, RuleActive, fmt.Sprintf("`active` names %s, which is not in the Secret", Kid(active)),
			"restore that key from a backup, or set active to a present version")
	}
	k.Active = active
	k.Style = StyleKeyDot
	if k.Names[active] == StyleBare.DataKey(active) {
		k.Style = StyleBare
	}
	for _, v := range k.Versions() {
		if err := checkEntropy(k.Keys[v]); err != nil {
			return nil, violation(secret, RuleEntropy, fmt.Sprintf("key %s %s", k.Names[v], err), "replace it with a key from a cryptographic random source (at least 32 random bytes)")
		}
	}
	k.Encoding = DetectEncoding(k.Keys[active])
	return k, nil
}

func maxKey(m map[int][]byte) int {
	best := 0
	for v := range m {
		best = max(best, v)
	}
	return best
}

// minEntropyBits is the least entropy a key must carry: 32 bytes.
const minEntropyBits = 256

// checkEntropy estimates a key's entropy from its alphabet and length; the error describes it without the bytes.
func checkEntropy(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("is empty")
	}
	distinct := map[byte]bool{}
	for _, b := range key {
		distinct[b] = true
	}
	if len(distinct) < 8 {
		return fmt.Errorf("uses only %d distinct symbols in %d bytes: not random", len(distinct), len(key))
	}
	enc := DetectEncoding(key)
	bits := float64(len(key)) * math.Log2(float64(enc.alphabetSize()))
	if bits < minEntropyBits {
		return fmt.Errorf("carries about %.0f bits of entropy (%s), below the %d required", bits, enc, minEntropyBits)
	}
	return nil
}
