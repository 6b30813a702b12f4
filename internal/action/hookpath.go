package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/charts"
	"github.com/tracebloc/helm-rotate-key/internal/engine"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmexec"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// RequestValue is the chart value through which `helm rotate-key` requests a rotation on the hook path.
const RequestValue = charts.LibraryName + ".rotation.request"

// JobSelector selects the rotation Jobs the library chart renders.
const JobSelector = "app.kubernetes.io/component=rotate-key"

// HookPathNote is what plan and the prompt say about the hook path.
const HookPathNote = "through the chart's hook Jobs: helm upgrade with the release's stored chart and --reuse-values, which re-applies the whole release (drift such as a manual replica change is reverted); --local rotates without an upgrade"

// hookUpgrade is the `helm upgrade` that carries a rotation step through the release's hook Jobs.
type hookUpgrade struct {
	// Request is the new rotation's id, "" when the upgrade only resumes or retires.
	Request     string
	Description string
	Decision    rotation.Decision
}

// planHookUpgrade decides whether the hook path has anything to do now, and how the upgrade is described in
// `helm history` (rotation.Table's Upgrade text). ok=false: nothing to upgrade for (waiting for the TTL, or
// nothing due).
func planHookUpgrade(st rotation.State, k *keyring.Keyring, now time.Time, start, force bool, newID func(time.Time) string) (hookUpgrade, bool) {
	d := rotation.Next(st, now, start, force)
	u := hookUpgrade{Decision: d}
	t, ok := rotation.Lookup(st.Phase, d.Step)
	if !ok || len(t.Hooks) == 0 {
		return u, false
	}
	id := st.RotationID
	if st.Phase == rotation.Idle {
		u.Request = newID(now)
		id = u.Request
	}
	u.Description = fmt.Sprintf("rotate-key: rotation %s: %s (hook Jobs)", id, rotation.UpgradeDescription(t, rotation.PlanFacts{From: st.From, To: st.To, Next: st.NextVersion(k.Newest()), Phase: st.Phase}))
	return u, true
}

