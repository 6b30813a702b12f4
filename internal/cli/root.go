// Package cli holds the cobra commands of rotate-key. A command binds its flags onto an action (package action),
// completes it from the arguments and the environment (namespace, defaults — once, at the edge), validates it
// (pure), runs it over an action.Config, and prints the value it returns. Behaviour lives in package action and
// below; NewConfig, at the edge, builds the production Config.
package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
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

// GuardExecutable is the name under which the binary acts as the post-renderer (action.GuardExecutable).
const GuardExecutable = action.GuardExecutable

const rootLong = `rotate-key rotates the HMAC signing keys a Helm release keeps in a Kubernetes Secret, safely:
add the new key, roll every consumer, promote it, wait for the token TTL, retire the old key — with the state kept
in the cluster, so a crash or a 90-day pause never loses track.

Run it as a Helm plugin (helm rotate-key ...) or standalone (rotate-key ...). Under Helm, the namespace, kube
context and credentials of the helm command line reach it through HELM_* variables; standalone, the same flags work.

Exit codes (docs/exit-codes.md):
`

// NewRootCommand builds the command tree over the production Config. getenv is os.Getenv in production.
func NewRootCommand(streams Streams, getenv func(string) string) *cobra.Command {
	settings := helmenv.FromEnv(getenv)
	return NewRoot(NewConfig(&settings, streams, getenv))
}

// NewRoot builds the command tree over c: every command runs its action over c (tests pass a Config around a fake
// clientset and a recording Helm).
func NewRoot(c *action.Config) *cobra.Command {
	streams := Streams{In: c.In, Out: c.Out, ErrOut: c.ErrOut}
	run := newRotateCommand(c, action.ModeRun)
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
			return run.execute(cmd.Context(), args)
		},
	}
	run.addFlags(root)
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	c.Settings.AddFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return exitcode.With(exitcode.Usage, fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath()))
	})
	root.AddCommand(
		newVersionCommand(streams),
		newRunCommand(c),
		newRetireCommand(c),
		newAbortCommand(c),
		newCheckCommand(c),
		newPlanCommand(c),
		newRemindCommand(c),
		newStatusCommand(c),
		newGuardCommand(c),
		newInstallGuardCommand(c),
		newHookCommand(c),
		newUpgradeCommand(c),
		newRollbackCommand(c),
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
