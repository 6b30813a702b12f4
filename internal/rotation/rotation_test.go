package rotation

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/keyring"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestStateRoundTrip(t *testing.T) {
	s := State{Phase: Waiting, RotationID: "r1", From: 1, To: 2, StartedAt: t0, PromotedAt: t0.Add(time.Minute),
		RetireAfter: t0.Add(time.Hour + 2*time.Minute), TransitionAt: t0.Add(2 * time.Minute), Actor: "alice@laptop via rotate-key v0.1.0", TTLUsed: time.Hour}
	annotations := s.ApplyAnnotations(map[string]string{"other": "kept", AnnoFinishedAt: "2020-01-01T00:00:00Z"})
	if annotations["other"] != "kept" {
		t.Fatal("foreign annotations must be kept")
	}
	if _, ok := annotations[AnnoFinishedAt]; ok {
		t.Fatal("an unset state field must remove its stale annotation")
	}
	got, err := ParseState(annotations)
	if err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	idle, err := ParseState(nil)
	if err != nil || idle.Phase != Idle || idle.InProgress() {
		t.Fatalf("no annotations must be Idle: %+v %v", idle, err)
	}
}

func TestParseStateRefusesWhatItCannotTrust(t *testing.T) {
	for name, a := range map[string]map[string]string{
		"newer schema":                 {AnnoSchema: "2", AnnoPhase: "Idle"},
		"unknown phase":                {AnnoPhase: "Rotating"},
		"bad time":                     {AnnoPhase: "Waiting", AnnoRotationID: "r", AnnoFrom: "v1", AnnoTo: "v2", AnnoRetireAfter: "tomorrow"},
		"bad version":                  {AnnoPhase: "KeyAdded", AnnoRotationID: "r", AnnoFrom: "1", AnnoTo: "v2"},
		"phase without ids":            {AnnoPhase: "Promoted"},
		"negative ttl":                 {AnnoTTLUsed: "-5"},
		"waiting without retire-after": {AnnoPhase: "Waiting", AnnoRotationID: "r", AnnoFrom: "v1", AnnoTo: "v2", AnnoPromotedAt: "2026-11-30T10:00:00Z"},
		"schema not a number":          {AnnoSchema: "one"},
	} {
		if _, err := ParseState(a); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestNext(t *testing.T) {
	inProgress := func(p Phase) State {
		return State{Phase: p, RotationID: "r", From: 1, To: 2, RetireAfter: t0.Add(time.Hour)}
	}
	tests := []struct {
		name         string
		state        State
		now          time.Time
		start, force bool
		want         Step
	}{
		{"idle, run starts", State{Phase: Idle}, t0, true, false, StepStart},
		{"idle, scheduled check does not start", State{Phase: Idle}, t0, false, false, StepNothing},
		{"idle, not due yet", State{Phase: Idle, NextRotationDue: t0.Add(time.Hour)}, t0, true, false, StepNothing},
		{"idle, not due but forced", State{Phase: Idle, NextRotationDue: t0.Add(time.Hour)}, t0, true, true, StepStart},
		{"idle, due", State{Phase: Idle, NextRotationDue: t0.Add(-time.Second)}, t0, true, false, StepStart},
		{"key added", inProgress(KeyAdded), t0, true, false, StepRollout},
		{"rolled out", inProgress(RolledOut), t0, true, false, StepPromote},
		{"promoted", inProgress(Promoted), t0, false, false, StepRollout},
		{"waiting, before retire-after", inProgress(Waiting), t0.Add(59 * time.Minute), true, true, StepWaitTTL},
		{"waiting, at retire-after", inProgress(Waiting), t0.Add(time.Hour), true, false, StepRetire},
		{"retired", inProgress(Retired), t0, true, false, StepRollout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Next(tt.state, tt.now, tt.start, tt.force)
			if d.Step != tt.want || d.Reason == "" {
				t.Fatalf("Next = %+v, want %s", d, tt.want)
			}
		})
	}
}

func TestDecideLease(t *testing.T) {
	other := &Lease{Holder: "bob@ci pid 7", RotationID: "r", Renewed: t0, Duration: LeaseDuration}
	alive := func(string) bool { return true }
	dead := func(string) bool { return false }
	if l, notice, err := DecideLease(nil, "me", "r", t0, false, alive); err != nil || notice != "" || l.Holder != "me" {
		t.Fatalf("free lock: %v %q", err, notice)
	}
	if _, notice, err := DecideLease(&Lease{Holder: "me", Renewed: t0.Add(-time.Hour), Duration: time.Second}, "me", "r", t0, false, alive); err != nil || notice != "" {
		t.Fatalf("own lock: %v %q", err, notice)
	}
	_, _, err := DecideLease(other, "me", "r", t0.Add(20*time.Second), false, alive)
	var held *LockHeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), "bob@ci pid 7") || !strings.Contains(err.Error(), "renewed 20s ago") {
		t.Fatalf("live lock of another run: %v", err)
	}
	if _, notice, err := DecideLease(other, "me", "r", t0.Add(LeaseDuration), false, alive); err != nil || !strings.Contains(notice, "expired") {
		t.Fatalf("expired lock: %v %q", err, notice)
	}
	if _, notice, err := DecideLease(other, "me", "r", t0, false, dead); err != nil || !strings.Contains(notice, "gone") {
		t.Fatalf("dead holder: %v %q", err, notice)
	}
	if _, notice, err := DecideLease(other, "me", "r", t0, true, alive); err != nil || !strings.Contains(notice, "--take-over") {
		t.Fatalf("take over: %v %q", err, notice)
	}
	runbook := &Lease{Holder: "runbook alice@bastion shell 123 456", RotationID: "r", Renewed: t0, Duration: 180 * time.Second}
	if _, _, err := DecideLease(runbook, "me", "r", t0.Add(time.Minute), true, alive); !errors.As(err, &held) || !strings.Contains(err.Error(), "runbook's manual rollout") {
		t.Fatalf("a live runbook lock is never taken over, not even with --take-over: %v", err)
	}
	if _, _, err := DecideLease(runbook, "me", "r", t0.Add(180*time.Second), true, alive); err != nil {
		t.Fatalf("a lapsed runbook lock is free: %v", err)
	}
	parsed, err := ParseLease(other.Format())
	if err != nil || *parsed != *other {
		t.Fatalf("lease round trip: %+v %v", parsed, err)
	}
	for _, bad := range []string{"holder=x", "holder=x;renewed=now;seconds=5", "holder=x;renewed=2026-11-25T12:00:00Z;seconds=0"} {
		if _, err := ParseLease(bad); err == nil {
			t.Errorf("ParseLease(%q): want an error", bad)
		}
	}
}

