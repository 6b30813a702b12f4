package traffic

import (
	"testing"
	"time"
)

// The classification decides what breaks the promise: an answer near exp proves nothing either way.
func TestReportClassifies(t *testing.T) {
	exp := time.Unix(1000, 0)
	d := Driver{Skew: 2 * time.Second, Margin: 1500 * time.Millisecond}
	at := func(s float64) time.Time { return exp.Add(time.Duration(s * float64(time.Second))) }
	r := &Run{d: d, issued: 3, records: []Presentation{
		{ID: "1", Kid: "v1", Expires: exp, At: at(-30), Accepted: true},
		{ID: "1", Kid: "v1", Expires: exp, At: at(-10), Accepted: false, Reason: "unknown-kid"}, // breaks the promise
		{ID: "1", Kid: "v1", Expires: exp, At: at(-1), Accepted: false},                         // ambiguous: within the margin
		{ID: "1", Kid: "v1", Expires: exp, At: at(3), Accepted: true},                           // ambiguous: within skew + margin
		{ID: "2", Kid: "v2", Expires: exp, At: at(4), Accepted: true},                           // an expired token accepted
		{ID: "3", Kid: "v2", Expires: exp, At: at(4), Accepted: false},
	}}
	rep := r.report()
	if rep.RejectedUnexpired != 1 || rep.RejectedTokens != 1 || rep.AcceptedExpired != 1 || rep.ExpiredRejected != 1 || rep.VerifiedTokens != 3 || rep.ByKid["v2"] != 2 {
		t.Fatalf("report: %s", rep)
	}
}

// No moment of a token's life is unwatched: presentations at most PresentEvery apart, one just before the margin
// around exp, one after exp + skew + margin.
func TestScheduleCoversTheWholeLife(t *testing.T) {
	d := Driver{PresentEvery: 15 * time.Second, Skew: 2 * time.Second, Margin: 1500 * time.Millisecond}
	issued := time.Unix(1000, 0)
	exp := issued.Add(60 * time.Second)
	for i := 0; i < 200; i++ {
		s := d.schedule(issued, exp)
		if !s[0].Equal(issued) || !s[len(s)-1].Equal(exp.Add(3500*time.Millisecond)) || !s[len(s)-2].Equal(exp.Add(-1750*time.Millisecond)) {
			t.Fatalf("schedule %v", s)
		}
		for j := 1; j < len(s)-1; j++ {
			if gap := s[j].Sub(s[j-1]); gap < 0 || gap > d.PresentEvery {
				t.Fatalf("gap of %s in %v", gap, s)
			}
		}
	}
}
