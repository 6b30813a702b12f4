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
