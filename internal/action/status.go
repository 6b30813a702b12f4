package action

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/release"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// StatusReport is what `status` prints. It names key versions, never key material.
type StatusReport struct {
	Namespace string           `json:"namespace"`
	Release   *release.Summary `json:"release,omitempty"`
	// ReleaseName is the release asked about (Release is its record, when readable).
	ReleaseName string `json:"-"`
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
	KeyringError string `json:"keyringError,omitempty"`
	// Protection names the guard layers that protect the keyring beyond `helm rotate-key upgrade`'s post-renderer
	// (the release's guard hooks, the admission policy), or says that none does.
	Protection string `json:"protection,omitempty"`
	// Resurrected says which retired versions are back in the keyring and how to remove them.
	Resurrected     string           `json:"resurrected,omitempty"`
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

// Status is `rotate-key status RELEASE`.
type Status struct {
	Target
}

// versionKey matches the data keys that hold key versions in either naming style.
var versionKey = regexp.MustCompile(`^(key\.)?v[0-9]+$`)

// Run reads the release record and the keyring Secret and returns the report.
func (a *Status) Run(ctx context.Context, c *Config) (StatusReport, error) {
	obs, err := c.observe(ctx, a.Target, rotation.Overrides{})
	if err != nil {
		return StatusReport{}, err
	}
	report := StatusReport{Namespace: a.Namespace, ReleaseName: a.Release, Secret: a.Secret, Versions: []string{}, Release: obs.release}
	if obs.releaseErr != nil {
		report.ReleaseError = obs.releaseErr.Error()
	}
	if obs.secret == nil {
		return report, nil
	}
	secret, st, now := obs.secret, obs.state, obs.now
	report.SecretFound = true
	if err := obs.ownerErr(a.Target); err != nil {
		report.KeyringError = err.Error()
	}
	for name := range secret.Data {
		if versionKey.MatchString(name) {
			report.Versions = append(report.Versions, name)
		}
	}
	sort.Strings(report.Versions)
	if obs.keyringErr != nil {
		report.KeyringError = strings.TrimSpace(report.KeyringError + " " + obs.keyringErr.Error())
	} else {
		report.Active, report.Encoding = keyring.Kid(obs.keyring.Active), obs.keyring.Encoding.String()
	}
	if obs.stateErr != nil {
		report.KeyringError = strings.TrimSpace(report.KeyringError + " " + obs.stateErr.Error())
		return report, nil
	}
	report.Phase, report.RotationID = string(st.Phase), st.RotationID
	report.Resurrected = obs.resurrected(a.Target)
	report.Protection = obs.protection(ctx)
	if st.InProgress() {
		report.From, report.To = keyring.Kid(st.From), keyring.Kid(st.To)
	}
	if !st.RetireAfter.IsZero() {
		report.RetireAfter = &st.RetireAfter
	}
	if !st.NextRotationDue.IsZero() {
		report.NextRotationDue = &st.NextRotationDue
	}
	report.Overdue = rotation.Overdue(st, now) != ""
	if cfg, err := obs.config, obs.configErr; err == nil {
		report.TTL, report.TTLSource = cfg.TTL.String(), cfg.TTLSource
		if st.TTLUsed > 0 && st.InProgress() {
			report.TTL, report.TTLSource = st.TTLUsed.String(), "recorded when this rotation's promotion rolled out"
		}
		// No rollout to report outside the rollout phases (value "").
		if consumers, rollouts, err := obs.target.Survey(ctx, cfg.Consumers, rotation.RestartValue(st)); err == nil {
			for i, cons := range consumers {
				cs := ConsumerStatus{Workload: cons.Ref.String()}
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
	if obs.keyringErr != nil { // no step runs on a broken keyring: "nothing" would read as all is well (round 21)
		report.NextStep, report.NextStepReason = "repair", "the keyring breaks a rule (PROBLEM above), and no rotation step runs until it is fixed. A lost key version: put its bytes back (the runbook's block REPAIR restores them from Helm's release records, or from a backup); never generate a new key under its name"
	}
	if l, err := rotation.ParseLease(secret.Annotations[rotation.AnnoLease]); err == nil && l != nil {
		report.Lock = fmt.Sprintf("%s, renewed %s ago", l.Holder, now.Sub(l.Renewed).Round(time.Second))
	}
	return report, nil
}

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

// Fleet is `rotate-key status --all-namespaces`: every keyring of the cluster, read with one metadata-only list
// and one GET per keyring (kube.FindKeyrings).
type Fleet struct{}

// Run returns the keyrings sorted by namespace and name.
func (Fleet) Run(ctx context.Context, c *Config) ([]FleetEntry, error) {
	fleet, err := c.FindKeyrings(ctx)
	if err != nil {
		return nil, err
	}
	now := fleet.Now // the API server's, like every other command's: this machine's clock may be off
	entries := make([]FleetEntry, 0, len(fleet.Keyrings))
	for _, k := range fleet.Keyrings {
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
			e.Phase, e.Overdue = string(st.Phase), rotation.Overdue(st, now) != ""
			if !st.RetireAfter.IsZero() && rotation.Waits(st.Phase) {
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
	return entries, nil
}

// protection says which guard layers protect the keyring besides the post-renderer that only `helm rotate-key
// upgrade` wires in: without either, a plain helm upgrade, helm rollback (--no-hooks included) or kubectl edit can
// lose keys unseen (docs/design.md, "The upgrade guard: three layers").
func (obs *observation) protection(ctx context.Context) string {
	var layers []string
	if obs.record != nil {
		if ops := release.GuardHooks(obs.record); len(ops) > 0 {
			layers = append(layers, "guard hooks on helm "+strings.Join(ops, " and ")+" (not with --no-hooks)")
		}
	}
	policy, err := obs.target.AdmissionPolicy(ctx)
	switch {
	case err != nil:
		layers = append(layers, fmt.Sprintf("admission policy %s unknown (%v)", obs.target.AdmissionPolicyName(), err))
	case policy:
		layers = append(layers, "admission policy "+obs.target.AdmissionPolicyName())
	}
	if len(layers) == 0 {
		what := "no guard hooks in the release"
		if obs.record == nil {
			what = "the release record is unreadable"
		}
		return "UNPROTECTED: " + what + " and no admission policy: a plain helm upgrade, helm rollback or kubectl edit can lose keys unseen. Upgrade with helm rotate-key upgrade, roll back with helm rotate-key rollback, and consider the chart's guard hooks (rotate-key.guard.hooks) or its admission policy (docs/design.md, \"The upgrade guard\")"
	}
	return strings.Join(layers, "; ")
}
