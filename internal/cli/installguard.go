package cli

import (
	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
)

const installGuardLong = `install-guard installs the Helm 4 post-renderer plugin "rotate-key-guard" from this plugin's folder
(a symlink, so upgrading the rotate-key plugin upgrades the guard too).

Helm 3 and Helm 4 share ~/.local/share/helm/plugins by default, and one Helm 4 (apiVersion: v1) plugin there makes
Helm 3 fail to load every plugin. So install-guard refuses when the folder Helm 4 installs into is, or may be, read by
a Helm 3, and prints how to give Helm 4 its own folder. Helm 3 needs no plugin: put bin/rotate-key-guard on PATH.`

func newInstallGuardCommand(c *action.Config) *cobra.Command {
	a := &action.InstallGuard{}
	cmd := &cobra.Command{
		Use:   "install-guard",
		Short: "Install the Helm 4 post-renderer plugin rotate-key-guard (refuses a plugins folder Helm 3 also reads)",
		Long:  installGuardLong,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.Complete(c); err != nil {
				return err
			}
			return a.Run(cmd.Context(), c)
		},
	}
	cmd.Flags().BoolVar(&a.Helm4Only, "helm4-only", false, "state that HELM_DATA_HOME/HELM_PLUGINS are set for Helm 4 alone, when a Helm 3 on PATH would otherwise make the check refuse")
	cmd.Flags().BoolVar(&a.DryRun, "dry-run", false, "check and print what would be installed, install nothing")
	return cmd
}