func TestResolveConfigPrecedence(t *testing.T) {
	values := map[string]any{"tokenTtlSeconds": float64(600), "auth": map[string]any{"ttl": float64(120)}}
	tests := []struct {
		name        string
		annotations map[string]string
		values      map[string]any
		o           Overrides
		ttl         time.Duration
		source      string
		wantErr     string
	}{
		{"nothing configured", nil, nil, Overrides{}, DefaultTTL, "NOT CONFIGURED", ""},
		{"release value", nil, values, Overrides{}, 600 * time.Second, "release value tokenTtlSeconds", ""},
		{"values path from the Secret", map[string]string{AnnoTTLPath: "auth.ttl"}, values, Overrides{}, 120 * time.Second, "release value auth.ttl", ""},
		{"annotation beats values", map[string]string{AnnoTTLSeconds: "300"}, values, Overrides{}, 300 * time.Second, "Secret annotation", ""},
		{"longer flag", map[string]string{AnnoTTLSeconds: "300"}, nil, Overrides{TTL: time.Hour}, time.Hour, "flag --ttl", ""},
		{"shorter flag refused", map[string]string{AnnoTTLSeconds: "300"}, nil, Overrides{TTL: 60 * time.Second}, 0, "", "--force --reason"},
		{"shorter flag forced", map[string]string{AnnoTTLSeconds: "300"}, nil, Overrides{TTL: 60 * time.Second, Force: true, Reason: "leaked"}, 60 * time.Second, "forced: leaked", ""},
		{"below minimum", nil, nil, Overrides{TTL: time.Second, Force: true, Reason: "x"}, 0, "", "between 1m0s and 10 years"},
		{"bad annotation", map[string]string{AnnoTTLSeconds: "soon"}, nil, Overrides{}, 0, "", AnnoTTLSeconds},
		{"bad consumers", map[string]string{AnnoConsumers: "Pod/x"}, nil, Overrides{}, 0, "", AnnoConsumers},
		// Issue 15.6: a chart without the library keeps its TTL at a nested key. One such value is it; several are
		// never guessed between (the source names them), and a non-TTL number is no candidate.
		{"the one nested TTL", nil, map[string]any{"requestsProxy": map[string]any{"tokenTtlSeconds": float64(900), "replicas": float64(2)}}, Overrides{}, 900 * time.Second, "release value requestsProxy.tokenTtlSeconds (the only", ""},
		{"several nested TTLs", nil, map[string]any{"a": map[string]any{"tokenTtlSeconds": float64(900)}, "b": map[string]any{"sessionTTL": "3600"}}, Overrides{}, DefaultTTL, "NOT CONFIGURED (several values look like a TTL: a.tokenTtlSeconds, b.sessionTTL", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ResolveConfig(tt.annotations, tt.values, tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error with %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil || c.TTL != tt.ttl || !strings.Contains(c.TTLSource, tt.source) || c.TTLDefaulted != strings.HasPrefix(tt.source, "NOT CONFIGURED") {
				t.Fatalf("got %s from %q (%v), want %s from %q", c.TTL, c.TTLSource, err, tt.ttl, tt.source)
			}
		})
	}
	c, err := ResolveConfig(map[string]string{AnnoInterval: "30d", AnnoConsumers: "Deployment/a, StatefulSet/b"}, nil, Overrides{})
	if err != nil || c.Interval != 30*24*time.Hour || len(c.Consumers) != 2 || c.Consumers[1].String() != "StatefulSet/b" {
		t.Fatalf("interval and consumers: %+v %v", c, err)
	}
}

