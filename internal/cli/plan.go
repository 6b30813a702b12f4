package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
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

// PlanOptions are the flags of `rotate-key plan`.
type PlanOptions struct {
	RunOptions
	Output string
}

func newPlanCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	o := &PlanOptions{RunOptions: RunOptions{settings: settings, streams: streams, mode: "run"}}
	cmd := &cobra.Command{
		Use:   "plan RELEASE",
		Short: "Show what the next run would do and why (changes nothing; never shows key material)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Complete(args)
			if err := o.Validate(); err != nil {
				return err
			}
			if o.Output != "text" && o.Output != "json" {
				return exitcode.Withf(exitcode.Usage, "--output %q is not supported: use text or json", o.Output)
			}
			return o.Run(cmd.Context())
		},
	}
	o.AddFlags(cmd)
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

// Run prints the plan.
func (o *PlanOptions) Run(ctx context.Context) error {
	obs, _, useHooks, err := o.observe(ctx)
	if err != nil {
		return err
	}
	if err := obs.require(o.namespace, o.Secret, o.Release); err != nil {
		return err
	}
	st, cfg := obs.state, obs.config
	d := rotation.Next(st, obs.now, true, o.Force)
	p := Plan{Secret: o.namespace + "/" + o.Secret, Keyring: obs.keyring.String(), State: st.String(), TTL: cfg.TTL.String(), TTLSource: cfg.TTLSource,
		Interval: cfg.Interval.String(), ConsumersSource: cfg.ConsumersSource, Next: string(d.Step), Why: d.Reason}
	consumers, err := obs.target.Consumers(ctx, cfg.Consumers)
	if err != nil {
		return err
	}
	for _, c := range consumers {
		line := c.Ref.String()
		if len(c.Pinned) > 0 {
			line += " (names data keys " + strings.Join(c.Pinned, ", ") + " explicitly: those versions are never retired)"
		}
		p.Consumers = append(p.Consumers, line)
	}
	from, to := obs.keyring.Active, obs.keyring.Newest()+1
	if st.InProgress() {
		from, to = st.From, st.To
	}
	restart := fmt.Sprintf("restart %d consumers and wait until none has a pod from before", len(consumers))
	steps := map[rotation.Phase][]string{
		rotation.Idle:      {"add " + keyring.Kid(to) + " (active stays " + keyring.Kid(from) + ")", restart, "promote " + keyring.Kid(to), restart, fmt.Sprintf("stop: %s stays until now + TTL (%s)", keyring.Kid(from), cfg.TTL)},
		rotation.KeyAdded:  {restart, "promote " + keyring.Kid(to), restart, fmt.Sprintf("stop: %s stays until now + TTL (%s)", keyring.Kid(from), cfg.TTL)},
		rotation.RolledOut: {"promote " + keyring.Kid(to), restart, fmt.Sprintf("stop: %s stays until now + TTL (%s)", keyring.Kid(from), cfg.TTL)},
		rotation.Promoted:  {restart, fmt.Sprintf("stop: %s stays until now + TTL (%s)", keyring.Kid(from), cfg.TTL)},
		rotation.Waiting:   {fmt.Sprintf("after %s: remove %s", st.RetireAfter.UTC().Format(time.RFC3339), keyring.Kid(from)), restart, "record the next rotation's due date"},
		rotation.Retired:   {restart, "record the next rotation's due date"},
		rotation.Reverted:  {restart, "back to Idle"},
	}
	if d.Step != rotation.StepNothing {
		p.Then = steps[st.Phase]
	}
	p.Path, p.PathNote = "local", "this machine drives the rotation through the API server; the release itself is not upgraded"
	if useHooks {
		p.Path, p.PathNote = "hooks", hookPathNote
	}
	if o.Output == "json" {
		enc := json.NewEncoder(o.streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	w := o.streams.Out
	fmt.Fprintf(w, "Keyring:   %s\nState:     %s\nTTL:       %s (%s)\nInterval:  %s\nConsumers: %s\n", p.Keyring, p.State, p.TTL, p.TTLSource, p.Interval, p.ConsumersSource)
	for _, c := range p.Consumers {
		fmt.Fprintf(w, "  - %s\n", c)
	}
	fmt.Fprintf(w, "Next:      %s — %s\nPath:      %s — %s\n", p.Next, p.Why, p.Path, p.PathNote)
	for i, s := range p.Then {
		fmt.Fprintf(w, "  %d. %s\n", i+1, s)
	}
	return nil
}
