package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
)

// targetCommand is a command on one release's keyring: RELEASE and --secret.
type targetCommand struct {
	cfg *action.Config
	t   action.Target
}

// complete fills the target from the arguments: --secret defaults to RELEASE-requests-proxy-admin.
func (o *targetCommand) complete(args []string) {
	o.t.Release, o.t.Namespace = args[0], o.cfg.Settings.ResolveNamespace()
	if o.t.Secret == "" {
		o.t.Secret = o.t.Release + DefaultSecretSuffix
	}
}

func (o *targetCommand) addSecretFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.t.Secret, "secret", "", "name of the keyring Secret (default RELEASE"+DefaultSecretSuffix+")")
}

func newCheckCommand(c *action.Config) *cobra.Command {
	o := &targetCommand{cfg: c}
	cmd := &cobra.Command{
		Use:   "check RELEASE",
		Short: "Exit 5 when a rotation or retirement is overdue or a retired key is back (for cron and CI alerting)",
		Long: "check reads the keyring's state and exits 5 (overdue) when the next rotation is past due, when the old key\n" +
			"is still trusted a day after it could have been retired, when a rotation stopped half-way for over an hour, or\n" +
			"when a retired version is back in the keyring (it prints how to remove it); 0 otherwise. It changes nothing.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.complete(args)
			a := action.Check{Target: o.t}
			line, err := a.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, line)
			return nil
		},
	}
	o.addSecretFlag(cmd)
	return cmd
}