// The next rotation is due one interval after the promotion, never before the day after retire-after or after the
// finish: with an interval equal to the TTL, `check` is green right after a finish, and due the day after.
func TestNextRotationDueAndOverdue(t *testing.T) {
	ttl := 90 * 24 * time.Hour
	promoted := t0
	waiting := State{Phase: Waiting, RotationID: "r", From: 1, To: 2, PromotedAt: promoted, RetireAfter: RetireAfter(promoted.Add(time.Minute), ttl, DefaultClockSkew)}
	if got, want := waiting.RetireAfter, promoted.Add(time.Minute+ttl+DefaultClockSkew); !got.Equal(want) {
		t.Fatalf("retire-after %s, want %s (TTL + clock-skew margin)", got, want)
	}
	due := NextRotationDue(waiting, ttl, time.Time{})
	if want := waiting.RetireAfter.Add(OverdueGrace); !due.Equal(want) {
		t.Fatalf("due while waiting %s, want %s (retire-after + grace)", due, want)
	}
	finished := waiting.RetireAfter.Add(10 * time.Minute)
	idle := State{Phase: Idle, RotationID: "r", From: 1, To: 2, PromotedAt: promoted, RetireAfter: waiting.RetireAfter, FinishedAt: finished}
	idle.NextRotationDue = NextRotationDue(idle, ttl, finished)
	if reason := Overdue(idle, finished.Add(time.Second)); reason != "" {
		t.Fatalf("right after a good finish nothing is overdue, got %q", reason)
	}
	if reason := Overdue(idle, idle.NextRotationDue.Add(time.Second)); reason == "" {
		t.Fatal("past the due date the next rotation is overdue")
	}
	late := finished.Add(30 * 24 * time.Hour)
	if d := NextRotationDue(idle, ttl, late); !d.Equal(late.Add(OverdueGrace)) {
		t.Fatalf("a late finish gives a day: %s", d)
	}
	short := NextRotationDue(State{PromotedAt: promoted, RetireAfter: RetireAfter(promoted, time.Hour, DefaultClockSkew)}, 90*24*time.Hour, time.Time{})
	if !short.Equal(promoted.Add(90 * 24 * time.Hour)) {
		t.Fatalf("with a short TTL the interval decides: %s", short)
	}
	if got := RetireAfter(t0.Add(300*time.Millisecond), time.Minute, time.Minute); !got.Equal(t0.Add(2*time.Minute + time.Second)) {
		t.Fatalf("retire-after rounds up to whole seconds: %s", got)
	}
}

