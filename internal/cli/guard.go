package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
)

// GuardOptions are the flags of `rotate-key guard`, the post-renderer. Helm tells a post-renderer nothing about
// the release, so the release, namespace and context come as --post-renderer-args.
type GuardOptions struct {
	Release string
	Secret  string
	Offline bool

	namespace string
	settings  *helmenv.Settings
	streams   Streams
	getenv    func(string) string
	// tty opens the operator's terminal (/dev/tty), where the Helm 4 plugin writes a refusal Helm would swallow.
	tty func() (io.WriteCloser, error)
}

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

func newGuardCommand(streams Streams, settings *helmenv.Settings, getenv func(string) string) *cobra.Command {
	o := &GuardOptions{settings: settings, streams: streams, getenv: getenv, tty: openTTY}
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Post-renderer: pass a release's manifests through only if they keep its keyring Secret intact",
		Long:  guardLong,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Release, "release", "", "name of the release being rendered (Helm does not tell a post-renderer)")
	cmd.Flags().StringVar(&o.Secret, "secret", "", "name of the keyring Secret (default: the Secret carrying rotate-key's annotations in the stream, else RELEASE"+DefaultSecretSuffix+")")
	cmd.Flags().BoolVar(&o.Offline, "offline", false, "check only what the stream itself proves; do not read the live Secret")
	return cmd
}

func openTTY() (io.WriteCloser, error) { return os.OpenFile("/dev/tty", os.O_WRONLY, 0) }

// Run reads the whole stream, checks it, and writes the original bytes back.
func (o *GuardOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	in, err := io.ReadAll(o.streams.In)
	if err != nil {
		return fmt.Errorf("guard: reading the rendered manifests from stdin: %w", err)
	}
	if err := o.check(ctx, in); err != nil {
		o.tellTerminal(err)
		return err
	}
	_, err = o.streams.Out.Write(in)
	return err
}

func (o *GuardOptions) check(ctx context.Context, in []byte) error {
	if o.Release == "" {
		return exitcode.Withf(exitcode.Usage, "guard needs the release name, which Helm does not pass to a post-renderer: add --post-renderer-args --release=NAME (and --post-renderer-args --namespace=NS)")
	}
	o.namespace = o.settings.ResolveNamespace()
	if len(in) == 0 {
		return exitcode.Withf(exitcode.Refused, "rotate-key guard refused release %q: the post-renderer received no manifests, and Helm would apply an empty release (deleting every object it manages); nothing was applied", o.Release)
	}
	secretName := o.Secret
	if secretName == "" {
		secretName = guard.SecretNameHint(in)
	}
	if secretName == "" {
		secretName = o.Release + DefaultSecretSuffix
	}
	refuse := func(findings []guard.Finding) error {
		return exitcode.With(exitcode.Refused, &guard.Refusal{Release: o.Release, Namespace: o.namespace, Secret: secretName, Where: guard.PostRenderer, Findings: findings})
	}
	rendered, err := guard.FindSecret(in, o.namespace, secretName)
	if err != nil {
		return exitcode.Withf(exitcode.Refused, "rotate-key guard refused release %q: %v; nothing was applied", o.Release, err)
	}
	if o.Offline {
		if f := guard.CheckOffline(rendered); len(f) > 0 {
			return refuse(f)
		}
		return nil
	}
	v, err := judgeLive(ctx, o.settings, o.namespace, secretName, func(live *guard.Live, now time.Time) []guard.Finding {
		return guard.Check(rendered, live, now)
	})
	if err != nil {
		return o.failClosed(secretName, err)
	}
	if len(v.findings) == 0 {
		return nil
	}
	return v.refuse(ctx, "guard", &guard.Refusal{Release: o.Release, Namespace: o.namespace, Secret: secretName, Where: guard.PostRenderer, Findings: v.findings})
}

// failClosed refuses when the live Secret cannot be read: an unchecked upgrade could drop keys.
func (o *GuardOptions) failClosed(secret string, err error) error {
	return exitcode.Withf(exitcode.Refused, "rotate-key guard refused release %q: cannot read keyring Secret %s/%s to compare (%v), and an unchecked upgrade could drop keys; nothing was applied. Check access (kubectl auth can-i get secret/%s -n %s) and pass --post-renderer-args --namespace=NS --post-renderer-args --kube-context=CTX if Helm's differ from the defaults, or add --post-renderer-args --offline to check only the stream",
		o.Release, o.namespace, secret, err, secret, o.namespace)
}

// tellTerminal writes a refusal to the operator's terminal when the guard runs as the Helm 4 plugin: Helm 4 does
// not show a post-renderer's stderr, only that it failed. Helm 3 shows stderr in its error, so nothing is added.
func (o *GuardOptions) tellTerminal(err error) {
	if o.getenv("HELM_PLUGIN_NAME") != GuardExecutable {
		return
	}
	tty, ttyErr := o.tty()
	if ttyErr != nil {
		return // no terminal (CI): the Event on the Secret and the exit code remain
	}
	defer tty.Close()
	fmt.Fprintf(tty, "\n%v\n\n", err)
}
