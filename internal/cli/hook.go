package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

const hookLong = `hook runs one phase of a rotation inside the chart's hook Jobs (charts/rotate-key). The Jobs run after
every upgrade, ordered by helm.sh/hook-weight:

  add      starts the rotation requested by the chart value rotate-key.rotation.request, once per request id
  rollout  restarts the consumers and waits until no pod from before the last keyring change is left
  promote  sets active to the new version
  rollout  again, then records retire-after
  retire   removes the old version once retire-after has passed, and restarts the consumers

Each step is a no-op when the rotation is not in the phase it acts on, so every upgrade may run them all and a
failed Job is resumed by the next upgrade. "cron" (the chart's optional CronJob) runs every step: it starts a
rotation when one is due and retires an old key when its TTL has passed.

"guard" (the chart's pre-upgrade and pre-rollback hooks) refuses an operation whose keyring Secret would lose keys.

Configuration comes from the keyring Secret's annotations, which the chart writes. Exit code 0 when the step is
done or not needed (also while the TTL runs), non-zero with a log line saying why otherwise.`

// hookCommand is `rotate-key hook step NAME` and `hook cron`.
type hookCommand struct {
	cfg *action.Config
	a   action.Hook
}

func newHookCommand(c *action.Config) *cobra.Command {
	hook := &cobra.Command{
		Use:   "hook",
		Short: "Run a rotation phase in-cluster (the chart's hook Jobs and CronJob run this)",
		Long:  hookLong,
		Args:  usageArgs(cobra.NoArgs),
	}
	step := &hookCommand{cfg: c}
	stepCmd := &cobra.Command{
		Use:   "step add|rollout|promote|retire",
		Short: "Run one step of the rotation if the rotation is at it (a hook Job)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			step.a.Name = args[0]
			return step.execute(cmd.Context())
		},
	}
	step.addFlags(stepCmd)
	stepCmd.Flags().StringVar(&step.a.Request, "request", "", "the requested rotation id (chart value rotate-key.rotation.request); empty: start nothing")
	cron := &hookCommand{cfg: c, a: action.Hook{Name: action.CronHook}}
	cronCmd := &cobra.Command{
		Use:   "cron",
		Short: "Start a rotation that is due and retire an old key whose TTL has passed (the chart's CronJob)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cron.execute(cmd.Context())
		},
	}
	cron.addFlags(cronCmd)
	hook.AddCommand(stepCmd, cronCmd, newHookGuardCommand(c))
	return hook
}

func (o *hookCommand) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.a.Secret, "secret", "", "name of the keyring Secret (required)")
	cmd.Flags().DurationVar(&o.a.Timeout, "timeout", 10*time.Minute, "how long to wait for each rollout")
}

// execute is Complete → Validate → Run.
func (o *hookCommand) execute(ctx context.Context) error {
	o.a.Namespace = o.cfg.Settings.ResolveNamespace()
	if err := o.validate(); err != nil {
		return err
	}
	res, err := o.a.Run(ctx, o.cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.cfg.Out, "%s/%s: hook %s done; phase %s; next: %s — %s\n", o.a.Namespace, o.a.Secret, o.a.Name, res.State.Phase, res.Decision.Step, res.Decision.Reason)
	return nil
}

// validate checks the step, the Secret and the request id (pure).
func (o *hookCommand) validate() error {
	if o.a.Name != action.CronHook && !rotation.IsHook(o.a.Name) {
		return exitcode.Withf(exitcode.Usage, "unknown hook step %q: use one of %s", o.a.Name, strings.Join(uniq(rotation.ChartHooks()), ", "))
	}
	if o.a.Secret == "" {
		return exitcode.Withf(exitcode.Usage, "--secret is required: the chart passes the keyring Secret's name")
	}
	if o.a.Request != "" && !rotation.ValidRequest(o.a.Request) {
		return exitcode.Withf(exitcode.Usage, "rotation request %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. 2026q4)", o.a.Request)
	}
	if o.a.Timeout <= 0 {
		return exitcode.Withf(exitcode.Usage, "--timeout must be positive")
	}
	return nil
}

// uniq is names without repeats, in order (the chart runs the rollout Job twice).
func uniq(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
