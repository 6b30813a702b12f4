package cli

import (
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
)

const upgradeLong = `upgrade runs $HELM_BIN upgrade RELEASE CHART [flags] with the rotate-key guard as its post-renderer
(the release, namespace and context passed to it), so that the upgrade is refused before anything is sent when it
would skip, drop or alter the release's keyring Secret. Every flag is passed to helm upgrade unchanged, and
helm's exit code is kept — except the ones that make helm print the release it renders (--dry-run, -o json|yaml,
--debug), which are refused: the rendered keyring Secret holds the key bytes; and --force (Helm 3) and
--force-replace (Helm 4), which are refused: replacing the keyring Secret with its render erases the rotation state.
Helm's own --debug (helm --debug rotate-key ...) is never passed on to the child helm.

--reset-values is checked up front: when the chart would not render the keyring Secret with the values reset, the
upgrade is refused with the alternatives (--reuse-values, --reset-then-reuse-values).`

func newUpgradeCommand(c *action.Config) *cobra.Command {
	return &cobra.Command{
		Use:                "upgrade RELEASE CHART [helm upgrade flags]",
		Short:              "helm upgrade with the keyring guard wired in",
		Long:               upgradeLong,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if slices.Contains(args, "--help") || slices.Contains(args, "-h") {
				return cmd.Help()
			}
			a, err := completeUpgrade(c, args)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context(), c)
		},
	}
}

// completeUpgrade splits the arguments and takes the namespace and cluster flags (which helm also receives).
func completeUpgrade(c *action.Config, args []string) (*action.Upgrade, error) {
	a := &action.Upgrade{}
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(arg, "=")
		switch name {
		case "-n", "--namespace", "--kube-context", "--kubeconfig":
			if !hasValue {
				if i+1 >= len(args) {
					return nil, exitcode.Withf(exitcode.Usage, "%s needs a value", name)
				}
				i++
				value = args[i]
			}
			switch name {
			case "-n", "--namespace":
				c.Settings.Namespace = value
			case "--kube-context":
				c.Settings.KubeContext = value
			case "--kubeconfig":
				c.Settings.KubeConfig = value
			}
			continue
		case "--post-renderer":
			return nil, exitcode.Withf(exitcode.Usage, "rotate-key upgrade sets the post-renderer itself (the guard); run helm upgrade directly to use another one")
		}
		if name == "--force" || name == "--force-replace" {
			if !hasValue || value != "false" {
				return nil, exitcode.Withf(exitcode.Usage, "refused: %s makes helm replace objects with the render, and the keyring Secret's render carries no rotation state: its phase, retire-after, lock and retired-up-to mark would be erased, and the next rotation would never retire the outgoing key. Nothing ran. Upgrade without %s (a field that will not update is a chart bug to fix, not to force)", arg, name)
			}
		}
		if flag := printsRelease(args, i); flag != "" {
			return nil, exitcode.Withf(exitcode.Usage, "refused: %s makes helm upgrade print the release it renders, and the rendered keyring Secret holds the keyring's key bytes. Nothing ran. To preview an upgrade use helm diff upgrade (it masks Secret data unless --show-secrets); to see what a rotation would do, helm rotate-key plan RELEASE; to upgrade, leave %s out", flag, flag)
		}
		if len(positional) < 2 {
			if strings.HasPrefix(arg, "-") {
				// A flag before RELEASE CHART may take the next word as its value: which helm flags do is
				// helm's business, so the order is fixed instead of guessed.
				return nil, exitcode.Withf(exitcode.Usage, "usage: rotate-key upgrade RELEASE CHART [helm upgrade flags]: put RELEASE and CHART first (found %q before them)", arg)
			}
			positional = append(positional, arg)
			continue
		}
		a.HelmArgs = append(a.HelmArgs, arg)
	}
	if len(positional) != 2 {
		return nil, exitcode.Withf(exitcode.Usage, "usage: rotate-key upgrade RELEASE CHART [helm upgrade flags]")
	}
	a.Release, a.Chart = positional[0], positional[1]
	a.Namespace = c.Settings.ResolveNamespace()
	return a, nil
}

const rollbackLong = `rollback returns a release's application to an earlier revision while keeping the live keyring.

helm rollback would re-apply that revision's stored manifest, keyring Secret included: after a rotation that
removes the new key or reverts active, and every token signed since is rejected (the chart's pre-rollback guard
refuses it). rotate-key rollback instead upgrades the release with that revision's stored chart and values, so the
chart renders the keyring from the live Secret, with the guard wired in. helm history shows it as a new revision
described "rotate-key rollback to revision N (keyring kept)". REVISION defaults to the previous one. Like every
upgrade of a chart built on the rotate-key library, it runs the chart's hook Jobs, and they carry a rotation in
progress forward (e.g. from RolledOut to Waiting; after retire-after they finish it).

A release left pending-rollback by a helm rollback that the chart's guard hook refused is cleared first: that
rollback applied nothing, so its revision's record is deleted (needs delete on Secrets, or on ConfigMaps with
HELM_DRIVER=configmap). A pending-rollback of a helm that died mid-rollback is cleared by a rollback to the last
deployed revision.`

func newRollbackCommand(c *action.Config) *cobra.Command {
	o := &targetCommand{cfg: c}
	a := &action.Rollback{}
	cmd := &cobra.Command{
		Use:   "rollback RELEASE [REVISION]",
		Short: "Roll the application back to a revision, keeping the live keyring (instead of helm rollback)",
		Long:  rollbackLong,
		Args:  usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.complete(args[:1])
			a.Target = o.t
			if len(args) == 2 {
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 1 {
					return exitcode.Withf(exitcode.Usage, "REVISION %q is not a revision number (helm history %s lists them)", args[1], args[0])
				}
				a.Revision = n
			}
			return a.Run(cmd.Context(), c)
		},
	}
	cmd.Flags().StringVar(&a.Chart, "chart", "", "the chart of that revision (path, URL or repo/name), when its stored chart has dependencies Helm did not keep")
	return cmd
}

// printsRelease names the flag at args[i] when it makes helm upgrade print the rendered release (manifest and
// values: a keyring rendered with lookup holds its key bytes there): --dry-run in any mode, an output format other
// than table, --debug (the standalone binary passes it on; under helm, Helm takes it, and the child never gets it).
func printsRelease(args []string, i int) string {
	arg := args[i]
	name, value, hasValue := strings.Cut(arg, "=")
	switch {
	case name == "--dry-run":
		if hasValue && value == "false" {
			return ""
		}
		return arg
	case name == "--debug":
		if hasValue && value == "false" {
			return ""
		}
		return arg
	case name == "-o" || name == "--output":
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
	case strings.HasPrefix(arg, "-o") && !strings.HasPrefix(arg, "--"):
		value = strings.TrimPrefix(arg[2:], "=")
	default:
		return ""
	}
	if value == "table" {
		return ""
	}
	return strings.TrimSpace(name + " " + value)
}
