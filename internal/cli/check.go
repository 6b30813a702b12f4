package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// overdue applies the one overdue rule (rotation.Overdue) for status and the fleet view.
func overdue(st rotation.State, now time.Time) bool { return rotation.Overdue(st, now) != "" }

// CheckOptions are the arguments of `rotate-key check`.
type CheckOptions struct {
	releaseTarget

	settings *helmenv.Settings
	streams  Streams
}

func newCheckCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	o := &CheckOptions{settings: settings, streams: streams}
	cmd := &cobra.Command{
		Use:   "check RELEASE",
		Short: "Exit 5 when a rotation or retirement is overdue (for cron and CI alerting)",
		Long: "check reads the keyring's state and exits 5 (overdue) when the next rotation is past due, when the old key\n" +
			"is still trusted a day after it could have been retired, or when a rotation stopped half-way for over an hour;\n" +
			"0 otherwise. It changes nothing.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.complete(args, settings)
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Secret, "secret", "", "name of the keyring Secret (default RELEASE"+DefaultSecretSuffix+")")
	return cmd
}

// Run reports and sets the exit code.
func (o *CheckOptions) Run(ctx context.Context) error {
	obs, err := observe(ctx, o.settings, o.namespace, o.Secret, o.Release, rotation.Overrides{})
	if err != nil {
		return err
	}
	if err := obs.require(o.namespace, o.Secret, o.Release); err != nil {
		return err
	}
	if reason := rotation.Overdue(obs.state, obs.now); reason != "" {
		return exitcode.Withf(exitcode.Overdue, "%s/%s is overdue: %s; run: helm -n %s rotate-key %s", o.namespace, o.Secret, reason, o.namespace, o.Release)
	}
	fmt.Fprintf(o.streams.Out, "%s/%s: %s; nothing overdue\n", o.namespace, o.Secret, obs.state)
	return nil
}
