package action

import (
	"context"
	"fmt"
	"time"

	ics "github.com/arran4/golang-ical"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// Remind is `rotate-key remind RELEASE`: the calendar of the earliest retirement and the next rotation.
type Remind struct {
	Target
}

// Run reads the state and returns the calendar and how many events it holds.
func (a *Remind) Run(ctx context.Context, c *Config) (*ics.Calendar, int, error) {
	obs, err := c.observe(ctx, a.Target, rotation.Overrides{})
	if err != nil {
		return nil, 0, err
	}
	if err := obs.require(a.Target); err != nil {
		return nil, 0, err
	}
	cal, n := Reminders(a.Target, obs.state, obs.now)
	if n == 0 {
		return nil, 0, exitcode.Withf(exitcode.Usage, "nothing to remind: %s/%s has no rotation in progress and no next due date yet (a rotation records one when it finishes)", a.Namespace, a.Secret)
	}
	return cal, n, nil
}

// Reminders builds the calendar for a keyring's state: the earliest retirement (while a step waits for a time) and
// the next rotation's due date. It returns the calendar and how many events it holds.
func Reminders(t Target, st rotation.State, now time.Time) (*ics.Calendar, int) {
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
	command := fmt.Sprintf("helm -n %s rotate-key %s%s", t.Namespace, t.Release, t.SecretFlag())
	if next, _ := rotation.Forward(st.Phase); st.InProgress() && next.Until != nil {
		add(fmt.Sprintf("%s-retire-v%d@%s.%s.rotate-key", st.RotationID, st.From, t.Secret, t.Namespace), next.Until(st),
			fmt.Sprintf("Retire key v%d of %s/%s", st.From, t.Namespace, t.Secret),
			fmt.Sprintf("Every token signed with v%d has expired from this time on. Finish rotation %s with:\n%s\nRunbook: docs/RUNBOOKS/requests-proxy-key-rotation.md", st.From, st.RotationID, command))
	}
	if !st.NextRotationDue.IsZero() {
		add(fmt.Sprintf("next-%s@%s.%s.rotate-key", st.NextRotationDue.UTC().Format("20060102"), t.Secret, t.Namespace), st.NextRotationDue,
			fmt.Sprintf("Rotate the keys of %s/%s", t.Namespace, t.Secret),
			fmt.Sprintf("The quarterly key rotation is due. Start it with:\n%s\nRunbook: docs/RUNBOOKS/requests-proxy-key-rotation.md", command))
	}
	return cal, n
}
