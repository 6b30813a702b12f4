package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// DefaultSecretSuffix names the keyring Secret of a release when --secret is not given (action.DefaultSecretSuffix).
const DefaultSecretSuffix = action.DefaultSecretSuffix

const runLong = `run starts or resumes the rotation of a release's keyring Secret:

  1. add v(N+1), active stays vN
  2. restart every consumer and wait until no pod from before the add is left
  3. promote: active = v(N+1)
  4. restart the consumers again (a signer that read active at start keeps using vN until it restarts),
     and record retire-after
  ... then it stops (exit code 3) and prints when and how to finish:
  5. run after retire-after: remove vN, restart the consumers once more, record the next rotation's due date.

retire-after = end of the post-promotion rollout + TTL + clock-skew margin (5 minutes, or the Secret's annotation
rotate-key.tracebloc.io/clock-skew-seconds: the leeway your verifiers allow on exp plus how far their clocks may
run behind the signers'). The next rotation is due one
interval after the promotion, but never before the day after retire-after or after the finish.
--emergency --reason "INC-..." (a leaked key): in any phase, add a fresh key, roll out, promote, roll out, then
retire EVERY other version at once; their live tokens are rejected. The same reason never rotates twice.

The state lives in annotations on the Secret: a crash anywhere, or a 90-day pause, resumes where it stopped.
Repeated runs never add a second key. A live run elsewhere holds a lock (a lease on the Secret): another run is
refused with the holder named; --take-over takes it from a run that is known to be dead (never from the runbook's
manual rollout, whose lock lapses 3 minutes after its shell stops).

On the hook path (a release whose chart has the rotation hook Jobs) each rollout is bounded by the chart's
rotate-key.rotation.rolloutTimeoutSeconds; --timeout then bounds the whole helm upgrade (plus 5 minutes). A
hook-path helm that died (the machine, kill -9) leaves the release pending-upgrade: rerun the same command on the
same machine; it sees that helm is gone, waits for the hook Jobs it started, forgets that revision (Helm's record
only) and carries on. From another machine it waits until that helm would have timed out (or use --local). A
release left pending-rollback by a rollback the chart's guard hook refused (e.g. helm upgrade --atomic whose
rotation hook Job outlived its timeout) is cleared the same way: Helm applied nothing.`

const retireLong = `retire resumes a rotation in progress and, once the token TTL has passed, retires the old key and
restarts the consumers. It never starts a new rotation, so it is safe to schedule (cron, CI): it exits 3 while
the TTL runs and 0 when there is nothing to do.`

const abortLong = `abort stops the rotation in progress.
  Before the promotion: removes the new key (nothing was signed with it); active stays vN.
  After the promotion: sets active back to vN and KEEPS v(N+1), because tokens may already be signed with it, then
  restarts the consumers so every signer uses vN again. The rotation then waits like any other: v(N+1) is
  retired by the first run after its retire-after (TTL + clock-skew margin from now), so it is not trusted forever.
After the old key was retired there is nothing to undo: finish the rotation with run.`

// rotateCommand is run, retire, abort and `rotate-key RELEASE`: flags bound onto an action.Rotate, plus the ones
// that need parsing.
type rotateCommand struct {
	cfg       *action.Config
	a         action.Rotate
	ttl       string
	interval  string
	consumers []string
	force     bool
	reason    string
}

func newRotateCommand(c *action.Config, mode action.Mode) *rotateCommand {
	return &rotateCommand{cfg: c, a: action.Rotate{Mode: mode}}
}

func newRunCommand(c *action.Config) *cobra.Command {
	return newEngineCommand(c, action.ModeRun, "run RELEASE", "Start, resume or finish the rotation of a release's keys (also: rotate-key RELEASE)", runLong)
}

func newRetireCommand(c *action.Config) *cobra.Command {
	return newEngineCommand(c, action.ModeRetire, "retire RELEASE", "Finish a rotation whose TTL has passed (never starts one; safe to schedule)", retireLong)
}

func newAbortCommand(c *action.Config) *cobra.Command {
	return newEngineCommand(c, action.ModeAbort, "abort RELEASE", "Stop the rotation in progress (before promotion: drop the new key; after: revert active)", abortLong)
}

func newEngineCommand(c *action.Config, mode action.Mode, use, short, long string) *cobra.Command {
	o := newRotateCommand(c, mode)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.execute(cmd.Context(), args)
		},
	}
	o.addFlags(cmd)
	return cmd
}

