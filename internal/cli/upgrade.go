package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/guard"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
)

// UpgradeOptions are the arguments of `rotate-key upgrade RELEASE CHART [helm upgrade flags]`: the user's own
// `helm upgrade` with the guard wired in.
type UpgradeOptions struct {
	Release, Chart string
	// HelmArgs are the helm upgrade flags, passed through unchanged.
	HelmArgs []string

	namespace string
	settings  *helmenv.Settings
	streams   Streams
}

const upgradeLong = `upgrade runs $HELM_BIN upgrade RELEASE CHART [flags] with the rotate-key guard as its post-renderer
(the release, namespace and context passed to it), so that the upgrade is refused before anything is sent when it
would skip, drop or alter the release's keyring Secret. Every flag is passed to helm upgrade unchanged, and
helm's exit code is kept.

--reset-values is checked up front: when the chart would not render the keyring Secret with the values reset, the
upgrade is refused with the alternatives (--reuse-values, --reset-then-reuse-values).`

func newUpgradeCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	o := &UpgradeOptions{settings: settings, streams: streams}
	return &cobra.Command{
		Use:                "upgrade RELEASE CHART [helm upgrade flags]",
		Short:              "helm upgrade with the keyring guard wired in",
		Long:               upgradeLong,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if slices.Contains(args, "--help") || slices.Contains(args, "-h") {
				return cmd.Help()
			}
			if err := o.Complete(args); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
}

// Complete splits the arguments and takes the namespace and cluster flags (which helm also receives).
func (o *UpgradeOptions) Complete(args []string) error {
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		switch name {
		case "-n", "--namespace", "--kube-context", "--kubeconfig":
			if !hasValue {
				if i+1 >= len(args) {
					return exitcode.Withf(exitcode.Usage, "%s needs a value", name)
				}
				i++
				value = args[i]
			}
			switch name {
			case "-n", "--namespace":
				o.settings.Namespace = value
			case "--kube-context":
				o.settings.KubeContext = value
			case "--kubeconfig":
				o.settings.KubeConfig = value
			}
			continue
		case "--post-renderer":
			return exitcode.Withf(exitcode.Usage, "rotate-key upgrade sets the post-renderer itself (the guard); run helm upgrade directly to use another one")
		}
		if len(positional) < 2 {
			if strings.HasPrefix(a, "-") {
				// A flag before RELEASE CHART may take the next word as its value: which helm flags do is
				// helm's business, so the order is fixed instead of guessed.
				return exitcode.Withf(exitcode.Usage, "usage: rotate-key upgrade RELEASE CHART [helm upgrade flags]: put RELEASE and CHART first (found %q before them)", a)
			}
			positional = append(positional, a)
			continue
		}
		o.HelmArgs = append(o.HelmArgs, a)
	}
	if len(positional) != 2 {
		return exitcode.Withf(exitcode.Usage, "usage: rotate-key upgrade RELEASE CHART [helm upgrade flags]")
	}
	o.Release, o.Chart = positional[0], positional[1]
	o.namespace = o.settings.ResolveNamespace()
	return nil
}

// Run checks --reset-values, then runs helm upgrade with the guard and keeps its exit code.
func (o *UpgradeOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if slices.Contains(o.HelmArgs, "--reset-values") {
		if err := o.checkResetValues(ctx); err != nil {
			return err
		}
	}
	guardArgs, err := guardPostRenderer(ctx, o.settings, o.Release, o.namespace)
	if err != nil {
		return err
	}
	args := append([]string{"upgrade", o.Release, o.Chart}, o.clusterArgs()...)
	args = append(append(args, o.HelmArgs...), guardArgs...)
	return runHelm(ctx, o.settings, o.streams, args)
}

func (o *UpgradeOptions) clusterArgs() []string { return o.settings.ClusterFlags(o.namespace) }