// A state that parses but contradicts the keyring is refused before any step acts on it.
func TestConsistentRefusesContradictions(t *testing.T) {
	k := func(active int, versions ...int) *keyring.Keyring {
		r := &keyring.Keyring{Secret: "ns/s", Active: active, Keys: map[int][]byte{}}
		for _, v := range versions {
			r.Keys[v] = []byte("k")
		}
		return r
	}
	st := func(p Phase, from, to int) State { return State{Phase: p, RotationID: "r", From: from, To: to} }
	for _, tc := range []struct {
		name string
		st   State
		k    *keyring.Keyring
		ok   bool
	}{
		{"idle", State{Phase: Idle}, k(1, 1), true},
		{"key added", st(KeyAdded, 1, 2), k(1, 1, 2), true},
		{"key added, from/to swapped", st(KeyAdded, 2, 1), k(2, 1, 2), false},
		{"key added, to not the newest", st(KeyAdded, 1, 2), k(1, 1, 2, 3), false},
		{"promoted", st(Promoted, 1, 2), k(2, 1, 2), true},
		{"promoted, active still old", st(Promoted, 1, 2), k(1, 1, 2), false},
		{"waiting after abort", st(Waiting, 2, 1), k(1, 1, 2), true},
		{"reverted", st(Reverted, 1, 2), k(1, 1, 2), true},
		// Round 24: the aborted version is the outgoing one; gone (beyond repair) the rotation carries on without it,
		// as in Promoted or Waiting without the outgoing version.
		{"reverted, aborted version gone", st(Reverted, 1, 2), k(1, 1), true},
		{"promoted, outgoing version gone", st(Promoted, 1, 2), k(2, 2), true},
		{"reverted, active not the old version", st(Reverted, 1, 2), k(2, 2), false},
		{"retired", st(Retired, 1, 2), k(2, 2), true},
		{"to missing", st(Waiting, 1, 3), k(2, 1, 2), false},
	} {
		if err := Consistent(tc.st, tc.k); (err == nil) != tc.ok {
			t.Errorf("%s: Consistent = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// A --ttl where nothing configures one is the configuration, not a shortening of a default.
func TestTTLFlagWithNothingConfigured(t *testing.T) {
	c, err := ResolveConfig(nil, nil, Overrides{TTL: time.Minute})
	if err != nil || c.TTL != time.Minute || c.TTLDefaulted {
		t.Fatalf("--ttl 60 with nothing configured: %+v %v", c, err)
	}
}

// Issue 15.2: the retired-up-to mark, from the annotation and from what the state's rotation removed.
func TestRetiredMark(t *testing.T) {
	finished := State{Phase: Idle, RotationID: "r", From: 1, To: 2, PromotedAt: t0, RetireAfter: t0.Add(time.Hour), RetiredAt: t0.Add(time.Hour), FinishedAt: t0.Add(time.Hour)}
	tests := []struct {
		name        string
		annotations map[string]string
		versions    []int
		active      int
		mark        int
		back        string // the versions Resurrected reports
		next        int    // NextVersion of the keyring
	}{
		{"after a retirement: v1 back", finished.ApplyAnnotations(nil), []int{1, 2}, 2, 1, "[1]", 3},
		{"after a retirement: v1 back and active (a rollback)", finished.ApplyAnnotations(nil), []int{1, 2}, 1, 1, "[1]", 3},
		{"older mark kept by the annotation", State{Phase: Waiting, RotationID: "r2", From: 2, To: 3, PromotedAt: t0, TTLUsed: time.Hour, RetireAfter: t0.Add(2 * time.Hour), RetiredUpTo: 1}.ApplyAnnotations(nil), []int{1, 2, 3}, 3, 1, "[1]", 4},
		{"abort after the promotion, finished: the newer one retired, the active one below the mark stays",
			State{Phase: Idle, RotationID: "r", From: 3, To: 2, PromotedAt: t0, RetireAfter: t0.Add(time.Hour), RetiredAt: t0.Add(time.Hour), FinishedAt: t0.Add(time.Hour)}.ApplyAnnotations(nil), []int{2}, 2, 3, "[]", 4},
		{"abort before the promotion: the dropped new version is never reused", State{Phase: Idle, RotationID: "r", From: 2, To: 3, FinishedAt: t0, RetiredUpTo: 3}.ApplyAnnotations(nil), []int{2}, 2, 3, "[]", 4},
		{"abort before the promotion by hand (no mark): the state alone names no retired version", State{Phase: Idle, RotationID: "r", From: 2, To: 3, FinishedAt: t0}.ApplyAnnotations(nil), []int{2}, 2, 0, "[]", 4},
		{"emergency: every version below the new one", State{Phase: Idle, RotationID: "emergency-x", Emergency: "INC-1", From: 2, To: 4, PromotedAt: t0, RetireAfter: t0, RetiredAt: t0, FinishedAt: t0}.ApplyAnnotations(nil), []int{2, 4}, 4, 3, "[2]", 5},
		{"a manual rotation (no annotation) in Waiting: nothing retired yet", map[string]string{AnnoPhase: "Waiting", AnnoRotationID: "r", AnnoFrom: "v1", AnnoTo: "v2", AnnoPromotedAt: "2026-11-25T12:00:00Z", AnnoTTLUsed: "60", AnnoRetireAfter: "2026-11-25T12:02:00Z"}, []int{1, 2}, 2, 0, "[]", 3},
		{"mark above the state's, by annotation", map[string]string{AnnoRetiredUpTo: "v7"}, []int{8}, 8, 7, "[]", 9},
	}
	for _, tt := range tests {
		st, err := ParseState(tt.annotations)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if st.RetiredUpTo != tt.mark {
			t.Errorf("%s: mark %d, want %d", tt.name, st.RetiredUpTo, tt.mark)
		}
		if got := fmt.Sprint(append([]int{}, st.Resurrected(tt.versions, tt.active)...)); got != tt.back {
			t.Errorf("%s: resurrected %s, want %s", tt.name, got, tt.back)
		}
		if got := st.NextVersion(tt.versions[len(tt.versions)-1]); got != tt.next {
			t.Errorf("%s: next version v%d, want v%d", tt.name, got, tt.next)
		}
		if again, err := ParseState(st.ApplyAnnotations(nil)); err != nil || again.RetiredUpTo != st.RetiredUpTo {
			t.Errorf("%s: the mark does not survive its round trip: %v %d", tt.name, err, again.RetiredUpTo)
		}
	}
	for _, bad := range []string{"1", "v0", "v01", "v-1", "", "vx"} {
		if _, err := ParseState(map[string]string{AnnoRetiredUpTo: bad}); err == nil || !strings.Contains(err.Error(), AnnoRetiredUpTo) {
			t.Errorf("mark %q: want an error naming the annotation, got %v", bad, err)
		}
	}
}

// The clock-skew margin is whole seconds from the annotation, 5 minutes without one, and lands in retire-after as
// given (the sixth attack on the traffic instrument: a margin read in milliseconds passed every unit test).
func TestClockSkewMargin(t *testing.T) {
	for _, c := range []struct {
		anno string
		want time.Duration
	}{{"", DefaultClockSkew}, {"90", 90 * time.Second}, {"0", 0}, {"86400", 24 * time.Hour}} {
		annotations := map[string]string{AnnoTTLSeconds: "3600"}
		if c.anno != "" {
			annotations[AnnoClockSkew] = c.anno
		}
		cfg, err := ResolveConfig(annotations, nil, Overrides{})
		if err != nil || cfg.ClockSkew != c.want {
			t.Fatalf("annotation %q: margin %s (%v), want %s", c.anno, cfg.ClockSkew, err, c.want)
		}
		if got, want := RetireAfter(t0, cfg.TTL, cfg.ClockSkew), t0.Add(time.Hour+c.want); !got.Equal(want) {
			t.Fatalf("annotation %q: retire-after %s, want %s", c.anno, got, want)
		}
	}
	if DefaultClockSkew < 5*time.Minute {
		t.Fatalf("the default margin %s is below 5 minutes", DefaultClockSkew)
	}
	for _, bad := range []string{"-1", "86401", "5m", "1.5", "x"} {
		if _, err := ResolveConfig(map[string]string{AnnoTTLSeconds: "3600", AnnoClockSkew: bad}, nil, Overrides{}); err == nil || !strings.Contains(err.Error(), AnnoClockSkew) {
			t.Fatalf("annotation %q must be refused, naming it: %v", bad, err)
		}
	}
}

// The eighth attack on the traffic instrument: a verifier mounting only items key.v1 and active rejected every v2
// token from the promotion on. A consumer that reads only the data keys it names cannot read a version it does not
// name.
func TestBlindConsumers(t *testing.T) {
	consumers := []Consumer{
		{Ref: ConsumerRef{Kind: "Deployment", Name: "whole"}, Whole: true, Pinned: []string{"active"}},
		{Ref: ConsumerRef{Kind: "Deployment", Name: "pins-old"}, Pinned: []string{"active", "key.v1"}},
		{Ref: ConsumerRef{Kind: "StatefulSet", Name: "pins-new"}, Pinned: []string{"active", "key.v1", "key.v2"}},
	}
	if got := fmt.Sprint(Blind(consumers, "key.v2")); got != "[Deployment/pins-old]" {
		t.Fatalf("blind to key.v2: %s", got)
	}
	if got := Blind(consumers[:1], "key.v9"); len(got) != 0 {
		t.Fatalf("a consumer that reads the whole keyring reads every version: %v", got)
	}
}
