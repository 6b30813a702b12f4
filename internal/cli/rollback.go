package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// RollbackOptions are the arguments of `rotate-key rollback RELEASE [REVISION]`.
type RollbackOptions struct {
	releaseTarget
	Revision int
	Chart    string

	settings *helmenv.Settings
	streams  Streams
}

const rollbackLong = `rollback returns a release's application to an earlier revision while keeping the live keyring.

helm rollback would re-apply that revision's stored manifest, keyring Secret included: after a rotation that
removes the new key or reverts active, and every token signed since is rejected (the chart's pre-rollback guard
refuses it). rotate-key rollback instead upgrades the release with that revision's stored chart and values, so the
chart renders the keyring from the live Secret, with the guard wired in. helm history shows it as a new revision
described "rotate-key rollback to revision N (keyring kept)". REVISION defaults to the previous one.`

func newRollbackCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	o := &RollbackOptions{settings: settings, streams: streams}
	cmd := &cobra.Command{
		Use:   "rollback RELEASE [REVISION]",
		Short: "Roll the application back to a revision, keeping the live keyring (instead of helm rollback)",
		Long:  rollbackLong,
		Args:  usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.complete(args[:1], settings)
			if len(args) == 2 {
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 1 {
					return exitcode.Withf(exitcode.Usage, "REVISION %q is not a revision number (helm history %s lists them)", args[1], args[0])
				}
				o.Revision = n
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Chart, "chart", "", "the chart of that revision (path, URL or repo/name), when its stored chart has dependencies Helm did not keep")
	return cmd
}

// Run reads the target revision and upgrades to its chart and values through the user's Helm, guard wired in.
func (o *RollbackOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	target, err := connectKeyring(o.settings, o.namespace, o.Secret)
	if err != nil {
		return err
	}
	latestData, err := target.ReleaseRecord(ctx, o.settings.Driver, o.Release)
	if err != nil {
		return err
	}
	latest, err := release.Decode(latestData)
	if err != nil {
		return err
	}
	if o.Revision == 0 {
		o.Revision = latest.Version - 1
	}
	if o.Revision < 1 || o.Revision >= latest.Version {
		return exitcode.Withf(exitcode.Usage, "release %s is at revision %d: roll back to one of 1..%d", o.Release, latest.Version, latest.Version-1)
	}
	if err := o.recoverPendingRollback(ctx, target, latest); err != nil {
		return err
	}
	data, err := target.ReleaseRevision(ctx, o.settings.Driver, o.Release, o.Revision)
	if err != nil {
		return err
	}
	rel, err := release.Decode(data)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "rotate-key-rollback-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	chartRef := o.Chart
	if chartRef == "" {
		if chartRef, err = saveRebuilt(rel, dir); err != nil {
			return err
		}
	}
	values, err := yaml.Marshal(rel.Config)
	if err != nil {
		return err
	}
	valuesFile := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(valuesFile, values, 0o600); err != nil {
		return err
	}
	args := append([]string{"upgrade", o.Release, chartRef, "--reset-values", "-f", valuesFile,
		"--description", fmt.Sprintf("rotate-key rollback to revision %d (keyring kept)", o.Revision)}, o.settings.ClusterFlags(o.namespace)...)
	// The old values may carry an older rotation request; the current rotation's id keeps the hooks from
	// starting a rotation nobody asked for.
	if secret, err := target.Secret(ctx); err == nil {
		if st, err := rotation.ParseState(secret.Annotations); err == nil && st.RotationID != "" {
			args = append(args, "--set", RequestValue+"="+st.RotationID)
		}
	}
	guardArgs, err := guardPostRenderer(ctx, o.settings, o.Release, o.namespace)
	if err != nil {
		return err
	}
	return runHelm(ctx, o.settings, o.streams, append(args, guardArgs...))
}

// recoverPendingRollback handles the state a refused `helm rollback` leaves: Helm creates the rollback's revision
// as pending-rollback before the pre-rollback hook runs and leaves it there when the hook fails, and then refuses
// every upgrade ("another operation is in progress"). A rollback to the last deployed revision — the state the
// cluster is in, checked by that revision's own guard hook — supersedes it without changing any object.
func (o *RollbackOptions) recoverPendingRollback(ctx context.Context, target *kube.Keyring, latest *release.Release) error {
	if latest.Info == nil || latest.Info.Status != "pending-rollback" {
		return nil
	}
	for rev := latest.Version - 1; rev >= 1; rev-- {
		data, err := target.ReleaseRevision(ctx, o.settings.Driver, o.Release, rev)
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
		fmt.Fprintf(o.streams.ErrOut, "Release %s revision %d is stuck in pending-rollback (a helm rollback its guard hook refused); clearing it with a rollback to the deployed revision %d, which changes no object\n", o.Release, latest.Version, rev)
		return runHelm(ctx, o.settings, o.streams, append([]string{"rollback", o.Release, strconv.Itoa(rev)}, o.settings.ClusterFlags(o.namespace)...))
	}
	return fmt.Errorf("release %s is stuck in pending-rollback at revision %d and has no deployed revision to return to: see helm history %s", o.Release, latest.Version, o.Release)
}
