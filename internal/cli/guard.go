package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
)

const guardLong = `guard is a Helm post-renderer: it reads the rendered manifests on stdin and writes them back
byte for byte on stdout when they keep the release's keyring Secret intact, or exits 6 so that Helm applies
nothing. It reads the live Secret (one GET, never a LIST) and refuses a render that:
  - lacks the Secret (e.g. --reset-values, or --set without --reuse-values, turned off the values rendering it),
  - removes a key version the live Secret has, changes a key's bytes, or sets active to something else —
    except exactly the step a rotation in progress expects (promote after the rollout, retire after the TTL),
  - drops the helm.sh/resource-policy: keep annotation.
A first install (no live Secret) passes. It fails closed when the Secret cannot be read; --offline checks only
what the stream alone proves. Empty input is refused (Helm would apply nothing and delete everything). Only the
documents that can hold a Secret are parsed (invalid YAML there is refused); Helm parses the rest right after.

  Helm 3:  put bin/rotate-key-guard on PATH, then
           helm upgrade R CHART --post-renderer rotate-key-guard --post-renderer-args --release=R \
             --post-renderer-args --namespace=NS
  Helm 4:  helm rotate-key install-guard, then the same command line
  Either:  helm rotate-key upgrade R CHART [helm upgrade flags]   (wires all of this in)`

// guardCommand is `rotate-key guard`, the post-renderer. Helm tells a post-renderer nothing about the release, so
// the release, namespace and context come as --post-renderer-args.
type guardCommand struct {
	cfg *action.Config
	a   action.Guard
	// tty opens the operator's terminal (/dev/tty), where the Helm 4 plugin writes a refusal Helm would swallow.
	tty func() (io.WriteCloser, error)
}

func newGuardCommand(c *action.Config) *cobra.Command {
	o := &guardCommand{cfg: c, tty: openTTY}
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Post-renderer: pass a release's manifests through only if they keep its keyring Secret intact",
		Long:  guardLong,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := io.ReadAll(c.In)
			if err != nil {
				return fmt.Errorf("guard: reading the rendered manifests from stdin: %w", err)
			}
			err = o.validate()
			if err == nil {
				// Only a namespace given as a flag: under Helm nothing else names the release's (the kubeconfig's
				// would be a guess, and a wrong one reads "not found").
				if f := cmd.Flag("namespace"); f != nil && f.Changed {
					o.a.Namespace = c.Settings.Namespace
				}
				err = o.a.Check(cmd.Context(), c, in)
			}
			if err != nil {
				o.tellTerminal(err)
				return err
			}
			_, err = c.Out.Write(in)
			return err
		},
	}
	cmd.Flags().StringVar(&o.a.Release, "release", "", "name of the release being rendered (Helm does not tell a post-renderer)")
	cmd.Flags().StringVar(&o.a.Secret, "secret", "", "name of the keyring Secret (default: the Secret carrying rotate-key's annotations in the stream, else RELEASE"+DefaultSecretSuffix+")")
	cmd.Flags().BoolVar(&o.a.Offline, "offline", false, "check only what the stream itself proves; do not read the live Secret")
	return cmd
}

// validate refuses a guard run without the release's name (pure).
func (o *guardCommand) validate() error {
	if o.a.Release == "" {
		return exitcode.Withf(exitcode.Usage, "guard needs the release name, which Helm does not pass to a post-renderer: add --post-renderer-args --release=NAME (and --post-renderer-args --namespace=NS)")
	}
	return nil
}

func openTTY() (io.WriteCloser, error) { return os.OpenFile("/dev/tty", os.O_WRONLY, 0) }

// tellTerminal writes a refusal to the operator's terminal when the guard runs as the Helm 4 plugin: Helm 4 does
// not show a post-renderer's stderr, only that it failed. Helm 3 shows stderr in its error, so nothing is added.
func (o *guardCommand) tellTerminal(err error) {
	if o.cfg.Getenv("HELM_PLUGIN_NAME") != GuardExecutable {
		return
	}
	tty, ttyErr := o.tty()
	if ttyErr != nil {
		return // no terminal (CI): the Event on the Secret and the exit code remain
	}
	defer tty.Close()
	fmt.Fprintf(tty, "\n%v\n\n", err)
}