// checkResetValues renders the upgrade with its flags (a server-side dry run, output kept in memory: it holds
// the Secret) and refuses up front when the keyring Secret would not be rendered.
func (o *UpgradeOptions) checkResetValues(ctx context.Context) error {
	target, err := connectKeyring(o.settings, o.namespace, o.Release+DefaultSecretSuffix)
	if err != nil {
		return err
	}
	args := append(append([]string{"upgrade", o.Release, o.Chart}, o.clusterArgs()...), o.HelmArgs...)
	args = append(args, "--dry-run=server", "-o", "json")
	cmd := exec.CommandContext(ctx, o.settings.HelmBin, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.Env = append(os.Environ(), o.settings.Environ()...)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("rendering the upgrade with --reset-values (helm upgrade --dry-run=server) failed: %v\n%s", err, stderr.String())
	}
	var rel struct {
		Manifest string `json:"manifest"`
	}
	if err := json.Unmarshal(out.Bytes(), &rel); err != nil {
		return fmt.Errorf("reading helm's dry-run output: %w", err)
	}
	name := guard.SecretNameHint([]byte(rel.Manifest))
	if name == "" {
		name = o.Release + DefaultSecretSuffix
	}
	target.SecretName = name
	if _, err := target.Secret(ctx); apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("cannot read keyring Secret %s/%s: %w", o.namespace, name, err)
	}
	rendered, err := guard.FindSecret([]byte(rel.Manifest), o.namespace, name)
	if err != nil || rendered != nil {
		return err // rendered: the guard compares it during the real upgrade
	}
	return exitcode.With(exitcode.Refused, fmt.Errorf("refused before anything ran: with --reset-values, release %q's chart does not render its keyring Secret %s/%s (the values that render it are not the chart's defaults), so Helm would stop managing it and a later upgrade could regenerate its keys.\nUse --reuse-values (keep the release's values and add your changes) or --reset-then-reuse-values (the chart's new defaults, then the release's values, then your changes)", o.Release, o.namespace, name))
}

// guardPostRenderer returns the helm flags that run the guard for this release: on Helm 3 this binary as an
// executable, on Helm 4 the rotate-key-guard plugin (helm rotate-key install-guard).
func guardPostRenderer(ctx context.Context, settings *helmenv.Settings, release, namespace string) ([]string, error) {
	version, err := exec.CommandContext(ctx, settings.HelmBin, "version", "--template", "{{.Version}}").Output()
	if err != nil {
		return nil, fmt.Errorf("asking %s for its version: %w", settings.HelmBin, err)
	}
	pass := append([]string{"--release=" + release}, settings.ClusterFlags(namespace)...)
	var args []string
	if strings.HasPrefix(string(version), "v3.") {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		args = []string{"--post-renderer", filepath.Clean(self), "--post-renderer-args", "guard"}
	} else {
		plugins, err := exec.CommandContext(ctx, settings.HelmBin, "plugin", "list").Output()
		if err != nil || !strings.Contains(string(plugins), GuardExecutable) {
			return nil, exitcode.Withf(exitcode.Usage, "the Helm 4 post-renderer plugin %s is not installed: run helm rotate-key install-guard first", GuardExecutable)
		}
		args = []string{"--post-renderer", GuardExecutable}
	}
	for _, p := range pass {
		args = append(args, "--post-renderer-args", p)
	}
	return args, nil
}

// runHelm runs $HELM_BIN with the operator's streams and keeps its exit code.
func runHelm(ctx context.Context, settings *helmenv.Settings, streams Streams, args []string) error {
	fmt.Fprintf(streams.ErrOut, "Running: %s\n", shellQuote(append([]string{settings.HelmBin}, args...)))
	cmd := exec.CommandContext(ctx, settings.HelmBin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = streams.In, streams.Out, streams.ErrOut
	cmd.Env = append(os.Environ(), settings.Environ()...)
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exitcode.With(exitcode.Code(exit.ExitCode()), fmt.Errorf("helm %s exited with %d", args[0], exit.ExitCode()))
	}
	return err
}
