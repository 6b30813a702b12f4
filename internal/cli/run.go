package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
	"github.com/tracebloc/helm-rotate-key/internal/version"
)

// RunOptions are the flags and arguments of `rotate-key run` (and of `rotate-key RELEASE`).
type RunOptions struct {
	Release   string
	Secret    string
	TTL       string
	Interval  string
	Consumers []string
	Force     bool
	Reason    string
	TakeOver  bool
	Yes       bool
	Timeout   time.Duration
	// Local rotates from this machine even when the release's chart has the rotation hook Jobs.
	Local bool
	// Chart is the chart the hook path upgrades with instead of the release's stored chart.
	Chart string
	// Emergency rotates a leaked keyring now, in any phase, and retires every other version without waiting for
	// the TTL (needs --reason; always runs from this machine).
	Emergency bool

	// mode is "run" (start, resume or finish), "retire" (resume or finish, never start) or "abort".
	mode string
	// secretGiven is true when --secret was set; otherwise the hook Jobs' Secret wins over the default name.
	secretGiven bool
	overrides   rotation.Overrides
	namespace   string
	settings    *helmenv.Settings
	streams     Streams
	// isTerminal reports whether stdin is a terminal (replaced in tests).
	isTerminal func() bool
}

const runLong = `run starts or resumes the rotation of a release's keyring Secret:

  1. add v(N+1), active stays vN
  2. restart every consumer and wait until no pod from before the add is left
  3. promote: active = v(N+1)
  4. restart the consumers again (a signer that read active at start keeps using vN until it restarts),
     and record retire-after
  ... then it stops (exit code 3) and prints when and how to finish:
  5. run after retire-after: remove vN, restart the consumers once more, record the next rotation's due date.

retire-after = end of the post-promotion rollout + TTL + 60 s clock-skew margin. The next rotation is due one
interval after the promotion, but never before the day after retire-after or after the finish.
--emergency --reason "INC-..." (a leaked key): in any phase, add a fresh key, roll out, promote, roll out, then
retire EVERY other version at once; their live tokens are rejected. The same reason never rotates twice.

The state lives in annotations on the Secret: a crash anywhere, or a 90-day pause, resumes where it stopped.
Repeated runs never add a second key. A live run elsewhere holds a lock (a lease on the Secret): another run is
refused with the holder named; --take-over takes it from a run that is known to be dead (never from the runbook's
manual rollout, whose lock lapses 3 minutes after its shell stops).`

const retireLong = `retire resumes a rotation in progress and, once the token TTL has passed, retires the old key and
restarts the consumers. It never starts a new rotation, so it is safe to schedule (cron, CI): it exits 3 while
the TTL runs and 0 when there is nothing to do.`

const abortLong = `abort stops the rotation in progress.
  Before the promotion: removes the new key (nothing was signed with it); active stays vN.
  After the promotion: sets active back to vN and KEEPS v(N+1), because tokens may already be signed with it, then
  restarts the consumers so every signer uses vN again. The rotation then waits like any other: v(N+1) is
  retired by the first run after its retire-after (TTL + clock-skew margin from now), so it is not trusted forever.
After the old key was retired there is nothing to undo: finish the rotation with run.`

func newRunCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	return newEngineCommand(streams, settings, "run", "run RELEASE", "Start, resume or finish the rotation of a release's keys (also: rotate-key RELEASE)", runLong)
}

func newRetireCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	return newEngineCommand(streams, settings, "retire", "retire RELEASE", "Finish a rotation whose TTL has passed (never starts one; safe to schedule)", retireLong)
}

func newAbortCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	return newEngineCommand(streams, settings, "abort", "abort RELEASE", "Stop the rotation in progress (before promotion: drop the new key; after: revert active)", abortLong)
}

