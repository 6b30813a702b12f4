package action

import (
	"context"
	"strings"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// Plan is what the next run would do and why: redacted (versions, never key material).
type Plan struct {
	Secret    string   `json:"secret"`
	Keyring   string   `json:"keyring"`
	State     string   `json:"state"`
	TTL       string   `json:"ttl"`
	TTLSource string   `json:"ttlSource"`
	Interval  string   `json:"interval"`
	Consumers []string `json:"consumers"`
	// ConsumersSource says whether the consumers were configured or discovered.
	ConsumersSource string   `json:"consumersSource"`
	Next            string   `json:"next"`
	Why             string   `json:"why"`
	Then            []string `json:"then"`
	// Path is how `helm rotate-key` would carry the steps out: "hooks" (the chart's hook Jobs) or "local".
	Path     string `json:"path"`
	PathNote string `json:"pathNote"`
}

// Planner is `rotate-key plan RELEASE`: the Rotate it describes, which it never runs.
type Planner struct {
	Rotate
}

// Run reads the keyring and returns the plan.
func (a *Planner) Run(ctx context.Context, c *Config) (Plan, error) {
	obs, _, useHooks, err := a.observe(ctx, c)
	if err != nil {
		return Plan{}, err
	}
	if err := obs.require(a.Target); err != nil {
		return Plan{}, err
	}
	st, cfg := obs.state, obs.config
	d := rotation.Next(st, obs.now, true, a.Overrides.Force)
	p := Plan{Secret: a.Namespace + "/" + a.Secret, Keyring: obs.keyring.String(), State: st.String(), TTL: cfg.TTL.String(), TTLSource: cfg.TTLSource,
		Interval: cfg.Interval.String(), ConsumersSource: cfg.ConsumersSource, Next: string(d.Step), Why: d.Reason}
	consumers, err := obs.target.Consumers(ctx, cfg.Consumers)
	if err != nil {
		return Plan{}, err
	}
	for _, c := range consumers {
		line := c.Ref.String()
		if len(c.Pinned) > 0 {
			line += " (names data keys " + strings.Join(c.Pinned, ", ") + " explicitly: those versions are never retired)"
		}
		p.Consumers = append(p.Consumers, line)
	}
	facts := rotation.PlanFacts{From: obs.keyring.Active, To: st.NextVersion(obs.keyring.Newest()), Consumers: len(consumers), TTL: cfg.TTL, ClockSkew: cfg.ClockSkew, RetireAfter: st.RetireAfter, Phase: st.Phase}
	if st.InProgress() {
		facts.From, facts.To = st.From, st.To
	}
	if d.Step != rotation.StepNothing {
		p.Then = rotation.PlanSteps(st.Phase, facts)
	}
	p.Path, p.PathNote = "local", "this machine drives the rotation through the API server; the release itself is not upgraded"
	if useHooks {
		p.Path, p.PathNote = "hooks", HookPathNote
	}
	return p, nil
}
