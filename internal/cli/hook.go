package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
	"github.com/tracebloc/helm-rotate-key/internal/version"
)

// hookSteps maps a hook Job's step name to the engine steps it may perform, in the order the chart runs them.
var hookSteps = map[string][]rotation.Step{
	"add":     {rotation.StepStart},
	"rollout": {rotation.StepRollout},
	"promote": {rotation.StepPromote},
	// The last Job retires a key whose TTL has passed on every upgrade, and finishes the restarts after it (or
	// after an abort).
	"retire": {rotation.StepRetire, rotation.StepRollout},
}

// requestPattern is what a rotation request id may look like: it becomes the rotation id and part of the restart
// annotation's value.
var requestPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// HookOptions are the flags of `rotate-key hook step|cron`, which run inside the chart's Jobs.
type HookOptions struct {
	Step    string
	Secret  string
	Request string
	Timeout time.Duration

	namespace string
	settings  *helmenv.Settings
	streams   Streams
	// getenv reads POD_NAME (the lease holder) from the Job's downward API.
	getenv func(string) string
}

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

func newHookCommand(streams Streams, settings *helmenv.Settings, getenv func(string) string) *cobra.Command {
	hook := &cobra.Command{
		Use:   "hook",
		Short: "Run a rotation phase in-cluster (the chart's hook Jobs and CronJob run this)",
		Long:  hookLong,
		Args:  usageArgs(cobra.NoArgs),
	}
	step := &HookOptions{settings: settings, streams: streams, getenv: getenv}
	stepCmd := &cobra.Command{
		Use:   "step add|rollout|promote|retire",
		Short: "Run one step of the rotation if the rotation is at it (a hook Job)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			step.Step = args[0]
			return step.Execute(cmd.Context())
		},
	}
	step.addFlags(stepCmd)
	stepCmd.Flags().StringVar(&step.Request, "request", "", "the requested rotation id (chart value rotate-key.rotation.request); empty: start nothing")
	cron := &HookOptions{settings: settings, streams: streams, getenv: getenv, Step: "cron"}
	cronCmd := &cobra.Command{
		Use:   "cron",
		Short: "Start a rotation that is due and retire an old key whose TTL has passed (the chart's CronJob)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cron.Execute(cmd.Context())
		},
	}
	cron.addFlags(cronCmd)
	hook.AddCommand(stepCmd, cronCmd, newHookGuardCommand(streams, settings))
	return hook
}

func (o *HookOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Secret, "secret", "", "name of the keyring Secret (required)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long to wait for each rollout")
}

// Execute is Complete → Validate → Run.
func (o *HookOptions) Execute(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	o.namespace = o.settings.ResolveNamespace()
	if err := o.Validate(); err != nil {
		return err
	}
	return o.Run(ctx)
}

// Validate checks the step, the Secret and the request id.
func (o *HookOptions) Validate() error {
	if _, ok := hookSteps[o.Step]; !ok && o.Step != "cron" {
		return exitcode.Withf(exitcode.Usage, "unknown hook step %q: use add, rollout, promote or retire", o.Step)
	}
	if o.Secret == "" {
		return exitcode.Withf(exitcode.Usage, "--secret is required: the chart passes the keyring Secret's name")
	}
	if o.Request != "" && !requestPattern.MatchString(o.Request) {
		return exitcode.Withf(exitcode.Usage, "rotation request %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. 2026q4)", o.Request)
	}
	if o.Timeout <= 0 {
		return exitcode.Withf(exitcode.Usage, "--timeout must be positive")
	}
	return nil
}

// Run drives the engine for this step. A lock held by another run (e.g. the pod of a Job that was killed) is
// waited out up to the lease's lifetime instead of failing the upgrade at once.
func (o *HookOptions) Run(ctx context.Context) error {
	obs, err := observe(ctx, o.settings, o.namespace, o.Secret, "", rotation.Overrides{})
	if err != nil {
		return err
	}
	if err := obs.require(o.namespace, o.Secret, ""); err != nil {
		return err
	}
	holder := "pod " + o.getenv("POD_NAME")
	if o.getenv("POD_NAME") == "" {
		holder = holderIdentity()
	}
	obs.target.Instance = holder
	engine := &rotation.Engine{
		Cluster: obs.target, Config: obs.config, Holder: holder, Actor: holder + " via rotate-key " + version.Get().Version + " (hook " + o.Step + ")",
		Rand: rand.Reader, Out: o.streams.Out, RolloutTimeout: o.Timeout, Poll: time.Second, NewRotationID: newRotationID,
		Request: o.Request, Force: o.Request != "", Steps: hookSteps[o.Step], Seen: obs.secret,
	}
	start := o.Step == "cron" || o.Request != ""
	deadline := time.Now().Add(rotation.LeaseDuration + 15*time.Second)
	for {
		res, err := engine.Run(ctx, start)
		var held *rotation.LockHeldError
		if errors.As(err, &held) && time.Now().Before(deadline) {
			fmt.Fprintf(o.streams.Out, "%s/%s: %v; waiting for the lease to be released or to expire\n", o.namespace, o.Secret, err)
			time.Sleep(5 * time.Second)
			continue
		}
		if err != nil {
			fmt.Fprintf(o.streams.Out, "%s/%s: hook %s failed: %v\n", o.namespace, o.Secret, o.Step, err)
			return classify(err)
		}
		fmt.Fprintf(o.streams.Out, "%s/%s: hook %s done; phase %s; next: %s — %s\n", o.namespace, o.Secret, o.Step, res.State.Phase, res.Decision.Step, res.Decision.Reason)
		return nil
	}
}
