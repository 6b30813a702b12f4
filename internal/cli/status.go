package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// DefaultSecretSuffix names the keyring Secret of a release when --secret is not given: <release>-requests-proxy-admin.
const DefaultSecretSuffix = "-requests-proxy-admin"

// StatusOptions are the flags and arguments of `rotate-key status`.
type StatusOptions struct {
	Release string
	Secret  string
	Output  string
	// AllNamespaces prints the fleet: every keyring in the cluster.
	AllNamespaces bool

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
	ReleaseError string `json:"releaseError,omitempty"`
	Secret       string `json:"secret"`
	SecretFound  bool   `json:"secretFound"`
	// Versions are the data keys holding key versions (their names show the naming style).
	Versions []string `json:"versions"`
	Active   string   `json:"active,omitempty"`
	Encoding string   `json:"encoding,omitempty"`
	// KeyringError is the broken invariant, when the Secret breaks one.
	KeyringError    string           `json:"keyringError,omitempty"`
	Phase           string           `json:"phase,omitempty"`
	RotationID      string           `json:"rotationId,omitempty"`
	From            string           `json:"from,omitempty"`
	To              string           `json:"to,omitempty"`
	RetireAfter     *time.Time       `json:"retireAfter,omitempty"`
	NextRotationDue *time.Time       `json:"nextRotationDue,omitempty"`
	Overdue         bool             `json:"overdue"`
	TTL             string           `json:"ttl,omitempty"`
	TTLSource       string           `json:"ttlSource,omitempty"`
	NextStep        string           `json:"nextStep,omitempty"`
	NextStepReason  string           `json:"nextStepReason,omitempty"`
	Lock            string           `json:"lock,omitempty"`
	Consumers       []ConsumerStatus `json:"consumers,omitempty"`
}

// ConsumerStatus is one consumer and, during a rollout, its progress.
type ConsumerStatus struct {
	Workload string `json:"workload"`
	Rollout  string `json:"rollout,omitempty"`
}

func newStatusCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	o := &StatusOptions{settings: settings, streams: streams}
	cmd := &cobra.Command{
		Use:   "status RELEASE | status --all-namespaces",
		Short: "Show a release's keyring: key versions and the active one (never key material); -A: every keyring",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			if o.AllNamespaces {
				if len(args) > 0 {
					return exitcode.Withf(exitcode.Usage, "status --all-namespaces takes no RELEASE")
				}
				return o.runFleet(cmd.Context())
			}
			if len(args) != 1 {
				return exitcode.Withf(exitcode.Usage, "status needs a RELEASE, or --all-namespaces (-A) for every keyring")
			}
			o.Complete(args)
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "every keyring in the cluster (the rotate-key library's label or rotate-key annotations): phase, active version, due dates")
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
	obs, err := observe(ctx, o.settings, o.namespace, o.Secret, o.Release, rotation.Overrides{})
	if err != nil {
		return err
	}
	report := StatusReport{Namespace: o.namespace, Secret: o.Secret, Versions: []string{}, Release: obs.release}
	if obs.releaseErr != nil {
		report.ReleaseError = obs.releaseErr.Error()
	}
	if obs.secret == nil {
		return o.print(report)
	}
	secret, target, st, now := obs.secret, obs.target, obs.state, obs.now
	report.SecretFound = true
	for name := range secret.Data {
		if versionKey.MatchString(name) {
			report.Versions = append(report.Versions, name)
		}
	}
	sort.Strings(report.Versions)
	if obs.keyringErr != nil {
		report.KeyringError = obs.keyringErr.Error()
	} else {
		report.Active, report.Encoding = keyring.Kid(obs.keyring.Active), obs.keyring.Encoding.String()
	}
	if obs.stateErr != nil {
		report.KeyringError = strings.TrimSpace(report.KeyringError + " " + obs.stateErr.Error())
		return o.print(report)
	}
	report.Phase, report.RotationID = string(st.Phase), st.RotationID
	if st.InProgress() {
		report.From, report.To = keyring.Kid(st.From), keyring.Kid(st.To)
	}
	if !st.RetireAfter.IsZero() {
		report.RetireAfter = &st.RetireAfter
	}
	if !st.NextRotationDue.IsZero() {
		report.NextRotationDue = &st.NextRotationDue
	}
	report.Overdue = overdue(st, now)
	if cfg, err := obs.config, obs.configErr; err == nil {
		report.TTL, report.TTLSource = cfg.TTL.String(), cfg.TTLSource
		if st.TTLUsed > 0 && st.InProgress() {
			report.TTL, report.TTLSource = st.TTLUsed.String(), "recorded when this rotation's promotion rolled out"
		}
		value := "" // no rollout to report outside the rollout phases
		if rotation.RolloutName(st.Phase) != "" {
			value = st.RotationID + "/" + rotation.RolloutName(st.Phase)
		}
		if consumers, rollouts, err := target.Survey(ctx, cfg.Consumers, value); err == nil {
			for i, c := range consumers {
				cs := ConsumerStatus{Workload: c.Ref.String()}
				if i < len(rollouts) {
					cs.Rollout = rollouts[i].Progress
				}
				report.Consumers = append(report.Consumers, cs)
			}
		}
	} else {
		report.KeyringError = strings.TrimSpace(report.KeyringError + " " + err.Error())
	}
	d := rotation.Next(st, now, true, false)
	report.NextStep, report.NextStepReason = string(d.Step), d.Reason
	if l, err := rotation.ParseLease(secret.Annotations[rotation.AnnoLease]); err == nil && l != nil {
		report.Lock = fmt.Sprintf("%s, renewed %s ago", l.Holder, now.Sub(l.Renewed).Round(time.Second))
	}
	return o.print(report)
}