func newEngineCommand(streams Streams, settings *helmenv.Settings, mode, use, short, long string) *cobra.Command {
	o := &RunOptions{settings: settings, streams: streams, isTerminal: stdinIsTerminal, mode: mode}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.Execute(cmd.Context(), args)
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// AddFlags registers the run flags on cmd (the root command takes them too, for `rotate-key RELEASE`).
func (o *RunOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Secret, "secret", "", "name of the keyring Secret (default RELEASE"+DefaultSecretSuffix+")")
	f.StringVar(&o.TTL, "ttl", "", "token TTL: how long after the promotion the old key stays (seconds, or a duration like 90d/2160h); overrides the configured TTL")
	f.StringVar(&o.Interval, "interval", "", "rotation interval used for the next due date (e.g. 90d)")
	f.StringArrayVar(&o.Consumers, "consumer", nil, "a workload that reads the keyring, KIND/NAME (repeatable; default: discovered)")
	f.BoolVar(&o.Force, "force", false, "rotate although the next rotation is not due, or accept a --ttl shorter than configured (needs --reason)")
	f.StringVar(&o.Reason, "reason", "", "why --force is used (recorded in the Events)")
	f.BoolVar(&o.TakeOver, "take-over", false, "take the rotation lock from another run that holds it (only when that run is dead)")
	f.BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation (scripts)")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long to wait for each rollout before stopping (the rotation resumes on the next run)")
	f.BoolVar(&o.Local, "local", false, "rotate from this machine even when the release's chart has the rotation hook Jobs")
	f.BoolVar(&o.Emergency, "emergency", false, "a key leaked: in any phase, add a fresh key, roll out, promote, roll out, then retire EVERY other version at once — their live tokens are rejected (needs --reason; runs from this machine)")
	f.StringVar(&o.Chart, "chart", "", "hook path: the chart to upgrade with (path, URL or repo/name) instead of the release's stored chart")
}

// Execute is Complete → Validate → Run.
func (o *RunOptions) Execute(ctx context.Context, args []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	o.Complete(args)
	if err := o.Validate(); err != nil {
		return err
	}
	return o.Run(ctx)
}

// Complete fills the release, the Secret name and the namespace.
func (o *RunOptions) Complete(args []string) {
	o.Release = args[0]
	o.secretGiven = o.Secret != ""
	if o.Secret == "" {
		o.Secret = o.Release + DefaultSecretSuffix
	}
	o.namespace = o.settings.ResolveNamespace()
	if o.mode == "" {
		o.mode = "run"
	}
}

// Validate parses the durations and consumers and checks flag combinations.
func (o *RunOptions) Validate() error {
	var err error
	if o.TTL != "" {
		if o.overrides.TTL, err = parseTTL(o.TTL); err != nil {
			return exitcode.Withf(exitcode.Usage, "--ttl %q: %v", o.TTL, err)
		}
	}
	if o.Interval != "" {
		if o.overrides.Interval, err = rotation.ParseDuration(o.Interval); err != nil {
			return exitcode.Withf(exitcode.Usage, "--interval: %v", err)
		}
	}
	if o.overrides.Consumers, err = rotation.ParseConsumers(strings.Join(o.Consumers, ",")); err != nil {
		return exitcode.Withf(exitcode.Usage, "--consumer: %v", err)
	}
	o.Reason = strings.TrimSpace(o.Reason) // recorded with the rotation: an emergency is recognised by it
	if o.Emergency && (o.mode != "run" || o.Reason == "" || o.TTL != "" || o.Chart != "") {
		return exitcode.Withf(exitcode.Usage, "--emergency goes with run and --reason \"...\" (recorded with the rotation), and takes no --ttl or --chart: it waits for no TTL and runs from this machine")
	}
	if o.Force && o.Reason == "" {
		return exitcode.Withf(exitcode.Usage, "--force needs --reason \"...\" (it is recorded with the rotation)")
	}
	if o.Timeout <= 0 {
		return exitcode.Withf(exitcode.Usage, "--timeout must be positive")
	}
	o.overrides.Force, o.overrides.Reason = o.Force, o.Reason
	return nil
}

func stdinIsTerminal() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

