package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	ics "github.com/arran4/golang-ical"
	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// RemindOptions are the flags of `rotate-key remind`.
type RemindOptions struct {
	releaseTarget
	ICS string

	settings *helmenv.Settings
	streams  Streams
}

func newRemindCommand(streams Streams, settings *helmenv.Settings) *cobra.Command {
	o := &RemindOptions{settings: settings, streams: streams}
	cmd := &cobra.Command{
		Use:   "remind RELEASE --ics FILE",
		Short: "Write calendar events (RFC 5545) for the earliest retirement and the next rotation",
		Long: "remind writes an iCalendar file with one event for the earliest time the old key can be retired (during a\n" +
			"rotation) and one for the next rotation's due date, each with a reminder a day before and the exact command\n" +
			"to run. Import it into the team calendar when finishing a rotation. --ics - writes to stdout.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.complete(args, settings)
			if o.ICS == "" {
				return exitcode.Withf(exitcode.Usage, "--ics FILE is required (use --ics - for stdout)")
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Secret, "secret", "", "name of the keyring Secret (default RELEASE"+DefaultSecretSuffix+")")
	cmd.Flags().StringVar(&o.ICS, "ics", "", "file to write the iCalendar events to (- for stdout)")
	return cmd
}

// Run reads the state and writes the calendar.
func (o *RemindOptions) Run(ctx context.Context) error {
	obs, err := observe(ctx, o.settings, o.namespace, o.Secret, o.Release, rotation.Overrides{})
	if err != nil {
		return err
	}
	if err := obs.require(o.namespace, o.Secret, o.Release); err != nil {
		return err
	}
	cal, n := Reminders(o.namespace, o.Secret, o.Release, obs.state, obs.now)
	if n == 0 {
		return exitcode.Withf(exitcode.Usage, "nothing to remind: %s/%s has no rotation in progress and no next due date yet (a rotation records one when it finishes)", o.namespace, o.Secret)
	}
	if o.ICS == "-" {
		return cal.SerializeTo(o.streams.Out)
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.ICS), ".rotate-key-*.ics")
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.ICS, err)
	}
	defer os.Remove(tmp.Name())
	if err := cal.SerializeTo(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), o.ICS); err != nil {
		return fmt.Errorf("writing %s: %w", o.ICS, err)
	}
	fmt.Fprintf(o.streams.Out, "wrote %d event(s) to %s\n", n, o.ICS)
	return nil
}

// Reminders builds the calendar for a keyring's state: the earliest retirement (while Waiting) and the next
// rotation's due date. It returns the calendar and how many events it holds.
func Reminders(namespace, secret, release string, st rotation.State, now time.Time) (*ics.Calendar, int) {
	cal := ics.NewCalendar()
	cal.SetProductId("-//tracebloc//helm rotate-key//EN")
	cal.SetMethod(ics.MethodPublish)
	n := 0
	add := func(uid string, at time.Time, summary, description string) {
		ev := cal.AddEvent(uid)
		ev.SetDtStampTime(now)
		ev.SetStartAt(at)
		ev.SetEndAt(at.Add(30 * time.Minute))
		ev.SetSummary(summary)
		ev.SetDescription(description)
		alarm := ev.AddAlarm()
		alarm.SetAction(ics.ActionDisplay)
		alarm.SetTrigger("-P1D")
		n++
	}
	command := fmt.Sprintf("helm -n %s rotate-key %s", namespace, release)
	if st.Phase == rotation.Waiting {
		add(fmt.Sprintf("%s-retire-v%d@%s.%s.rotate-key", st.RotationID, st.From, secret, namespace), st.RetireAfter,
			fmt.Sprintf("Retire key v%d of %s/%s", st.From, namespace, secret),
			fmt.Sprintf("Every token signed with v%d has expired from this time on. Finish rotation %s with:\n%s\nRunbook: docs/RUNBOOKS/requests-proxy-key-rotation.md", st.From, st.RotationID, command))
	}
	if !st.NextRotationDue.IsZero() {
		add(fmt.Sprintf("next-%s@%s.%s.rotate-key", st.NextRotationDue.UTC().Format("20060102"), secret, namespace), st.NextRotationDue,
			fmt.Sprintf("Rotate the keys of %s/%s", namespace, secret),
			fmt.Sprintf("The quarterly key rotation is due. Start it with:\n%s\nRunbook: docs/RUNBOOKS/requests-proxy-key-rotation.md", command))
	}
	return cal, n
}
