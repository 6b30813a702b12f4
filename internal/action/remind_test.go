package action_test

import (
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"

	"github.com/tracebloc/helm-rotate-key/internal/action"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// (moved from internal/cli/remind_test.go)
func TestRemindersRoundTripThroughAParser(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	st := rotation.State{Phase: rotation.Waiting, RotationID: "r1", From: 1, To: 2, RetireAfter: now.Add(90 * 24 * time.Hour), NextRotationDue: now.Add(180 * 24 * time.Hour)}
	target := action.Target{Namespace: "team", Secret: "app-requests-proxy-admin", Release: "app"}
	cal, n := action.Reminders(target, st, now)
	if n != 2 {
		t.Fatalf("%d events, want 2", n)
	}
	parsed, err := ics.ParseCalendar(strings.NewReader(cal.Serialize()))
	if err != nil {
		t.Fatal(err)
	}
	events := parsed.Events()
	if len(events) != 2 {
		t.Fatalf("parsed %d events", len(events))
	}
	start, err := events[0].GetStartAt()
	if err != nil || !start.Equal(st.RetireAfter) {
		t.Fatalf("retire event starts %v (%v), want %v", start, err, st.RetireAfter)
	}
	for _, want := range []string{"Retire key v1 of team/app-requests-proxy-admin", "helm -n team rotate-key app", "TRIGGER:-P1D", "METHOD:PUBLISH"} {
		if !strings.Contains(cal.Serialize(), want) {
			t.Errorf("calendar lacks %q", want)
		}
	}
	if _, n := action.Reminders(target, rotation.State{Phase: rotation.Idle}, now); n != 0 {
		t.Fatal("no state, no reminder")
	}
}
