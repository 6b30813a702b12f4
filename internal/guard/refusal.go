package guard

import (
	"fmt"
	"strings"
)

// Where says which layer refused, for the message's advice.
type Where string

const (
	// PostRenderer is `rotate-key guard` (client side, before anything is sent).
	PostRenderer Where = "post-renderer"
	// UpgradeHook is the chart's pre-upgrade hook Job.
	UpgradeHook Where = "pre-upgrade hook"
	// RollbackHook is the chart's pre-rollback hook Job.
	RollbackHook Where = "pre-rollback hook"
)

// Refusal is the guard's verdict when a render would lose keys: what was refused, why, and what to run instead.
// It names versions and rules, never key bytes.
type Refusal struct {
	Release, Namespace, Secret string
	Where                      Where
	Findings                   []Finding
}

func (r *Refusal) Error() string {
	var b strings.Builder
	verb := "upgrade"
	if r.Where == RollbackHook {
		verb = "rollback"
	}
	fmt.Fprintf(&b, "rotate-key guard (%s) refused the %s of release %q: it would break keyring Secret %s/%s; nothing was applied.\n", r.Where, verb, r.Release, r.Namespace, r.Secret)
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  - %s: %s\n", f.Rule, f.Detail)
	}
	fmt.Fprintf(&b, "Probable cause: %s\n", r.cause())
	fmt.Fprintf(&b, "Safe alternative: %s", r.remedy())
	return b.String()
}

// has reports whether the refusal holds a finding of rule.
func (r *Refusal) has(rule Rule) bool {
	for _, f := range r.Findings {
		if f.Rule == rule {
			return true
		}
	}
	return false
}

func (r *Refusal) cause() string {
	switch {
	case r.Where == RollbackHook:
		return "the target revision was rendered before a rotation; rolling back would re-apply its older keyring"
	case r.has(RuleMissing):
		return "the values that render the Secret were dropped: --reset-values, or --set/-f without --reuse-values (Helm then starts from the chart's defaults)"
	case r.has(RuleBytesChanged):
		return "the chart generated new keys: its lookup of the live Secret returned nothing (a client-side dry run, helm template, or no permission to read it), or it renders keys from values"
	case r.has(RuleVersionDrop) || r.has(RuleActiveChanged):
		return "the chart renders the keyring from values that predate the last rotation (key versions added by a rotation live only in the cluster); render it from the live Secret with lookup or the rotate-key library chart (docs/MIGRATIONS.md)"
	case r.has(RuleKeepDropped):
		return "the chart (or a values change) removed the helm.sh/resource-policy: keep annotation"
	}
	return "the rendered keyring Secret is not a valid keyring"
}

func (r *Refusal) remedy() string {
	ns := ""
	if r.Namespace != "" {
		ns = "-n " + r.Namespace + " "
	}
	if r.Where == RollbackHook {
		return fmt.Sprintf("helm %srotate-key rollback %s [REVISION] — rolls the application back to that revision's chart and values while keeping the live keyring", ns, r.Release)
	}
	return fmt.Sprintf("helm %supgrade %s CHART --reuse-values (or --reset-then-reuse-values), or helm %srotate-key upgrade %s CHART [flags] which wires this guard in; to change keys use helm %srotate-key %s", ns, r.Release, ns, r.Release, ns, r.Release)
}
