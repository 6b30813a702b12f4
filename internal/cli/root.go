// Package cli holds the cobra commands of rotate-key. Commands only parse flags and the environment: each has an
// Options value filled by Complete (environment, defaults, namespace — once, at the edge), checked by Validate
// (pure), and carried out by Run (I/O on injected streams). Behaviour lives in the packages below.
package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
)

// Streams are the standard streams a command reads and writes; tests pass buffers.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// StdStreams returns the process's standard streams.
func StdStreams() Streams { return Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// GuardExecutable is the name under which the binary acts as the post-renderer: Helm 3 runs an executable of this
// name found on PATH, and Helm 4 runs the plugin of the same name, so `--post-renderer rotate-key-guard` works on both.
const GuardExecutable = "rotate-key-guard"

const rootLong = `rotate-key rotates the HMAC signing keys a Helm release keeps in a Kubernetes Secret, safely:
add the new key, roll every consumer, promote it, wait for the token TTL, retire the old key — with the state kept
in the cluster, so a crash or a 90-day pause never loses track.

Run it as a Helm plugin (helm rotate-key ...) or standalone (rotate-key ...). Under Helm, the namespace, kube
context and credentials of the helm command line reach it through HELM_* variables; standalone, the same flags work.

Exit codes (docs/exit-codes.md):
`

// NewRootCommand builds the command tree. getenv is os.Getenv in production.
func NewRootCommand(streams Streams, getenv func(string) string) *cobra.Command {
	settings := helmenv.FromEnv(getenv)
	run := &RunOptions{settings: &settings, streams: streams, isTerminal: stdinIsTerminal}
	root := &cobra.Command{
		Use:           "rotate-key [RELEASE]",
		Short:         "Rotate the signing keys of a Helm release without invalidating a live token",
		Long:          rootLong + exitCodeHelp(),
		Example:       "  helm rotate-key my-release          # start, resume or finish the rotation (same as: run my-release)\n  helm -n team rotate-key status my-release",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return run.Execute(cmd.Context(), args)
		},
	}
	run.AddFlags(root)
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	settings.AddFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return exitcode.With(exitcode.Usage, fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath()))
	})
	root.AddCommand(
		newVersionCommand(streams),
		newRunCommand(streams, &settings),
		newRetireCommand(streams, &settings),
		newAbortCommand(streams, &settings),
		newCheckCommand(streams, &settings),
		newPlanCommand(streams, &settings),
		newRemindCommand(streams, &settings),
		newStatusCommand(streams, &settings),
		newGuardCommand(streams, &settings, getenv),
		newInstallGuardCommand(streams, &settings, getenv),
		newHookCommand(streams, &settings, getenv),
		newUpgradeCommand(streams, &settings),
		newRollbackCommand(streams, &settings),
	)
	return root
}

// Args maps the process's arguments to the command line: invoked as rotate-key-guard (a symlink or copy of the
// binary), it is the guard.
func Args(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	if strings.TrimSuffix(filepath.Base(argv[0]), ".exe") == GuardExecutable {
		return append([]string{"guard"}, argv[1:]...)
	}
	return argv[1:]
}

// Report prints err for the operator and returns the process exit code.
func Report(err error, stderr io.Writer) int {
	if err == nil {
		return int(exitcode.OK)
	}
	code := exitcode.Of(err)
	if code != exitcode.Waiting { // waiting is a state, not an error: the command already said when to come back
		fmt.Fprintf(stderr, "Error: %v\n", err)
	}
	return int(code)
}

// usageArgs marks argument-count errors as usage errors (exit code 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return exitcode.With(exitcode.Usage, fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath()))
		}
		return nil
	}
}

func exitCodeHelp() string {
	var b strings.Builder
	for _, e := range exitcode.Table {
		fmt.Fprintf(&b, "  %d  %-10s %s\n", e.Code, e.Name, e.Meaning)
	}
	return b.String()
}
