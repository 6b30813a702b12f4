package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
)

// hookGuardCommand is `rotate-key hook guard`, the chart's pre-upgrade and pre-rollback hook Job.
type hookGuardCommand struct {
	cfg    *action.Config
	a      action.HookGuard
	where  string
	expect string
}

func newHookGuardCommand(c *action.Config) *cobra.Command {
	o := &hookGuardCommand{cfg: c}
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Refuse an upgrade or rollback whose keyring Secret would lose keys (the chart's pre-upgrade/pre-rollback hook)",
		Long: `guard compares the keyring Secret an upgrade or rollback is about to apply — described by the chart in
--expect (versions with fingerprints, active, keep; never key bytes) — with the live Secret, and exits 6 before
Helm applies anything when it would drop a version, change a key, change active or drop the keep policy
(except the step a rotation in progress expects). A rollback to a revision from before a rotation is refused:
use helm rotate-key rollback, which keeps the live keyring.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.a.Namespace = c.Settings.ResolveNamespace()
			if err := o.validate(); err != nil {
				return err
			}
			line, err := o.a.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, line)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.where, "where", "pre-upgrade", "the hook: pre-upgrade or pre-rollback")
	f.StringVar(&o.a.Release, "release", "", "the release (for the message)")
	f.StringVar(&o.a.Secret, "secret", "", "name of the keyring Secret (required)")
	f.StringVar(&o.expect, "expect", "", `what the operation applies: "absent" or "keep=true;active=vN;key.vN=FINGERPRINT;..."`)
	return cmd
}

// validate checks the flags and parses the description (pure).
func (o *hookGuardCommand) validate() error {
	switch o.where {
	case "pre-upgrade":
		o.a.Where = guard.UpgradeHook
	case "pre-rollback":
		o.a.Where = guard.RollbackHook
	default:
		return exitcode.Withf(exitcode.Usage, "--where %q: use pre-upgrade or pre-rollback", o.where)
	}
	if o.a.Secret == "" || o.expect == "" {
		return exitcode.Withf(exitcode.Usage, "--secret and --expect are required: the chart passes them")
	}
	var err error
	if o.a.Expect, err = guard.ParseDescribed(o.expect); err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	return nil
}
