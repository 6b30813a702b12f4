package action

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
	"github.com/tracebloc/helm-rotate-key/internal/helmexec"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// GuardExecutable is the name under which the binary acts as the post-renderer: Helm 3 runs an executable of this
// name found on PATH, and Helm 4 runs the plugin of the same name, so `--post-renderer rotate-key-guard` works on both.
const GuardExecutable = "rotate-key-guard"

// Upgrade is `rotate-key upgrade RELEASE CHART [helm upgrade flags]`: the operator's own `helm upgrade` with the
// guard wired in.
type Upgrade struct {
	Release, Chart, Namespace string
	// HelmArgs are the helm upgrade flags, passed through unchanged.
	HelmArgs []string
}

// Run checks --reset-values, then runs helm upgrade with the guard and keeps its exit code.
func (a *Upgrade) Run(ctx context.Context, c *Config) error {
	if slices.Contains(a.HelmArgs, "--reset-values") {
		if err := a.checkResetValues(ctx, c); err != nil {
			return err
		}
	}
	guardArgs, err := guardPostRenderer(ctx, c, a.Release, a.Namespace)
	if err != nil {
		return err
	}
	args := append([]string{"upgrade", a.Release, a.Chart}, c.Settings.ClusterFlags(a.Namespace)...)
	args = append(append(args, a.HelmArgs...), guardArgs...)
	return runHelm(ctx, c, args)
}

