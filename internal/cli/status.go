package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/yaml"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/release"
)

// DefaultSecretSuffix names the keyring Secret of a release when --secret is not given: <release>-requests-proxy-admin.
const DefaultSecretSuffix = "-requests-proxy-admin"

// StatusOptions are the flags and arguments of `rotate-key status`.
type StatusOptions struct {
	Release string
	Secret  string
	Output  string

	namespace string
	settings  *helmenv.Settings
	streams   Streams
}

// StatusReport is what `status` prints. It names key versions, never key material.
type StatusReport struct {
	Namespace string           `json:"namespace"`
	Release   *release.Summary `json:"release,omitempty"`
	// ReleaseError says why the release record could not be read (for example RBAC in a hook Job); the keyring
	// part of the report does not depend on it.
	ReleaseError string   `json:"releaseError,omitempty"`
	Secret       string   `json:"secret"`
	SecretFound  bool     `json:"secretFound"`
	Versions     []string `json:"versions"`
	Active       string   `json:"active,omitempty"`
}

func newStatusCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	o := &StatusOptions{settings: settings, streams: streams}
	cmd := &cobra.Command{
		Use:   "status RELEASE",
		Short: "Show a release's keyring: key versions and the active one (never key material)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Complete(args)
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Secret, "secret", "", "name of the keyring Secret (default RELEASE"+DefaultSecretSuffix+")")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// Complete fills the release, the default Secret name and the namespace.
func (o *StatusOptions) Complete(args []string) {
	o.Release = args[0]
	if o.Secret == "" {
		o.Secret = o.Release + DefaultSecretSuffix
	}
	o.namespace = o.settings.ResolveNamespace()
}

// Validate checks the output format.
func (o *StatusOptions) Validate() error {
	switch o.Output {
	case "table", "json", "yaml":
		return nil
	}
	return exitcode.Withf(exitcode.Usage, "--output %q is not supported: use table, json or yaml", o.Output)
}

// Run reads the release record and the keyring Secret and prints the report.
func (o *StatusOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, err := o.settings.RESTConfig()
	if err != nil {
		return err
	}
	cluster, err := kube.Connect(cfg, o.namespace)
	if err != nil {
		return err
	}
	report := StatusReport{Namespace: o.namespace, Secret: o.Secret, Versions: []string{}}
	if data, err := cluster.ReleaseRecord(ctx, o.settings.Driver, o.Release); err != nil {
		report.ReleaseError = err.Error()
	} else if rel, err := release.Decode(data); err != nil {
		report.ReleaseError = err.Error()
	} else {
		s := release.Summarize(rel)
		report.Release = &s
	}
	secret, err := cluster.Secret(ctx, o.Secret)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("cannot show the keyring of release %q: %w", o.Release, err)
	default:
		report.SecretFound = true
		for name := range secret.Data {
			if versionKey.MatchString(name) {
				report.Versions = append(report.Versions, name)
			}
		}
		sort.Strings(report.Versions)
		if kid := string(secret.Data["active"]); kidPattern.MatchString(kid) {
			report.Active = kid
		} else if _, ok := secret.Data["active"]; ok {
			report.Active = "(invalid)"
		}
	}
	return o.print(report)
}

// versionKey matches the data keys that hold key versions in either naming style; kidPattern a key id.
var (
	versionKey = regexp.MustCompile(`^(key\.)?v[0-9]+$`)
	kidPattern = regexp.MustCompile(`^v[0-9]+$`)
)

func (o *StatusOptions) print(r StatusReport) error {
	switch o.Output {
	case "json":
		enc := json.NewEncoder(o.streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "yaml":
		b, err := yaml.Marshal(r)
		if err != nil {
			return err
		}
		_, err = o.streams.Out.Write(b)
		return err
	}
	w := tabwriter.NewWriter(o.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "NAMESPACE:\t%s\n", r.Namespace)
	if r.Release != nil {
		fmt.Fprintf(w, "RELEASE:\t%s (revision %d, %s, chart %s-%s)\n", r.Release.Name, r.Release.Revision, r.Release.Status, r.Release.Chart, r.Release.ChartVersion)
	} else {
		fmt.Fprintf(w, "RELEASE:\t%s (not readable: %s)\n", o.Release, r.ReleaseError)
	}
	if !r.SecretFound {
		fmt.Fprintf(w, "SECRET:\t%s (not found)\n", r.Secret)
		return w.Flush()
	}
	fmt.Fprintf(w, "SECRET:\t%s\n", r.Secret)
	fmt.Fprintf(w, "VERSIONS:\t%v\n", r.Versions)
	fmt.Fprintf(w, "ACTIVE:\t%s\n", r.Active)
	return w.Flush()
}
