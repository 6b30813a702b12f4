package cli

import (
	"context"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// FleetEntry is one keyring in `status --all-namespaces`: versions and state, never key material.
type FleetEntry struct {
	Namespace       string     `json:"namespace"`
	Release         string     `json:"release,omitempty"`
	Secret          string     `json:"secret"`
	Phase           string     `json:"phase,omitempty"`
	Active          string     `json:"active,omitempty"`
	Versions        int        `json:"versions"`
	RetireAfter     *time.Time `json:"retireAfter,omitempty"`
	NextRotationDue *time.Time `json:"nextRotationDue,omitempty"`
	Overdue         bool       `json:"overdue"`
	Error           string     `json:"error,omitempty"`
}

// runFleet prints every keyring of the cluster: one metadata-only list of Secrets, then one GET per keyring with
// bounded concurrency (kube.FleetConcurrency).
func (o *StatusOptions) runFleet(ctx context.Context) error {
	cfg, err := o.settings.RESTConfig()
	if err != nil {
		return err
	}
	found, err := kube.FindKeyrings(ctx, cfg, rotation.Prefix)
	if err != nil {
		return err
	}
	now := time.Now()
	entries := make([]FleetEntry, 0, len(found))
	for _, k := range found {
		e := FleetEntry{Namespace: k.Namespace, Release: k.Release, Secret: k.Name}
		if k.Err != nil {
			e.Error = k.Err.Error()
			entries = append(entries, e)
			continue
		}
		if kr, err := keyring.Parse(k.Namespace+"/"+k.Name, k.Data); err != nil {
			e.Error = err.Error()
		} else {
			e.Active, e.Versions = keyring.Kid(kr.Active), len(kr.Keys)
		}
		st, err := rotation.ParseState(k.Annotations)
		if err != nil {
			e.Error = err.Error()
		} else {
			e.Phase, e.Overdue = string(st.Phase), overdue(st, now)
			if !st.RetireAfter.IsZero() && st.Phase == rotation.Waiting {
				e.RetireAfter = &st.RetireAfter
			}
			if !st.NextRotationDue.IsZero() {
				e.NextRotationDue = &st.NextRotationDue
			}
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Namespace != entries[j].Namespace {
			return entries[i].Namespace < entries[j].Namespace
		}
		return entries[i].Secret < entries[j].Secret
	})
	if done, err := writeStructured(o.streams.Out, o.Output, entries); done {
		return err
	}
	w := tabwriter.NewWriter(o.streams.Out, 0, 4, 2, ' ', 0)
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