// addFlags registers the run flags on cmd (the root command takes them too, for `rotate-key RELEASE`).
func (o *rotateCommand) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.a.Secret, "secret", "", "name of the keyring Secret (default RELEASE"+DefaultSecretSuffix+")")
	f.StringVar(&o.ttl, "ttl", "", "token TTL: how long after the promotion the old key stays (seconds, or a duration like 90d/2160h); overrides the configured TTL")
	f.StringVar(&o.interval, "interval", "", "rotation interval used for the next due date (e.g. 90d)")
	f.StringArrayVar(&o.consumers, "consumer", nil, "a workload that reads the keyring, KIND/NAME (repeatable; default: discovered)")
	f.BoolVar(&o.force, "force", false, "rotate although the next rotation is not due, or accept a --ttl shorter than configured (needs --reason)")
	f.StringVar(&o.reason, "reason", "", "why --force is used (recorded in the Events)")
	f.BoolVar(&o.a.TakeOver, "take-over", false, "take the rotation lock from another run that holds it (only when that run is dead)")
	f.BoolVarP(&o.a.Yes, "yes", "y", false, "do not ask for confirmation (scripts)")
	f.DurationVar(&o.a.Timeout, "timeout", 10*time.Minute, "how long to wait for each rollout before stopping (the rotation resumes on the next run); on the hook path the chart's rotate-key.rotation.rolloutTimeoutSeconds bounds each rollout and this bounds the helm upgrade (plus 5 minutes)")
	f.BoolVar(&o.a.Local, "local", false, "rotate from this machine even when the release's chart has the rotation hook Jobs")
	f.BoolVar(&o.a.Emergency, "emergency", false, "a key leaked: in any phase, add a fresh key, roll out, promote, roll out, then retire EVERY other version at once — their live tokens are rejected (needs --reason; runs from this machine)")
	f.StringVar(&o.a.Chart, "chart", "", "hook path: the chart to upgrade with (path, URL or repo/name) instead of the release's stored chart")
}

// execute is Complete → Validate → Run.
func (o *rotateCommand) execute(ctx context.Context, args []string) error {
	o.complete(args)
	if err := o.validate(); err != nil {
		return err
	}
	res, err := o.a.Run(ctx, o.cfg)
	if err != nil {
		return err
	}
	return printRotation(o.cfg, &o.a, res)
}

// complete fills the release, the Secret name and the namespace.
func (o *rotateCommand) complete(args []string) {
	o.a.Release = args[0]
	o.a.SecretGiven = o.a.Secret != ""
	if o.a.Secret == "" {
		o.a.Secret = o.a.Release + DefaultSecretSuffix
	}
	o.a.Namespace = o.cfg.Settings.ResolveNamespace()
}

// validate parses the durations and consumers and checks flag combinations (pure).
func (o *rotateCommand) validate() error {
	var err error
	ov := &o.a.Overrides
	if o.ttl != "" {
		if ov.TTL, err = rotation.ParseTTL(o.ttl); err != nil {
			return exitcode.Withf(exitcode.Usage, "--ttl: %v", err)
		}
	}
	if o.interval != "" {
		if ov.Interval, err = rotation.ParseDuration(o.interval); err != nil {
			return exitcode.Withf(exitcode.Usage, "--interval: %v", err)
		}
	}
	if ov.Consumers, err = rotation.ParseConsumers(strings.Join(o.consumers, ",")); err != nil {
		return exitcode.Withf(exitcode.Usage, "--consumer: %v", err)
	}
	ov.Force, ov.Reason = o.force, strings.TrimSpace(o.reason) // recorded with the rotation: an emergency is recognised by it
	if o.a.Emergency && (o.a.Mode != action.ModeRun || ov.Reason == "" || o.ttl != "" || o.a.Chart != "") {
		return exitcode.Withf(exitcode.Usage, "--emergency goes with run and --reason \"...\" (recorded with the rotation), and takes no --ttl or --chart: it waits for no TTL and runs from this machine")
	}
	if ov.Force && ov.Reason == "" {
		return exitcode.Withf(exitcode.Usage, "--force needs --reason \"...\" (it is recorded with the rotation)")
	}
	if o.a.Timeout <= 0 {
		return exitcode.Withf(exitcode.Usage, "--timeout must be positive")
	}
	return nil
}

// printRotation prints where the rotation stands and the command to run next; a rotation waiting for the TTL is
// exit code 3.
func printRotation(c *action.Config, a *action.Rotate, res action.RotateResult) error {
	ns := ""
	if c.Settings.Namespace != "" {
		ns = " -n " + a.Namespace
	}
	if res.Decision.Step == rotation.StepWaitTTL {
		local := ""
		if a.Local {
			local = " --local"
		}
		stays := fmt.Sprintf("v%d stays until every token signed with it has expired", res.State.From)
		if res.Keyring != nil && res.Keyring.Keys[res.State.From] == nil {
			stays = fmt.Sprintf("v%d is gone already (its tokens are rejected); the retirement is recorded once the TTL has passed", res.State.From)
		}
		fmt.Fprintf(c.Out, "Waiting: v%d is active; %s.\nFinish after %s (in %s) with:\n  helm%s rotate-key %s%s%s\n",
			res.State.To, stays, res.Decision.Until.UTC().Format(time.RFC3339), res.Waiting, ns, a.Release, a.SecretFlag(), local)
		return exitcode.Withf(exitcode.Waiting, "rotation %s waits for the token TTL until %s", res.State.RotationID, res.Decision.Until.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(c.Out, "%s\n", res.Decision.Reason)
	if !res.State.NextRotationDue.IsZero() {
		fmt.Fprintf(c.Out, "Next rotation due %s.\n", res.State.NextRotationDue.UTC().Format(time.RFC3339))
	}
	return nil
}