// runThroughHooks performs the rotation's next steps as an upgrade of the release with its own chart and values,
// through the operator's Helm, and reports where the rotation stands afterwards.
func (a *Rotate) runThroughHooks(ctx context.Context, c *Config, obs *observation, hooks release.RotationHooks) (RotateResult, error) {
	if a.Overrides.TTL > 0 || a.Overrides.Interval > 0 || len(a.Overrides.Consumers) > 0 || a.TakeOver {
		return RotateResult{}, exitcode.Withf(exitcode.Usage, "--ttl, --interval, --consumer and --take-over apply to local runs only: release %s rotates through its chart's hook Jobs, which read the chart's values (rotate-key.ttlSeconds, rotationInterval, consumers); add --local to rotate from this machine instead", a.Release)
	}
	obs, err := a.pendingHookUpgrade(ctx, c, obs)
	if err != nil {
		return RotateResult{}, err
	}
	u, ok := planHookUpgrade(obs.state, obs.keyring, obs.now, a.Mode == ModeRun, a.Overrides.Force, c.NewRotationID)
	if !ok {
		return a.result(c, engine.Result{State: obs.state, Keyring: obs.keyring, Decision: u.Decision}), nil
	}
	if !a.Yes {
		prompt := fmt.Sprintf("Keyring %s/%s: %s. Next: %s — %s\nThis runs %s.\n", a.Namespace, a.Secret, obs.state, u.Decision.Step, u.Decision.Reason, HookPathNote)
		if err := a.confirm(ctx, c, prompt); err != nil {
			return RotateResult{}, err
		}
	}
	chartRef, cleanup, err := a.hookChart(obs)
	if err != nil {
		return RotateResult{}, err
	}
	defer cleanup()
	helmTimeout := a.Timeout + 5*time.Minute
	args := append([]string{"upgrade", a.Release, chartRef, "--reuse-values",
		"--timeout", helmTimeout.String(), "--description", u.Description}, c.Settings.ClusterFlags(a.Namespace)...)
	if u.Request != "" {
		args = append(args, "--set", RequestValue+"="+u.Request)
	}
	var run hookRun
	if a.Chart == "" && obs.release != nil { // the embedded library's schema knows the value; another chart's may not
		run = newHookRun(c.Rand, obs.release.Revision+1, c.Identity.Host, obs.now, helmTimeout)
		args = append(args, "--set-string", RunValue+"="+run.String())
	}
	fmt.Fprintf(c.Out, "%s/%s: %s — %s\nRunning: %s\n", a.Namespace, a.Secret, u.Decision.Step, u.Decision.Reason, helmexec.Quote(append([]string{c.Settings.HelmBin}, args...)))
	upgradeErr := c.Helm.Run(ctx, args, nil, c.Out, c.ErrOut)
	// After a Ctrl-C the operator still needs to know where the rotation stands and how to resume.
	ctx = context.WithoutCancel(ctx)
	after, err := c.observe(ctx, a.Target, a.Overrides)
	if err != nil {
		return RotateResult{}, err
	}
	if upgradeErr != nil {
		code := -1
		var exit *helmexec.ExitError
		if errors.As(upgradeErr, &exit) {
			code = exit.Code
		}
		why := ""
		if after.release != nil && strings.HasPrefix(after.release.Status, "pending-") && run.Nonce != "" && runToken(after) == run.String() {
			// This helm was interrupted (Ctrl-C): the rerun waits for its hook Jobs and clears the revision.
			return RotateResult{}, fmt.Errorf("helm upgrade of %s was interrupted (exit %d) and left revision %d %s; the rotation stands at %s. Rerun the same command: once this helm has ended it waits for the hook Jobs that helm started, clears the revision (Helm's record only) and carries on: %s",
				a.Release, code, after.release.Revision, after.release.Status, after.state, a.ResumeCommand())
		}
		if after.release != nil && after.release.Status == "pending-rollback" {
			if refused, err := after.target.RefusedRollback(ctx, c.Settings.Driver, a.Release, after.release.Revision); err == nil && refused {
				// Someone rolled back during this upgrade (an in-cluster upgrader, say), the guard refused it, and
				// Helm's history limit may have dropped this upgrade's own revision: the rerun clears the refusal.
				return RotateResult{}, fmt.Errorf("helm upgrade of %s failed (exit %d): meanwhile a helm rollback of %s (revision %d, \"%s\") was refused by the chart's guard hook and left the release pending-rollback — another process rolls the release back (an in-cluster upgrader?). The rotation stands at %s; rerun the same command: it clears the refused rollback (Helm applied nothing) and carries on: %s",
					a.Release, code, a.Release, after.release.Revision, after.release.Description, after.state, a.ResumeCommand())
			}
		}
		if after.release != nil && strings.HasPrefix(after.release.Status, "pending-") {
			// Helm refuses every upgrade while a killed one left the release pending: the Jobs are not the cause.
			return RotateResult{}, fmt.Errorf("helm upgrade of %s failed (exit %d): the release is stuck in %s at revision %d, left by a helm that was killed mid-operation; Helm refuses every upgrade until it is cleared. See the runbook, \"A laptop died during the rotation\" (docs/RUNBOOKS/requests-proxy-key-rotation.md); the rotation stands at %s and resumes afterwards with: %s",
				a.Release, code, after.release.Status, after.release.Revision, after.state, a.ResumeCommand())
		}
		for _, line := range after.target.FailedJobs(ctx, JobSelector, obs.now) {
			why += "\n  " + line
		}
		return RotateResult{}, fmt.Errorf("helm upgrade of %s failed (exit %d)%s\nThe rotation stands at %s and resumes where it stopped: fix the cause (kubectl -n %s logs job/<name>; the Jobs carry %s), then rerun: %s",
			a.Release, code, why, after.state, a.Namespace, JobSelector, a.ResumeCommand())
	}
	d := rotation.Next(after.state, after.now, false, false)
	if after.state.Phase == rotation.Idle {
		d = rotation.Decision{Step: rotation.StepNothing, Reason: fmt.Sprintf("rotation %s finished: %s", after.state.RotationID, after.state)}
	}
	return a.result(c, engine.Result{State: after.state, Keyring: after.keyring, Decision: d}), nil
}

// hookChart is the chart the hook upgrade uses: --chart as given, or the release's stored chart with the library
// put back, written to a temporary directory.
func (a *Rotate) hookChart(obs *observation) (string, func(), error) {
	if a.Chart != "" {
		return a.Chart, func() {}, nil
	}
	dir, cleanup, err := tempDir("rotate-key-chart-")
	if err != nil {
		return "", nil, err
	}
	ref, err := saveRebuilt(obs.record, dir)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return ref, cleanup, nil
}

// saveRebuilt writes rel's stored chart, with the embedded library put back, as a chart directory in dir.
func saveRebuilt(rel *release.Release, dir string) (string, error) {
	files, err := release.Rebuild(rel, charts.Library, charts.LibraryName)
	if err != nil {
		return "", exitcode.With(exitcode.Usage, err)
	}
	root := filepath.Join(dir, "chart")
	if name := rel.Chart.Metadata.Name; filepath.IsLocal(name) && filepath.Base(name) == name {
		root = filepath.Join(dir, name) // the directory name Helm's own tools expect
	}
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "", fmt.Errorf("writing the release's stored chart: %w", err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return "", fmt.Errorf("writing the release's stored chart: %w", err)
		}
	}
	return root, nil
}