func parseTTL(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, errors.New("not a number of days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

// Run connects, resolves the configuration, shows the plan, and drives the engine.
func (o *RunOptions) Run(ctx context.Context) error {
	obs, hooks, useHooks, err := o.observe(ctx)
	if err != nil {
		return err
	}
	if useHooks {
		if err := obs.require(o.namespace, o.Secret, o.Release); err != nil {
			return err
		}
		return o.runThroughHooks(ctx, obs, hooks)
	}
	if err := obs.require(o.namespace, o.Secret, o.Release); err != nil {
		return err
	}
	holder := holderIdentity()
	obs.target.Instance = holder
	engine := &rotation.Engine{
		Cluster: obs.target, Config: obs.config, Holder: holder, Actor: actor(), TakeOver: o.TakeOver, Force: o.Force,
		HolderAlive: holderAlive, Rand: rand.Reader, Out: o.streams.Out, RolloutTimeout: o.Timeout, Poll: time.Second,
		NewRotationID: newRotationID, Seen: obs.secret,
	}
	if o.Emergency {
		engine.Emergency = o.Reason
		fmt.Fprintln(o.streams.Out, emergencyCost(obs.state, obs.keyring, o.Reason))
	}
	if !o.Yes {
		if !o.isTerminal() {
			return exitcode.Withf(exitcode.Usage, "not a terminal, so nobody can confirm: review with `rotate-key plan %s` and rerun with --yes", o.Release)
		}
		d := rotation.Next(obs.state, obs.now, o.mode == "run", o.Force)
		what := fmt.Sprintf("%s — %s", d.Step, d.Reason)
		switch {
		case o.mode == "abort":
			what = "abort rotation " + obs.state.RotationID
		case o.Emergency && rotation.EmergencyPending(obs.state, o.Reason):
			what = "EMERGENCY rotation (" + o.Reason + "), cost above"
		}
		fmt.Fprintf(o.streams.Out, "Keyring %s/%s: %s. Next: %s\nTTL %s (%s); consumers: %s\nProceed? [y/N] ",
			o.namespace, o.Secret, obs.state, what, obs.config.TTL, obs.config.TTLSource, obs.config.ConsumersSource)
		if !confirmed(o.streams.In) {
			return exitcode.Withf(exitcode.Usage, "not confirmed; nothing was changed")
		}
	}
	var res rotation.Result
	if o.mode == "abort" {
		res, err = engine.Abort(ctx)
	} else {
		res, err = engine.Run(ctx, o.mode == "run")
	}
	if errors.Is(err, rotation.ErrRolloutTimeout) {
		return fmt.Errorf("%w\nResume with: %s", err, o.resumeCommand())
	}
	if err != nil {
		return classify(err)
	}
	return o.report(res)
}

// observe reads the release and its keyring, and decides the path: the hook Jobs' own --secret wins over the
// default Secret name (not over --secret).
func (o *RunOptions) observe(ctx context.Context) (*observation, release.RotationHooks, bool, error) {
	obs, err := observe(ctx, o.settings, o.namespace, o.Secret, o.Release, o.overrides)
	if err != nil {
		return nil, release.RotationHooks{}, false, err
	}
	hooks, ok := o.hookPath(obs)
	if ok && !o.secretGiven && hooks.Secret != "" && hooks.Secret != o.Secret {
		o.Secret = hooks.Secret
		obs, err = observe(ctx, o.settings, o.namespace, o.Secret, o.Release, o.overrides)
	}
	return obs, hooks, ok, err
}

// hookPath reports whether this run goes through the release's hook Jobs: a run or retire (an abort is always
// local) of a release whose last render has them, unless --local.
func (o *RunOptions) hookPath(obs *observation) (release.RotationHooks, bool) {
	if o.Local || o.Emergency || o.mode == "abort" || obs.record == nil {
		return release.RotationHooks{}, false
	}
	return release.FindRotationHooks(obs.record)
}

// emergencyCost states, before anything changes, what an emergency rotation costs: the versions it will retire and
// so every live token signed with them that will be rejected.
func emergencyCost(st rotation.State, k *keyring.Keyring, reason string) string {
	if k == nil {
		return ""
	}
	if !rotation.EmergencyPending(st, reason) {
		return fmt.Sprintf("Emergency rotation %s (%s) is in progress or has run (%s): resuming it, never starting a second one for the same reason.", st.RotationID, st.Emergency, st.Phase)
	}
	kids := make([]string, 0, len(k.Keys))
	for _, v := range k.Versions() {
		kids = append(kids, keyring.Kid(v))
	}
	return fmt.Sprintf("EMERGENCY ROTATION — cost: a fresh %s is added and rolled out, then promoted and rolled out; then %s are removed at once.\n"+
		"Every live token signed with %s is REJECTED from that moment (a few minutes from now): clients must get a new token.",
		keyring.Kid(k.Newest()+1), strings.Join(kids, ", "), strings.Join(kids, " or "))
}

// confirmed reads one answer line: only y or yes proceeds.
func confirmed(in io.Reader) bool {
	answer, _ := bufio.NewReader(in).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(answer))
	return a == "y" || a == "yes"
}

// resumeCommand is the command line that continues this rotation.
func (o *RunOptions) resumeCommand() string {
	return "helm -n " + o.namespace + " rotate-key " + o.Release + o.secretFlag() + " --yes"
}

// secretFlag is " --secret NAME" when the keyring is not at the default name, for the commands this run prints.
func (o *RunOptions) secretFlag() string {
	if o.Secret == o.Release+DefaultSecretSuffix {
		return ""
	}
	return " --secret " + o.Secret
}

// report prints where the rotation stands and the command to run next.
func (o *RunOptions) report(res rotation.Result) error {
	ns := ""
	if o.settings.Namespace != "" {
		ns = " -n " + o.namespace
	}
	switch res.Decision.Step {
	case rotation.StepWaitTTL:
		fmt.Fprintf(o.streams.Out, "Waiting: v%d is active; v%d stays until every token signed with it has expired.\nFinish after %s (in %s) with:\n  helm%s rotate-key %s%s\n",
			res.State.To, res.State.From, res.State.RetireAfter.UTC().Format(time.RFC3339), time.Until(res.State.RetireAfter).Round(time.Second), ns, o.Release, o.secretFlag())
		return exitcode.Withf(exitcode.Waiting, "rotation %s waits for the token TTL until %s", res.State.RotationID, res.State.RetireAfter.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(o.streams.Out, "%s\n", res.Decision.Reason)
		if !res.State.NextRotationDue.IsZero() {
			fmt.Fprintf(o.streams.Out, "Next rotation due %s.\n", res.State.NextRotationDue.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// classify attaches the exit code to the engine's errors.
func classify(err error) error {
	var violation *keyring.Violation
	var held *rotation.LockHeldError
	switch {
	case errors.As(err, &violation):
		return exitcode.With(exitcode.Refused, err)
	case errors.As(err, &held):
		return exitcode.With(exitcode.LockHeld, err)
	}
	return err
}

func connectKeyring(settings *helmenv.Settings, namespace, secret string) (*kube.Keyring, error) {
	cfg, err := settings.RESTConfig()
	if err != nil {
		return nil, err
	}
	cluster, err := kube.Connect(cfg, namespace)
	if err != nil {
		return nil, err
	}
	return &kube.Keyring{Cluster: cluster, SecretName: secret}, nil
}

func holderIdentity() string {
	host, _ := os.Hostname()
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return fmt.Sprintf("%s@%s pid %d", name, host, os.Getpid())
}

// holderAlive is false only for a holder that ran on this host with a process ID that no longer exists.
func holderAlive(holder string) bool {
	at := strings.LastIndex(holder, "@")
	rest := holder[at+1:]
	host, pidText, ok := strings.Cut(rest, " pid ")
	me, _ := os.Hostname()
	if at < 0 || !ok || host != me {
		return true
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return true
	}
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	// On Linux, a killed process whose parent died too may linger as a zombie, and a PID may be reused: only a
	// running rotate-key counts as the holder.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return false
		}
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && !strings.Contains(string(cmdline), "rotate-key") {
			return false
		}
	}
	return true
}

func actor() string {
	return strings.SplitN(holderIdentity(), " pid ", 2)[0] + " via rotate-key " + version.Get().Version
}

func newRotationID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}
