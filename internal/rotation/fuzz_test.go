package rotation

import (
	"testing"
	"time"
)

// The state annotations are hand-editable (the runbook's manual path writes them, an operator may edit them): any
// value is refused with an error or read into a state that survives its own round trip — never a panic.
func FuzzParseState(f *testing.F) {
	f.Add("Waiting", "r1", "v1", "v2", "2026-11-30T10:00:00Z", "2026-11-30T11:01:00Z", "3600", "")
	f.Add("KeyAdded", "emergency-x", "v2", "v3", "", "", "", "INC-1")
	f.Add("Idle", "", "", "", "", "", "", "")
	f.Add("Waiting", "r1", "v01", "v2", "2026-11-30T10:00:00+02:00", "2026-11-30T10:00:00Z", "-5", "")
	f.Add("Sideways", "r1", "v9999999999", "x", "yesterday", "", "1e9", "")
	f.Fuzz(func(t *testing.T, phase, id, from, to, promoted, retire, ttl, emergency string) {
		anno := map[string]string{}
		for k, v := range map[string]string{AnnoPhase: phase, AnnoRotationID: id, AnnoFrom: from, AnnoTo: to, AnnoPromotedAt: promoted,
			AnnoRetireAfter: retire, AnnoTTLUsed: ttl, AnnoEmergency: emergency} {
			if v != "" {
				anno[k] = v
			}
		}
		st, err := ParseState(anno)
		if err != nil {
			return
		}
		again, err := ParseState(st.ApplyAnnotations(nil))
		if err != nil || again.String() != st.String() || !again.RetireAfter.Equal(st.RetireAfter) || again.TTLUsed != st.TTLUsed {
			t.Fatalf("state %q does not survive its round trip: %v %q", st, err, again)
		}
		if st.Phase == Waiting && st.Emergency == "" && st.RetireAfter.Before(st.PromotedAt.Add(st.TTLUsed)) {
			t.Fatalf("a Waiting state retires before promoted-at + TTL: %q", st)
		}
	})
}

// The lease annotation is hand-editable too: refused, or read into a lease that formats back to itself, with a
// positive lifetime (a lifetime that overflowed would make a live lock look expired).
func FuzzParseLease(f *testing.F) {
	f.Add("holder=op@laptop pid 1;rotation=r1;renewed=2026-11-30T12:00:00Z;seconds=60")
	f.Add("holder=runbook op@host shell 7 123;rotation=r1;renewed=2026-11-30T12:00:00Z;seconds=180")
	f.Add("holder=x;renewed=2026-11-30T12:00:00Z;seconds=9223372036854775807")
	f.Add("holder=;seconds=0")
	f.Fuzz(func(t *testing.T, v string) {
		l, err := ParseLease(v)
		if err != nil || l == nil {
			return
		}
		if l.Duration <= 0 || l.Expired(l.Renewed) {
			t.Fatalf("lease %q has lifetime %s", v, l.Duration)
		}
		again, err := ParseLease(l.Format())
		if err != nil || again.Holder != l.Holder || again.RotationID != l.RotationID || !again.Renewed.Equal(l.Renewed) || again.Duration != l.Duration {
			t.Fatalf("lease %q does not survive its round trip: %v %+v %+v", v, err, l, again)
		}
	})
}

// --ttl is typed by hand: refused, or a TTL within the bounds every other TTL source has.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"60", "90d", "2160h", "0", "-1d", "4000d", "1e3", " 3600 ", "9223372036854775807", "1h-30m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := ParseTTL(v)
		if err == nil && (d < MinTTL || d > MaxTTL) {
			t.Fatalf("ParseTTL(%q) = %s, outside [%s, %s]", v, d, MinTTL, MaxTTL)
		}
	})
}

// The clock-skew-seconds annotation is typed by hand: refused, or a margin from 0 to a day that resolves into the
// Config unchanged (a bad one fails the whole configuration instead of falling back to the default).
func FuzzParseClockSkew(f *testing.F) {
	for _, s := range []string{"300", "0", "60", "86400", "86401", "-1", " 120 ", "5m", "1e3", "9223372036854775807", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := ParseClockSkew(v)
		if err == nil && (d < 0 || d > MaxClockSkew) {
			t.Fatalf("ParseClockSkew(%q) = %s, outside [0, %s]", v, d, MaxClockSkew)
		}
		c, cerr := ResolveConfig(map[string]string{AnnoClockSkew: v, AnnoTTLSeconds: "3600"}, nil, Overrides{})
		if (err == nil) != (cerr == nil) || err == nil && c.ClockSkew != d {
			t.Fatalf("annotation %q: ParseClockSkew %s %v, ResolveConfig %s %v", v, d, err, c.ClockSkew, cerr)
		}
	})
}

// The rotation interval is typed by hand (--interval, the rotation-interval annotation): refused, or a positive
// interval within ten years (200000d once overflowed into a negative interval).
func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{"90d", "2160h", "200000d", "1h", "59m", "0d", "-3d", "2160h0m0s", "9223372036854775807d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := ParseDuration(v)
		if err == nil && (d < time.Hour || d > MaxTTL) {
			t.Fatalf("ParseDuration(%q) = %s, outside [1h, 10 years]", v, d)
		}
	})
}

// The retired-up-to mark is hand-editable: refused, or read into a mark at least as high as what the state's own
// rotation removed, which survives its round trip; and no version above it is ever reported as resurrected.
func FuzzRetiredUpTo(f *testing.F) {
	f.Add("v3", "Idle", "v1", "v2", "2026-11-30T10:00:00Z", "", 2)
	f.Add("", "Idle", "v2", "v4", "2026-11-30T10:00:00Z", "INC-1", 1)
	f.Add("v01", "Idle", "v3", "v2", "", "", 2)
	f.Add("v99999999999999999999", "Waiting", "v1", "v2", "", "", 1)
	f.Fuzz(func(t *testing.T, mark, phase, from, to, retiredAt, emergency string, active int) {
		anno := map[string]string{AnnoPhase: phase, AnnoRotationID: "r", AnnoFrom: from, AnnoTo: to, AnnoRetiredAt: retiredAt, AnnoEmergency: emergency, AnnoFinishedAt: "2026-11-30T10:00:00Z"}
		if emergency != "" {
			anno[AnnoRotationID] = EmergencyIDPrefix + "r"
		}
		if mark != "" {
			anno[AnnoRetiredUpTo] = mark
		}
		for k, v := range anno {
			if v == "" {
				delete(anno, k)
			}
		}
		st, err := ParseState(anno)
		if err != nil {
			return
		}
		if _, high := st.removedBy(); st.RetiredUpTo < high {
			t.Fatalf("mark %d below what the state removed (%d)", st.RetiredUpTo, high)
		}
		again, err := ParseState(st.ApplyAnnotations(nil))
		if err != nil || again.RetiredUpTo != st.RetiredUpTo {
			t.Fatalf("mark %d does not survive its round trip: %v %d", st.RetiredUpTo, err, again.RetiredUpTo)
		}
		for _, v := range st.Resurrected([]int{1, 2, 3, 4, 5, active}, active) {
			if v > st.RetiredUpTo {
				t.Fatalf("v%d above the mark %d reported as resurrected", v, st.RetiredUpTo)
			}
		}
		if st.NextVersion(0) <= st.RetiredUpTo {
			t.Fatalf("next version %d at or below the mark %d", st.NextVersion(0), st.RetiredUpTo)
		}
	})
}
