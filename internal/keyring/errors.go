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
)

// Violation is a broken invariant. Its message names the Secret, the rule and what to do; never key bytes.
type Violation struct {
	Secret string
	Rule   Rule
	Detail string
	Fix    string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("keyring Secret %s breaks rule %q: %s; nothing was written. To fix: %s", v.Secret, v.Rule, v.Detail, v.Fix)
}

func violation(secret string, rule Rule, detail, fix string) error {
	return &Violation{Secret: secret, Rule: rule, Detail: detail, Fix: fix}
}
