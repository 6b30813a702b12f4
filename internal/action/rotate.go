package action

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/engine"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
	"github.com/tracebloc/helm-rotate-key/internal/version"
)

// Mode is what a Rotate does: run (start, resume or finish), retire (resume or finish, never start) or abort.
type Mode string

// The modes of Rotate.
const (
	ModeRun    Mode = "run"
	ModeRetire Mode = "retire"
	ModeAbort  Mode = "abort"
)

// Rotate is `rotate-key run|retire|abort RELEASE`: it drives the engine from this machine, or, for a release whose
// chart has the rotation hook Jobs, upgrades the release so that the Jobs do.
type Rotate struct {
	Target
	Mode      Mode
	Overrides rotation.Overrides
	// SecretGiven is true when --secret was set; otherwise the hook Jobs' own Secret wins over the default name.
	SecretGiven bool
	// Emergency rotates a leaked keyring now, in any phase (Overrides.Reason is the incident).
	Emergency bool
	TakeOver  bool
	// Yes skips the confirmation.
	Yes     bool
	Timeout time.Duration
	// Local rotates from this machine even when the release's chart has the rotation hook Jobs; Chart is the chart
	// the hook path upgrades with instead of the release's stored chart.
	Local bool
	Chart string
}

// RotateResult is where the run left the rotation.
type RotateResult struct {
	engine.Result
	// Waiting is the time left until the outgoing key may be retired (StepWaitTTL).
	Waiting time.Duration
}

// Run connects, resolves the configuration, shows the plan, and drives the engine (or the hook path).
func (a *Rotate) Run(ctx context.Context, c *Config) (RotateResult, error) {
	obs, hooks, useHooks, err := a.observe(ctx, c)
	if err != nil {
		return RotateResult{}, err
	}
	if err := obs.require(a.Target); err != nil {
		return RotateResult{}, err
	}
	if useHooks {
		return a.runThroughHooks(ctx, c, obs, hooks)
	}
	run := c.newEngine(obs, c.Identity.Holder, c.Identity.Actor, a.Timeout)
	run.TakeOver, run.Force = a.TakeOver, a.Overrides.Force
	if a.Emergency {
		run.Emergency = a.Overrides.Reason
		fmt.Fprintln(c.Out, emergencyCost(obs.state, obs.keyring, a.Overrides.Reason))
	}
	if !a.Yes {
		d := rotation.Next(obs.state, obs.now, a.Mode == ModeRun, a.Overrides.Force)
		what := fmt.Sprintf("%s — %s", d.Step, d.Reason)
		switch {
		case a.Mode == ModeAbort:
			what = "abort rotation " + obs.state.RotationID
		case a.Emergency && rotation.EmergencyPending(obs.state, a.Overrides.Reason):
			what = "EMERGENCY rotation (" + a.Overrides.Reason + "), cost above"
		}
		prompt := fmt.Sprintf("Keyring %s/%s: %s. Next: %s\nTTL %s (%s); consumers: %s\n", a.Namespace, a.Secret, obs.state, what, obs.config.TTL, obs.config.TTLSource, obs.config.ConsumersSource)
		if err := a.confirm(ctx, c, prompt); err != nil {
			return RotateResult{}, err
		}
	}
	var res engine.Result
	if a.Mode == ModeAbort {
		res, err = run.Abort(ctx)
	} else {
		res, err = run.Run(ctx, a.Mode == ModeRun)
	}
	if errors.Is(err, engine.ErrRolloutTimeout) {
		return RotateResult{}, fmt.Errorf("%w\nResume with: %s", err, a.ResumeCommand())
	}
	if errors.Is(err, context.Canceled) {
		return RotateResult{}, fmt.Errorf("interrupted: %w. The rotation stands where its last completed step left it (helm -n %s rotate-key status %s shows it); resume with: %s", err, a.Namespace, a.Release, a.ResumeCommand())
	}
	if err != nil {
		return RotateResult{}, Classify(err)
	}
	return a.result(c, res), nil
}

// newEngine is the one construction of a run's engine (Rotate's and the hook Jobs'): the Config's key source,
// rotation ids, clock and output; the caller sets what differs (lock holder, timeout, take-over, request, hook).
func (c *Config) newEngine(obs *observation, holder, actor string, timeout time.Duration) *engine.Engine {
	obs.target.Instance = holder
	return &engine.Engine{
		Cluster: obs.target, Config: obs.config, Holder: holder, Actor: actor, HolderAlive: c.Identity.HolderAlive,
		Rand: c.Rand, Out: c.Out, RolloutTimeout: timeout, Poll: time.Second, NewRotationID: c.NewRotationID,
		LocalNow: c.LocalNow, Sleep: c.Sleep, Seen: obs.secret, Reconfigure: c.reconfigure(obs),
	}
}

