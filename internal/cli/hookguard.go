package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
)

// HookGuardOptions are the flags of `rotate-key hook guard`, the chart's pre-upgrade and pre-rollback hook Job:
// the server-side layer of the guard, for upgrades and rollbacks run without the post-renderer.
type HookGuardOptions struct {
	Where   string
	Release string
	Secret  string
	Expect  string

	expect    guard.Described
	namespace string
	settings  *helmenv.Settings
	streams   Streams
}

func newHookGuardCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	o := &HookGuardOptions{settings: settings, streams: streams}
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
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Where, "where", "pre-upgrade", "the hook: pre-upgrade or pre-rollback")
	f.StringVar(&o.Release, "release", "", "the release (for the message)")
	f.StringVar(&o.Secret, "secret", "", "name of the keyring Secret (required)")
	f.StringVar(&o.Expect, "expect", "", `what the operation applies: "absent" or "keep=true;active=vN;key.vN=FINGERPRINT;..."`)
	return cmd
}

// Validate checks the flags and parses the description.
func (o *HookGuardOptions) Validate() error {
	if o.Where != "pre-upgrade" && o.Where != "pre-rollback" {
		return exitcode.Withf(exitcode.Usage, "--where %q: use pre-upgrade or pre-rollback", o.Where)
	}
	if o.Secret == "" || o.Expect == "" {
		return exitcode.Withf(exitcode.Usage, "--secret and --expect are required: the chart passes them")
	}
	var err error
	if o.expect, err = guard.ParseDescribed(o.Expect); err != nil {
		return exitcode.With(exitcode.Usage, err)
	}
	o.namespace = o.settings.ResolveNamespace()
	return nil
}

// Run reads the live Secret (one GET) and refuses a description that would lose keys.
func (o *HookGuardOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	v, err := judgeLive(ctx, o.settings, o.namespace, o.Secret, func(live *guard.Live, now time.Time) []guard.Finding {
		return guard.CheckDescribed(o.expect, live, now)
	})
	if err != nil {
		return fmt.Errorf("rotate-key guard (%s) cannot read keyring Secret %s/%s and refuses, because an unchecked %s could drop keys: %w", o.Where, o.namespace, o.Secret, o.Where, err)
	}
	switch {
	case v.secret == nil:
		fmt.Fprintf(o.streams.Out, "%s/%s: not found; nothing to protect\n", o.namespace, o.Secret)
		return nil
	case len(v.findings) == 0:
		fmt.Fprintf(o.streams.Out, "%s/%s: the %s keeps every key; allowed\n", o.namespace, o.Secret, o.Where)
		return nil
	}
	where := guard.UpgradeHook
	if o.Where == "pre-rollback" {
		where = guard.RollbackHook
	}
	refusal := &guard.Refusal{Release: o.Release, Namespace: o.namespace, Secret: o.Secret, Where: where, Findings: v.findings}
	fmt.Fprintln(o.streams.Out, refusal.Error())
	return v.refuse(ctx, "hook guard", refusal)
}
