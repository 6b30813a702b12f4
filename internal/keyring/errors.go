package keyring

import "fmt"

// Rule names an invariant of the keyring.
type Rule string

// The invariants; docs/design.md explains each.
const (
	RuleActive        Rule = "active-names-a-present-key"
	RuleVersionNumber Rule = "versions-are-positive-integers"
	RuleOneStyle      Rule = "one-style-per-version"
	RuleEntropy       Rule = "keys-carry-32-random-bytes"
	RulePinned        Rule = "pinned-versions-stay"
	RuleTransition    Rule = "valid-transition"
	RuleRetiredStays  Rule = "retired-versions-stay-retired"
	RuleReadersKnown  Rule = "every-reader-restarted"
	RuleReadable      Rule = "every-consumer-reads-the-new-version"
)

// Violation is a broken invariant. Its message names the Secret, the rule and what to do; never key bytes.
type Violation struct {
	Secret string
	Rule   Rule
	Detail string
	Fix    string
	// Earlier: the run wrote earlier steps before this one was refused (they stand; this one wrote nothing).
	Earlier bool
}

func (v *Violation) Error() string {
	written := "nothing was written"
	if v.Earlier {
		written = "this step wrote nothing (the steps this run took before it stand)"
	}
	return fmt.Sprintf("keyring Secret %s breaks rule %q: %s; %s. To fix: %s", v.Secret, v.Rule, v.Detail, written, v.Fix)
}

func violation(secret string, rule Rule, detail, fix string) error {
	return &Violation{Secret: secret, Rule: rule, Detail: detail, Fix: fix}
}
