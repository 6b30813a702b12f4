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

// Grace periods before `check` calls something overdue: a retirement may wait a day after retire-after (a
// scheduled run picks it up), and a rollout phase should not sit unfinished for an hour.
const (
	retireGrace = 24 * time.Hour
	stuckAfter  = time.Hour
)

// overdueReason says why the keyring is overdue at now, or "" when it is not.
func overdueReason(st rotation.State, now time.Time) string {
	switch {
	case st.Phase == rotation.Idle && !st.NextRotationDue.IsZero() && now.After(st.NextRotationDue):
		return fmt.Sprintf("the next rotation was due %s (%s ago)", st.NextRotationDue.UTC().Format(time.RFC3339), now.Sub(st.NextRotationDue).Round(time.Minute))
	case st.Phase == rotation.Waiting && now.After(st.RetireAfter.Add(retireGrace)):
		return fmt.Sprintf("v%d could be retired since %s and is still trusted", st.From, st.RetireAfter.UTC().Format(time.RFC3339))
	case st.InProgress() && st.Phase != rotation.Waiting && !st.TransitionAt.IsZero() && now.After(st.TransitionAt.Add(stuckAfter)):
		return fmt.Sprintf("rotation %s has been in phase %s since %s: a run stopped half-way", st.RotationID, st.Phase, st.TransitionAt.UTC().Format(time.RFC3339))
	}
	return ""
}

func overdue(st rotation.State, now time.Time) bool { return overdueReason(st, now) != "" }

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
	if reason := overdueReason(obs.state, obs.now); reason != "" {
		return exitcode.Withf(exitcode.Overdue, "%s/%s is overdue: %s; run: helm -n %s rotate-key %s", o.namespace, o.Secret, reason, o.namespace, o.Release)
	}
	fmt.Fprintf(o.streams.Out, "%s/%s: %s; nothing overdue\n", o.namespace, o.Secret, obs.state)
	return nil
}
