package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
)

// planCommand is `rotate-key plan RELEASE`: the run flags, and an output format.
type planCommand struct {
	rotateCommand
	output string
}

func newPlanCommand(c *action.Config) *cobra.Command {
	o := &planCommand{rotateCommand: *newRotateCommand(c, action.ModeRun)}
	cmd := &cobra.Command{
		Use:   "plan RELEASE",
		Short: "Show what the next run would do and why (changes nothing; never shows key material)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.complete(args)
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func (o *planCommand) validate() error {
	if err := o.rotateCommand.validate(); err != nil {
		return err
	}
	if o.output != "text" && o.output != "json" {
		return exitcode.Withf(exitcode.Usage, "--output %q is not supported: use text or json", o.output)
	}
	return nil
}

func (o *planCommand) run(ctx context.Context) error {
	planner := action.Planner{Rotate: o.a}
	p, err := planner.Run(ctx, o.cfg)
	if err != nil {
		return err
	}
	w := o.cfg.Out
	if done, err := writeStructured(w, o.output, p); done {
		return err
	}
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