func (a *Rotate) result(c *Config, res engine.Result) RotateResult {
	r := RotateResult{Result: res}
	if res.Decision.Step == rotation.StepWaitTTL {
		r.Waiting = res.Decision.Until.Sub(c.now()).Round(time.Second)
	}
	return r
}

// confirm asks the operator; without a terminal nobody can answer, so it refuses. Ctrl-C at the prompt (the
// context) answers no.
func (a *Rotate) confirm(ctx context.Context, c *Config, prompt string) error {
	if !c.IsTerminal() {
		return exitcode.Withf(exitcode.Usage, "not a terminal, so nobody can confirm: review with `rotate-key plan %s` and rerun with --yes", a.Release)
	}
	fmt.Fprint(c.Out, prompt+"Proceed? [y/N] ")
	answer := make(chan bool, 1)
	go func() { answer <- confirmed(c.In) }()
	select {
	case yes := <-answer:
		if yes {
			return nil
		}
	case <-ctx.Done():
		fmt.Fprintln(c.Out)
	}
	return exitcode.Withf(exitcode.Usage, "not confirmed; nothing was changed")
}

// observe reads the release and its keyring, and decides the path: the hook Jobs' own --secret wins over the
// default Secret name (not over --secret).
func (a *Rotate) observe(ctx context.Context, c *Config) (*observation, release.RotationHooks, bool, error) {
	obs, err := c.observe(ctx, a.Target, a.Overrides)
	if err != nil {
		return nil, release.RotationHooks{}, false, err
	}
	hooks, ok := a.hookPath(obs)
	if ok && !a.SecretGiven && hooks.Secret != "" && hooks.Secret != a.Secret {
		a.Secret = hooks.Secret
		obs, err = c.observe(ctx, a.Target, a.Overrides)
	}
	return obs, hooks, ok, err
}

// hookPath reports whether this run goes through the release's hook Jobs: a run or retire (an abort and an
// emergency are always local) of a release whose last render has them, unless --local.
func (a *Rotate) hookPath(obs *observation) (release.RotationHooks, bool) {
	if a.Local || a.Emergency || a.Mode == ModeAbort || obs.record == nil {
		return release.RotationHooks{}, false
	}
	return release.FindRotationHooks(obs.record)
}

// ResumeCommand is the command line that continues this rotation.
func (a *Rotate) ResumeCommand() string {
	local := ""
	if a.Local {
		local = " --local"
	}
	return "helm -n " + a.Namespace + " rotate-key " + a.Release + a.SecretFlag() + local + " --yes"
}

// emergencyCost states, before anything changes, what an emergency rotation costs: the versions it will retire and
// so every live token signed with them that will be rejected.
func emergencyCost(st rotation.State, k *keyring.Keyring, reason string) string {
	if k == nil {
		return ""
	}
	switch {
	case st.InProgress() && st.Emergency == reason:
		return fmt.Sprintf("Emergency rotation %s (%s) is in progress (%s): resuming it, never starting a second one for the same reason.", st.RotationID, st.Emergency, st.Phase)
	case st.InProgress() && st.Emergency != "":
		return fmt.Sprintf("EMERGENCY ROTATION — emergency rotation %s (%s) is in progress (%s): it is finished first (it retires every version but %s at once), then a second one for %q adds a fresh key and retires %s too.\n"+
			"Every live token signed with a retired version is REJECTED from that moment (a few minutes from now): clients must get a new token.",
			st.RotationID, st.Emergency, st.Phase, keyring.Kid(st.To), reason, keyring.Kid(st.To))
	case !rotation.EmergencyPending(st, reason):
		return fmt.Sprintf("Emergency rotation %s (%s) has run and retired the leaked versions: nothing to do. A new leak needs a new --reason.", st.RotationID, st.Emergency)
	}
	kids := make([]string, 0, len(k.Keys))
	for _, v := range k.Versions() {
		kids = append(kids, keyring.Kid(v))
	}
	return fmt.Sprintf("EMERGENCY ROTATION — cost: a fresh %s is added and rolled out, then promoted and rolled out; then %s are removed at once.\n"+
		"Every live token signed with %s is REJECTED from that moment (a few minutes from now): clients must get a new token.",
		keyring.Kid(st.NextVersion(k.Newest())), strings.Join(kids, ", "), strings.Join(kids, " or "))
}

// confirmed reads one answer line: only y or yes proceeds.
func confirmed(in io.Reader) bool {
	answer, _ := bufio.NewReader(in).ReadString('\n')
	ans := strings.ToLower(strings.TrimSpace(answer))
	return ans == "y" || ans == "yes"
}

// Classify attaches the exit code to the engine's errors.
func Classify(err error) error {
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

// ActorOf is the actor a holder writes into the state: "user@host via rotate-key v1".
func ActorOf(holder string) string {
	return strings.SplitN(holder, " pid ", 2)[0] + " via rotate-key " + version.Get().Version
}
