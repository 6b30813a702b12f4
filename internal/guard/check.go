package guard

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// KeepAnnotation is Helm's resource policy that keeps the Secret on uninstall.
const KeepAnnotation = "helm.sh/resource-policy"

// Rule names what a refusal is about.
type Rule string

// The rules, each a way a render would lose a key a live token may need.
const (
	RuleMissing       Rule = "secret-not-rendered"
	RuleKeepDropped   Rule = "keep-policy-dropped"
	RuleVersionDrop   Rule = "version-dropped"
	RuleBytesChanged  Rule = "key-bytes-changed"
	RuleActiveChanged Rule = "active-changed"
	RuleRetiredBack   Rule = "version-retired"
	RuleInvalid       Rule = "invalid-keyring"
)

// Finding is one reason to refuse. Versions are kids ("v2"), never key bytes.
type Finding struct {
	Rule     Rule
	Versions []string
	Detail   string
}

// Live is the keyring Secret as the API server has it now.
type Live struct {
	Data        map[string][]byte
	Annotations map[string]string
}

// Check compares what a render would apply (rendered; nil when the render lacks the Secret) with the live Secret
// (nil: not found, e.g. a first install — anything passes). now is the API server's time, for the one change a
// rotation in progress may expect from a render: promoting the new version once every consumer knows it, or
// dropping the old one once its TTL has passed.
func Check(rendered *Rendered, live *Live, now time.Time) []Finding {
	return compare(rendered, live, now, true)
}

// compare is Check; validate also checks the rendered keyring's invariants (not possible on fingerprints).
func compare(rendered *Rendered, live *Live, now time.Time, validate bool) []Finding {
	if live == nil {
		return nil
	}
	if rendered == nil {
		return []Finding{{Rule: RuleMissing, Detail: "the render does not contain the keyring Secret: Helm would stop managing it (an orphan), and a later upgrade that renders it again would generate new keys"}}
	}
	var out []Finding
	if rendered.Annotations[KeepAnnotation] != "keep" {
		out = append(out, Finding{Rule: RuleKeepDropped, Detail: fmt.Sprintf("the render drops the %s: keep annotation, so helm uninstall would delete the keys live tokens need", KeepAnnotation)})
	}
	expect := rotation.Decision{Step: rotation.StepNothing}
	st, err := rotation.ParseState(live.Annotations)
	if err == nil { // an unreadable state expects nothing
		expect = rotation.Next(st, now, false, false)
	}
	liveVersions := versions(live.Data)
	var dropped, changed []string
	for name, v := range liveVersions {
		r, ok := rendered.Data[name]
		switch {
		case !ok && expect.Step == rotation.StepRetire && v == st.From:
			// the retirement the rotation is waiting for
		case !ok:
			dropped = append(dropped, keyring.Kid(v))
		case !bytes.Equal(r, live.Data[name]):
			changed = append(changed, keyring.Kid(v))
		}
	}
	if len(dropped) > 0 {
		sort.Strings(dropped)
		out = append(out, Finding{Rule: RuleVersionDrop, Versions: dropped, Detail: fmt.Sprintf("the render removes %s, which the live Secret has and tokens may still be signed with", strings.Join(dropped, ", "))})
	}
	if len(changed) > 0 {
		sort.Strings(changed)
		out = append(out, Finding{Rule: RuleBytesChanged, Versions: changed, Detail: fmt.Sprintf("the render changes the key bytes of %s: every token signed with the live key would be rejected", strings.Join(changed, ", "))})
	}
	liveActive, renderedActive := string(live.Data[keyring.ActiveKey]), string(rendered.Data[keyring.ActiveKey])
	if err == nil {
		active, _ := keyring.ParseKid(liveActive)
		var back []string
		for name, v := range versions(rendered.Data) {
			if _, present := live.Data[name]; !present && v <= st.RetiredUpTo && !st.Needed(v, active) {
				back = append(back, keyring.Kid(v))
			}
		}
		if len(back) > 0 {
			sort.Strings(back)
			out = append(out, Finding{Rule: RuleRetiredBack, Versions: back, Detail: fmt.Sprintf("the render adds back %s, retired already (%s v%d): a retired key may have leaked, and a key generated anew under its number is not the one tokens name", strings.Join(back, ", "), rotation.AnnoRetiredUpTo, st.RetiredUpTo)})
		}
	}
	if renderedActive != liveActive && !(expect.Step == rotation.StepPromote && renderedActive == keyring.Kid(st.To)) {
		out = append(out, Finding{Rule: RuleActiveChanged, Versions: []string{liveActive, renderedActive}, Detail: fmt.Sprintf("the render sets active to %q, the live Secret has %q", renderedActive, liveActive)})
	}
	if len(out) == 0 && validate {
		if err := keyring.Validate("rendered", rendered.Data); err != nil {
			out = append(out, Finding{Rule: RuleInvalid, Detail: err.Error()})
		}
	}
	return out
}

// CheckOffline checks what the stream alone proves: a rendered keyring Secret keeps the keep policy and is a valid
// keyring. A missing Secret cannot be judged without the cluster.
func CheckOffline(rendered *Rendered) []Finding {
	if rendered == nil {
		return nil
	}
	var out []Finding
	if rendered.Annotations[KeepAnnotation] != "keep" {
		out = append(out, Finding{Rule: RuleKeepDropped, Detail: fmt.Sprintf("the rendered keyring Secret lacks the %s: keep annotation", KeepAnnotation)})
	}
	if err := keyring.Validate("rendered", rendered.Data); err != nil {
		out = append(out, Finding{Rule: RuleInvalid, Detail: err.Error()})
	}
	return out
}

// versions maps each version data key of data to its number.
func versions(data map[string][]byte) map[string]int {
	out := map[string]int{}
	for name := range data {
		kid := strings.TrimPrefix(name, "key.")
		if v, ok := keyring.ParseKid(kid); ok {
			out[name] = v
		}
	}
	return out
}
