package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/charts"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// RequestValue is the chart value through which `helm rotate-key` requests a rotation on the hook path.
const RequestValue = charts.LibraryName + ".rotation.request"

// JobSelector selects the rotation Jobs the library chart renders.
const JobSelector = "app.kubernetes.io/component=rotate-key"

// hookUpgrade is the `helm upgrade` that carries a rotation step through the release's hook Jobs.
type hookUpgrade struct {
	// Request is the new rotation's id, "" when the upgrade only resumes or retires.
	Request     string
	Description string
	Decision    rotation.Decision
}

// planHookUpgrade decides whether the hook path has anything to do now, and how the upgrade is described in
// `helm history`. ok=false: nothing to upgrade for (waiting for the TTL, or nothing due).
func planHookUpgrade(st rotation.State, k *keyring.Keyring, now time.Time, start, force bool, newID func(time.Time) string) (hookUpgrade, bool) {
	d := rotation.Next(st, now, start, force)
	u := hookUpgrade{Decision: d}
	switch d.Step {
	case rotation.StepNothing, rotation.StepWaitTTL:
		return u, false
	case rotation.StepStart:
		u.Request = newID(now)
		u.Description = fmt.Sprintf("rotate-key: rotation %s: add v%d, roll out, promote, roll out (hook Jobs)", u.Request, k.Newest()+1)
	case rotation.StepRetire:
		u.Description = fmt.Sprintf("rotate-key: rotation %s: retire v%d, token TTL passed (hook Jobs)", st.RotationID, st.From)
	default:
		u.Description = fmt.Sprintf("rotate-key: rotation %s: resume at %s (hook Jobs)", st.RotationID, st.Phase)
	}
	return u, true
}

// hookPathNote is what plan and the prompt say about the hook path.
const hookPathNote = "through the chart's hook Jobs: helm upgrade with the release's stored chart and --reuse-values, which re-applies the whole release (drift such as a manual replica change is reverted); --local rotates without an upgrade"

// runThroughHooks performs the rotation's next steps as an upgrade of the release with its own chart and values,
// through the user's Helm, and reports where the rotation stands afterwards.
func (o *RunOptions) runThroughHooks(ctx context.Context, obs *observation, hooks release.RotationHooks) error {
	if o.TTL != "" || o.Interval != "" || len(o.Consumers) > 0 || o.TakeOver {
		return exitcode.Withf(exitcode.Usage, "--ttl, --interval, --consumer and --take-over apply to local runs only: release %s rotates through its chart's hook Jobs, which read the chart's values (rotate-key.ttlSeconds, rotationInterval, consumers); add --local to rotate from this machine instead", o.Release)
	}
	u, ok := planHookUpgrade(obs.state, obs.keyring, obs.now, o.mode == "run", o.Force, newRotationID)
	if !ok {
		return o.report(rotation.Result{State: obs.state, Keyring: obs.keyring, Decision: u.Decision})
	}
	if !o.Yes {
		if !o.isTerminal() {
			return exitcode.Withf(exitcode.Usage, "not a terminal, so nobody can confirm: review with `rotate-key plan %s` and rerun with --yes", o.Release)
		}
		fmt.Fprintf(o.streams.Out, "Keyring %s/%s: %s. Next: %s — %s\nThis runs %s.\nProceed? [y/N] ", o.namespace, o.Secret, obs.state, u.Decision.Step, u.Decision.Reason, hookPathNote)
		if !confirmed(o.streams.In) {
			return exitcode.Withf(exitcode.Usage, "not confirmed; nothing was changed")
		}
	}
	chartRef, cleanup, err := o.hookChart(obs)
	if err != nil {
		return err
	}
	defer cleanup()
	args := append([]string{"upgrade", o.Release, chartRef, "--reuse-values",
		"--timeout", (o.Timeout + 5*time.Minute).String(), "--description", u.Description}, o.settings.ClusterFlags(o.namespace)...)
	if u.Request != "" {
		args = append(args, "--set", RequestValue+"="+u.Request)
	}
	fmt.Fprintf(o.streams.Out, "%s/%s: %s — %s\nRunning: %s\n", o.namespace, o.Secret, u.Decision.Step, u.Decision.Reason, shellQuote(append([]string{o.settings.HelmBin}, args...)))
	cmd := exec.CommandContext(ctx, o.settings.HelmBin, args...)
	cmd.Stdout, cmd.Stderr = o.streams.Out, o.streams.ErrOut
	cmd.Env = append(os.Environ(), o.settings.Environ()...)
	upgradeErr := cmd.Run()
	after, err := observe(ctx, o.settings, o.namespace, o.Secret, o.Release, o.overrides)
	if err != nil {
		return err
	}
	if upgradeErr != nil {
		var exit *exec.ExitError
		code := -1
		if errors.As(upgradeErr, &exit) {
			code = exit.ExitCode()
		}
		why := ""
		for _, line := range after.target.FailedJobs(ctx, JobSelector) {
			why += "\n  " + line
		}
		return fmt.Errorf("helm upgrade of %s failed (exit %d)%s\nThe rotation stands at %s and resumes where it stopped: fix the cause (kubectl -n %s logs job/<name>; the Jobs carry %s), then rerun: %s",
			o.Release, code, why, after.state, o.namespace, JobSelector, o.resumeCommand())
	}
	d := rotation.Next(after.state, after.now, false, false)
	if after.state.Phase == rotation.Idle {
		d = rotation.Decision{Step: rotation.StepNothing, Reason: fmt.Sprintf("rotation %s finished: %s", after.state.RotationID, after.state)}
	}
	return o.report(rotation.Result{State: after.state, Keyring: after.keyring, Decision: d})
}

// shellQuote renders argv as a command line a shell would read back the same (for the operator to copy).
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// hookChart is the chart the hook upgrade uses: --chart as given, or the release's stored chart with the library
// put back, written to a temporary directory.
func (o *RunOptions) hookChart(obs *observation) (string, func(), error) {
	if o.Chart != "" {
		return o.Chart, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "rotate-key-chart-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
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
