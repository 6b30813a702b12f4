package action

import (
	"crypto/rand"
	"testing"
	"time"
)

// The run token round-trips, and only its own shape reads as one.
func TestHookRunToken(t *testing.T) {
	now := time.Date(2026, 12, 1, 17, 0, 0, 400_000_000, time.UTC)
	run := newHookRun(rand.Reader, 7, "laptop-7", now, 15*time.Minute)
	if run.Until.Before(now.Add(4*15*time.Minute)) || run.Until.Nanosecond() != 0 {
		t.Fatalf("the deadline must cover every hook Job's timeout, in whole seconds: %s", run.Until)
	}
	got, ok := parseHookRun(run.String())
	if !ok || got != run {
		t.Fatalf("round trip: %+v %v, want %+v", got, ok, run)
	}
	for _, d := range []string{
		"",
		"Upgrade complete",
		run.String() + " ",
		"x" + run.String(),
		"r-1234567 rev 3 on h until 2026-12-01T18:00:00Z",
		"r-12345678 rev 0 on h until 2026-12-01T18:00:00Z",
		"r-12345678 rev 3 on h until tomorrow",
		"r-12345678 rev 3 on  until 2026-12-01T18:00:00Z",
		"r-12345678 rev 3 on h until 2026-13-41T18:00:00Z",
	} {
		if _, ok := parseHookRun(d); ok {
			t.Errorf("%q must not read as a run token", d)
		}
	}
	if run := newHookRun(rand.Reader, 1, "a host", now, time.Minute); run.Host != "unknown-host" {
		t.Errorf("a host name the token cannot hold must be replaced: %q", run.Host)
	}
}

// FuzzParseHookRun: the token is read back from a release's values, which anyone with helm upgrade can set.
func FuzzParseHookRun(f *testing.F) {
	f.Add("r-0badf00d rev 3 on ci-runner-4 until 2026-11-30T11:00:00Z")
	f.Add("r-0badf00d rev 999999999 on h until 9999-12-31T23:59:59Z")
	f.Fuzz(func(t *testing.T, s string) {
		run, ok := parseHookRun(s)
		if ok && run.String() != s {
			t.Fatalf("%q parsed as %+v, which prints as %q", s, run, run.String())
		}
	})
}
