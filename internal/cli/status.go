package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// statusCommand is `rotate-key status RELEASE` and `status --all-namespaces`.
type statusCommand struct {
	targetCommand
	output string
	// allNamespaces prints the fleet: every keyring in the cluster.
	allNamespaces bool
}

func newStatusCommand(c *action.Config) *cobra.Command {
	o := &statusCommand{targetCommand: targetCommand{cfg: c}}
	cmd := &cobra.Command{
		Use:   "status RELEASE | status --all-namespaces",
		Short: "Show a release's keyring: key versions and the active one (never key material); -A: every keyring",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.validate(args); err != nil {
				return err
			}
			if o.allNamespaces {
				entries, err := action.Fleet{}.Run(cmd.Context(), c)
				if err != nil {
					return err
				}
				return printFleet(c.Out, o.output, entries)
			}
			o.complete(args)
			a := action.Status{Target: o.t}
			report, err := a.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			return printStatus(c.Out, o.output, report)
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "every keyring in the cluster (the rotate-key library's label or rotate-key annotations): phase, active version, due dates")
	o.addSecretFlag(cmd)
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// validate checks the output format and the arguments (pure).
func (o *statusCommand) validate(args []string) error {
	switch o.output {
	case "table", "json", "yaml":
	default:
		return exitcode.Withf(exitcode.Usage, "--output %q is not supported: use table, json or yaml", o.output)
	}
	switch {
	case o.allNamespaces && len(args) > 0:
		return exitcode.Withf(exitcode.Usage, "status --all-namespaces takes no RELEASE")
	case !o.allNamespaces && len(args) != 1:
		return exitcode.Withf(exitcode.Usage, "status needs a RELEASE, or --all-namespaces (-A) for every keyring")
	}
	return nil
}

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

func printStatus(out io.Writer, format string, r action.StatusReport) error {
	if done, err := writeStructured(out, format, r); done {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "NAMESPACE:\t%s\n", r.Namespace)
	if r.Release != nil {
		fmt.Fprintf(w, "RELEASE:\t%s (revision %d, %s, chart %s-%s)\n", r.Release.Name, r.Release.Revision, r.Release.Status, r.Release.Chart, r.Release.ChartVersion)
	} else {
		fmt.Fprintf(w, "RELEASE:\t%s (not readable: %s)\n", r.ReleaseName, r.ReleaseError)
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
	if r.Protection != "" {
		fmt.Fprintf(w, "PROTECTION:\t%s\n", r.Protection)
	}
	if r.Resurrected != "" {
		fmt.Fprintf(w, "RETIRED KEY BACK:\t%s\n", r.Resurrected)
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

func printFleet(out io.Writer, format string, entries []action.FleetEntry) error {
	if done, err := writeStructured(out, format, entries); done {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAMESPACE\tRELEASE\tSECRET\tPHASE\tACTIVE\tVERSIONS\tRETIRE AFTER\tNEXT DUE\tOVERDUE")
	day := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, e := range entries {
		phase := e.Phase
		if e.Error != "" {
			phase = "error: " + e.Error
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%v\n", e.Namespace, e.Release, e.Secret, phase, e.Active, e.Versions, day(e.RetireAfter), day(e.NextRotationDue), e.Overdue)
	}
	return w.Flush()
}
