package cli

import (
	"bytes"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/kustomize/kyaml/kio"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
)

// GuardOptions are the flags of `rotate-key guard`, the post-renderer. Helm tells a post-renderer nothing about
// the release, so the release (and, on Helm 4, the namespace and context) come as --post-renderer-args.
type GuardOptions struct {
	Release string
	Offline bool

	settings *helmenv.Settings
	streams  Streams
}

const guardLong = `guard is a Helm post-renderer: it reads the rendered manifests on stdin and writes them back
byte for byte on stdout when they keep the release's keyring Secret intact, or exits non-zero so that Helm applies
nothing. It never writes empty output for non-empty input.

  Helm 3:  put bin/rotate-key-guard on PATH, then
           helm upgrade R CHART --post-renderer rotate-key-guard --post-renderer-args --release=R
  Helm 4:  helm rotate-key install-guard, then
           helm upgrade R CHART --post-renderer rotate-key-guard --post-renderer-args --release=R

The comparison with the live keyring Secret arrives with the upgrade guard (docs/design.md); this build checks
that the stream is valid YAML and passes it through unchanged.`

func newGuardCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	o := &GuardOptions{settings: settings, streams: streams}
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Post-renderer: pass a release's manifests through only if they keep its keyring Secret intact",
		Long:  guardLong,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			return o.Run()
		},
	}
	cmd.Flags().StringVar(&o.Release, "release", "", "name of the release being rendered (Helm does not tell a post-renderer)")
	cmd.Flags().BoolVar(&o.Offline, "offline", false, "check only what the stream itself proves; do not read the live Secret")
	return cmd
}

// Run reads the whole stream, checks it, and writes the original bytes back.
func (o *GuardOptions) Run() error {
	in, err := io.ReadAll(o.streams.In)
	if err != nil {
		return fmt.Errorf("guard: reading the rendered manifests from stdin: %w", err)
	}
	if _, err := (&kio.ByteReader{Reader: bytes.NewReader(in), OmitReaderAnnotations: true}).Read(); err != nil {
		return exitcode.Withf(exitcode.Refused, "guard refused release %q: the rendered manifests are not valid YAML (%v); nothing was applied", o.Release, err)
	}
	_, err = o.streams.Out.Write(in)
	return err
}