// versionKey matches the data keys that hold key versions in either naming style.
var (
	versionKey = regexp.MustCompile(`^(key\.)?v[0-9]+$`)
)

// writeStructured writes v as JSON or YAML when format names one, and reports whether it did.
func writeStructured(w io.Writer, format string, v any) (bool, error) {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = w.Write(b)
		return true, err
	}
	return false, nil
}

func (o *StatusOptions) print(r StatusReport) error {
	if done, err := writeStructured(o.streams.Out, o.Output, r); done {
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
	if r.KeyringError != "" {
		fmt.Fprintf(w, "PROBLEM:\t%s\n", r.KeyringError)
	}
	if r.Phase != "" {
		phase := r.Phase
		if r.RotationID != "" && r.Phase != string(rotation.Idle) {
			phase = fmt.Sprintf("%s (rotation %s, %s -> %s)", r.Phase, r.RotationID, r.From, r.To)
		}
		fmt.Fprintf(w, "PHASE:\t%s\n", phase)
	}
	if r.TTL != "" {
		fmt.Fprintf(w, "TTL:\t%s (%s)\n", r.TTL, r.TTLSource)
	}
	if r.RetireAfter != nil {
		fmt.Fprintf(w, "RETIRE AFTER:\t%s\n", r.RetireAfter.UTC().Format(time.RFC3339))
	}
	if r.NextRotationDue != nil {
		fmt.Fprintf(w, "NEXT ROTATION DUE:\t%s\n", r.NextRotationDue.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "OVERDUE:\t%v\n", r.Overdue)
	if r.Lock != "" {
		fmt.Fprintf(w, "LOCK:\t%s\n", r.Lock)
	}
	for _, c := range r.Consumers {
		fmt.Fprintf(w, "CONSUMER:\t%s %s\n", c.Workload, c.Rollout)
	}
	if r.NextStep != "" {
		fmt.Fprintf(w, "NEXT:\t%s — %s\n", r.NextStep, r.NextStepReason)
	}
	return w.Flush()
}