// checkResetValues renders the upgrade with its flags (a server-side dry run, output kept in memory: it holds
// the Secret) and refuses up front when the keyring Secret would not be rendered.
func (a *Upgrade) checkResetValues(ctx context.Context, c *Config) error {
	args := append(append([]string{"upgrade", a.Release, a.Chart}, c.Settings.ClusterFlags(a.Namespace)...), a.HelmArgs...)
	args = append(args, "--dry-run=server", "-o", "json")
	out, err := c.Helm.Output(ctx, args...)
	if err != nil {
		return fmt.Errorf("rendering the upgrade with --reset-values (helm upgrade --dry-run=server) failed: %w", err)
	}
	var rel struct {
		Manifest string `json:"manifest"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &rel); err != nil {
		return fmt.Errorf("reading helm's dry-run output: %w", err)
	}
	name := guard.SecretNameHint([]byte(rel.Manifest))
	if name == "" {
		name = a.Release + DefaultSecretSuffix
	}
	target, err := c.Connect(a.Namespace, name)
	if err != nil {
		return err
	}
	if _, err := target.Secret(ctx); apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("cannot read keyring Secret %s/%s: %w", a.Namespace, name, err)
	}
	rendered, err := guard.FindSecret([]byte(rel.Manifest), a.Namespace, name)
	if err != nil || rendered != nil {
		return err // rendered: the guard compares it during the real upgrade
	}
	return exitcode.With(exitcode.Refused, fmt.Errorf("refused before anything ran: with --reset-values, release %q's chart does not render its keyring Secret %s/%s (the values that render it are not the chart's defaults), so Helm would stop managing it and a later upgrade could regenerate its keys.\nUse --reuse-values (keep the release's values and add your changes) or --reset-then-reuse-values (the chart's new defaults, then the release's values, then your changes)", a.Release, a.Namespace, name))
}

// guardPostRenderer returns the helm flags that run the guard for this release: on Helm 3 this binary as an
// executable, on Helm 4 the rotate-key-guard plugin (helm rotate-key install-guard).
func guardPostRenderer(ctx context.Context, c *Config, releaseName, namespace string) ([]string, error) {
	major, err := helmexec.Major(ctx, c.Helm)
	if err != nil {
		return nil, fmt.Errorf("asking %s for its version: %w", c.Settings.HelmBin, err)
	}
	pass := append([]string{"--release=" + releaseName}, c.Settings.ClusterFlags(namespace)...)
	var args []string
	if major == 3 {
		self, err := c.Executable()
		if err != nil {
			return nil, err
		}
		args = []string{"--post-renderer", filepath.Clean(self), "--post-renderer-args", "guard"}
	} else {
		plugins, err := c.Helm.Output(ctx, "plugin", "list")
		if err != nil || !bytes.Contains(plugins, []byte(GuardExecutable)) {
			return nil, exitcode.Withf(exitcode.Usage, "the Helm 4 post-renderer plugin %s is not installed: run helm rotate-key install-guard first", GuardExecutable)
		}
		args = []string{"--post-renderer", GuardExecutable}
	}
	for _, p := range pass {
		args = append(args, "--post-renderer-args", p)
	}
	return args, nil
}

// runHelm runs $HELM_BIN on the operator's streams and keeps its exit code.
func runHelm(ctx context.Context, c *Config, args []string) error {
	fmt.Fprintf(c.ErrOut, "Running: %s\n", helmexec.Quote(append([]string{c.Settings.HelmBin}, args...)))
	err := c.Helm.Run(ctx, args, c.In, c.Out, c.ErrOut)
	var exit *helmexec.ExitError
	if errors.As(err, &exit) {
		return exitcode.With(exitcode.Code(exit.Code), err)
	}
	return err
}

// Rollback is `rotate-key rollback RELEASE [REVISION]`: the application of an earlier revision, the live keyring
// kept (an upgrade with that revision's stored chart and values, guard wired in).
type Rollback struct {
	Target
	// Revision is the revision to return to (0: the previous one).
	Revision int
	Chart    string
}

// Run reads the target revision and upgrades to its chart and values through the operator's Helm.
func (a *Rollback) Run(ctx context.Context, c *Config) error {
	target, err := c.Connect(a.Namespace, a.Secret)
	if err != nil {
		return err
	}
	latestData, err := target.ReleaseRecord(ctx, c.Settings.Driver, a.Release)
	if err != nil {
		return err
	}
	latest, err := release.Decode(latestData)
	if err != nil {
		return err
	}
	if a.Revision == 0 {
		a.Revision = latest.Version - 1
	}
	if a.Revision < 1 || a.Revision >= latest.Version {
		return exitcode.Withf(exitcode.Usage, "release %s is at revision %d: roll back to one of 1..%d", a.Release, latest.Version, latest.Version-1)
	}
	if err := a.recoverPendingRollback(ctx, c, target, latest); err != nil {
		return err
	}
	data, err := target.ReleaseRevision(ctx, c.Settings.Driver, a.Release, a.Revision)
	if err != nil {
		return err
	}
	rel, err := release.Decode(data)
	if err != nil {
		return err
	}
	dir, cleanup, err := tempDir("rotate-key-rollback-")
	if err != nil {
		return err
	}
	defer cleanup()
	chartRef := a.Chart
	if chartRef == "" {
		if chartRef, err = saveRebuilt(rel, dir); err != nil {
			return err
		}
	}
	valuesFile, err := writeValues(dir, rel.Config)
	if err != nil {
		return err
	}
	args := append([]string{"upgrade", a.Release, chartRef, "--reset-values", "-f", valuesFile,
		"--description", fmt.Sprintf("rotate-key rollback to revision %d (keyring kept)", a.Revision)}, c.Settings.ClusterFlags(a.Namespace)...)
	// The old values may carry an older rotation request; the current rotation's id keeps the hooks from
	// starting a rotation nobody asked for.
	// That id stays in the release's values, and a later upgrade with --reuse-values passes it again: once the
	// rotation id changed (the next rotation), the hooks would take it for a new request. Recording it among the
	// requests that started a rotation makes it one that never starts another (the twelfth cold read: a prune
	// upgrade after an emergency started a rotation nobody asked for).
	if secret, err := target.Secret(ctx); err == nil {
		if st, err := rotation.ParseState(secret.Annotations); err == nil && st.RotationID != "" {
			args = append(args, "--set", RequestValue+"="+st.RotationID)
			if !rotation.RequestStarted(secret.Annotations, rotation.State{}, st.RotationID) {
				secret.Annotations[rotation.AnnoRequests] = rotation.RecordRequest(secret.Annotations, st.RotationID)
				if _, err := target.UpdateSecret(ctx, secret); err != nil {
					return fmt.Errorf("recording rotation %s as a request already served (so the rolled-back values never start another): %w", st.RotationID, err)
				}
			}
		}
	}
	guardArgs, err := guardPostRenderer(ctx, c, a.Release, a.Namespace)
	if err != nil {
		return err
	}
	return runHelm(ctx, c, append(args, guardArgs...))
}

// recoverPendingRollback handles the state a refused `helm rollback` leaves: Helm creates the rollback's revision
// as pending-rollback before the pre-rollback hook runs and leaves it there when the hook fails, and then refuses
// every upgrade ("another operation is in progress"). When the library chart's guard Job refused it, Helm applied
// nothing, so forgetting the revision (deleting its record) is exact. Otherwise (a helm that died mid-rollback), a
// rollback to the last deployed revision supersedes it; that revision's own guard may refuse when rotations moved
// the keyring on since it was rendered, and then the error says how to clear it by hand.
func (a *Rollback) recoverPendingRollback(ctx context.Context, c *Config, target *kube.Keyring, latest *release.Release) error {
	if latest.Info == nil || latest.Info.Status != "pending-rollback" {
		return nil
	}
	refused, err := target.RefusedRollback(ctx, c.Settings.Driver, a.Release, latest.Version)
	if err != nil {
		return err
	}
	if refused {
		fmt.Fprintf(c.ErrOut, "Release %s revision %d is stuck in pending-rollback: its guard hook refused that helm rollback (Job %s failed), so Helm applied nothing. Deleting Helm's record of revision %d; no object changes\n", a.Release, latest.Version, kube.GuardRollbackJob(a.Release), latest.Version)
		return target.DeleteReleaseRecord(ctx, c.Settings.Driver, a.Release, latest.Version)
	}
	for rev := latest.Version - 1; rev >= 1; rev-- {
		data, err := target.ReleaseRevision(ctx, c.Settings.Driver, a.Release, rev)
		if err != nil {
			return err
		}
		rel, err := release.Decode(data)
		if err != nil {
			return err
		}
		if rel.Info == nil || rel.Info.Status != "deployed" {
			continue
		}
		fmt.Fprintf(c.ErrOut, "Release %s revision %d is stuck in pending-rollback; clearing it with a rollback to the deployed revision %d, which changes no object\n", a.Release, latest.Version, rev)
		return runHelm(ctx, c, append([]string{"rollback", a.Release, strconv.Itoa(rev)}, c.Settings.ClusterFlags(a.Namespace)...))
	}
	return fmt.Errorf("release %s is stuck in pending-rollback at revision %d and has no deployed revision to return to: see helm history %s", a.Release, latest.Version, a.Release)
}
