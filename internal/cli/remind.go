package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
)

// remindCommand is `rotate-key remind RELEASE --ics FILE`.
type remindCommand struct {
	targetCommand
	ics string
}

func newRemindCommand(c *action.Config) *cobra.Command {
	o := &remindCommand{targetCommand: targetCommand{cfg: c}}
	cmd := &cobra.Command{
		Use:   "remind RELEASE --ics FILE",
		Short: "Write calendar events (RFC 5545) for the earliest retirement and the next rotation",
		Long: "remind writes an iCalendar file with one event for the earliest time the old key can be retired (during a\n" +
			"rotation) and one for the next rotation's due date, each with a reminder a day before and the exact command\n" +
			"to run. Import it into the team calendar when finishing a rotation. --ics - writes to stdout.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.complete(args)
			if o.ics == "" {
				return exitcode.Withf(exitcode.Usage, "--ics FILE is required (use --ics - for stdout)")
			}
			return o.run(cmd.Context())
		},
	}
	o.addSecretFlag(cmd)
	cmd.Flags().StringVar(&o.ics, "ics", "", "file to write the iCalendar events to (- for stdout)")
	return cmd
}

// run writes the calendar, atomically (a temporary file renamed over FILE).
func (o *remindCommand) run(ctx context.Context) error {
	a := action.Remind{Target: o.t}
	cal, n, err := a.Run(ctx, o.cfg)
	if err != nil {
		return err
	}
	if o.ics == "-" {
		return cal.SerializeTo(o.cfg.Out)
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.ics), ".rotate-key-*.ics")
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.ics, err)
	}
	defer os.Remove(tmp.Name())
	if err := cal.SerializeTo(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), o.ics); err != nil {
		return fmt.Errorf("writing %s: %w", o.ics, err)
	}
	fmt.Fprintf(o.cfg.Out, "wrote %d event(s) to %s\n", n, o.ics)
	return nil
}
