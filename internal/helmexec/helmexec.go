// Package helmexec is the one place that runs a Helm CLI: the Helm that invoked the plugin ($HELM_BIN) for the hook
// path, upgrade, rollback and install-guard, and the other Helms install-guard asks where they read plugins from.
// Commands reach it through the Runner interface, so their tests record the command lines instead of running Helm.
package helmexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Runner runs one Helm CLI.
type Runner interface {
	// Run runs helm with args on the given streams. A non-zero exit is an *ExitError carrying helm's code.
	Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
	// Output runs helm and returns its stdout; on failure the error holds its stderr.
	Output(ctx context.Context, args ...string) ([]byte, error)
}

// ExitError is a Helm run that exited non-zero.
type ExitError struct {
	Code int
	Args []string
}

func (e *ExitError) Error() string {
	name := "helm"
	if len(e.Args) > 0 {
		name += " " + e.Args[0]
	}
	return fmt.Sprintf("%s exited with %d", name, e.Code)
}

// WaitDelay is how long a cancelled Helm may take to stop after its interrupt before it is killed.
const WaitDelay = 30 * time.Second

// Exec runs the Helm binary Bin with the environment Env (the process's own plus the plugin's HELM_* settings).
type Exec struct {
	Bin string
	Env []string
}

// Run implements Runner.
func (h Exec) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env = stdin, stdout, stderr, h.Env
	// A cancelled run (Ctrl-C, a Job's SIGTERM) interrupts Helm the way the terminal would, so that it can mark its
	// release failed instead of leaving it pending; only a Helm that ignores that is killed, after WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = WaitDelay
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return &ExitError{Code: exit.ExitCode(), Args: args}
	}
	return err
}

// Output implements Runner.
func (h Exec) Output(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	if err := h.Run(ctx, args, nil, &stdout, &stderr); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", h.Bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Major asks a Helm for its major version: 3 or 4 (Helm 3 and 4 run post-renderers and plugins differently).
func Major(ctx context.Context, h Runner) (int, error) {
	out, err := h.Output(ctx, "version", "--template", "{{.Version}}")
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(string(out))
	switch {
	case strings.HasPrefix(v, "v3."):
		return 3, nil
	case strings.HasPrefix(v, "v4."):
		return 4, nil
	}
	return 0, fmt.Errorf("unrecognised Helm version %q", v)
}

// Quote renders argv as a command line a shell reads back the same, quoting only the words that need it (for the
// operator to copy, and for golden files).
func Quote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+") == "" {
			out[i] = a
		} else {
			out[i] = QuoteWord(a)
		}
	}
	return strings.Join(out, " ")
}

// QuoteWord single-quotes one word for a POSIX shell.
func QuoteWord(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Settings is what ForSettings reads when it runs Helm: the binary and the HELM_* environment of the surrounding
// helm command line (package helmenv's Settings satisfies it).
type Settings interface {
	Environ() []string
}

// ForSettings runs bin with the process's environment plus the settings' HELM_* variables, read at each run (the
// settings are final only once the command line is parsed).
func ForSettings(bin func() string, s Settings, environ func() []string) Runner {
	return lazy{bin: bin, settings: s, environ: environ}
}

type lazy struct {
	bin      func() string
	settings Settings
	environ  func() []string
}

func (l lazy) exec() Exec {
	return Exec{Bin: l.bin(), Env: append(l.environ(), l.settings.Environ()...)}
}

func (l lazy) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return l.exec().Run(ctx, args, stdin, stdout, stderr)
}

func (l lazy) Output(ctx context.Context, args ...string) ([]byte, error) {
	return l.exec().Output(ctx, args...)
}
