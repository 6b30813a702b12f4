package traffic

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/test/tokenapp/token"
)

// The classification decides what breaks the promise: an answer near exp proves nothing either way.
func TestReportClassifies(t *testing.T) {
	exp := time.Unix(1000, 0)
	d := Driver{Skew: 2 * time.Second, Margin: 1500 * time.Millisecond}
	at := func(s float64) time.Time { return exp.Add(time.Duration(s * float64(time.Second))) }
	r := &Run{d: d, issued: 3, records: []Presentation{
		{ID: "1", Kid: "v1", Expires: exp, At: at(-30), Accepted: true},
		{ID: "1", Kid: "v1", Expires: exp, At: at(-10), Accepted: false, Reason: "unknown-kid"},     // breaks the promise
		{ID: "1", Kid: "v1", Expires: exp, At: at(-1), Accepted: false},                             // ambiguous: within the margin
		{ID: "1", Kid: "v1", Expires: exp, At: at(-3), Latency: 4 * time.Second, Reason: "expired"}, // ambiguous: answered after exp
		{ID: "1", Kid: "v1", Expires: exp, At: at(3), Accepted: true},                               // ambiguous: within skew + margin
		{ID: "2", Kid: "v2", Expires: exp, At: at(4), Accepted: true},                               // an expired token accepted
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

// A verifier that drops the connection refuses the client as surely as a 401: the attempt is recorded as a
// refusal, even though the driver then tries another endpoint (the second cold attack on the instrument).
func TestDroppedConnectionIsARefusal(t *testing.T) {
	drop := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	defer drop.Close()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok v1") }))
	defer ok.Close()
	eps := newEndpointSet(func(ip string) string { return ip })
	addPodSlice := func(name, url string) {
		host, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
		p, _ := strconv.Atoi(port)
		eps.slices[name] = &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "verifier"}},
			Ports:      []discoveryv1.EndpointPort{{Port: ptr.To(int32(p))}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{host}, TargetRef: &corev1.ObjectReference{Name: name}}},
		}
	}
	addPodSlice("dropping", drop.URL)
	addPodSlice("answering", ok.URL)
	r := &Run{d: Driver{Verifier: "verifier", Margin: 1500 * time.Millisecond, Skew: 2 * time.Second}, endpoints: eps, sem: make(chan struct{}, 4), client: &http.Client{Timeout: 10 * time.Second}} // generous: a loaded machine must not turn an answer into "no answer"
	exp := time.Now().Add(time.Minute)
	for i := 0; i < 20; i++ {
		r.present("tok", token.Claims{Kid: "v1", ID: strconv.Itoa(i), Expires: exp.Unix()}, exp)
	}
	rep := r.report()
	if rep.RejectedUnexpired == 0 || rep.VerifiedTokens != 20 || rep.Unreachable != 0 {
		t.Fatalf("drops must count as refusals while the answered presentations still verify every token: %s", rep)
	}
	for _, p := range rep.Records {
		if !p.Accepted && (p.Reason != "no-answer" || p.Pod != "dropping") {
			t.Fatalf("refusal %+v", p)
		}
	}
}

// A version whose bytes change while its tokens live is named in the report (the third attack on the instrument:
// the last write of a rotation replaced the active key's bytes, and traffic that stopped before the volumes
// refreshed reported nothing); a moved "active" is not a change of bytes.
func TestChangedKeyBytesAreReported(t *testing.T) {
	r := &Run{keyDigests: map[string]map[[32]byte]bool{}}
	secret := func(active, v2 string) *corev1.Secret {
		return &corev1.Secret{Data: map[string][]byte{"active": []byte(active), "key.v1": []byte("one"), "key.v2": []byte(v2)}}
	}
	r.noteKeyring(secret("v1", "two"))
	r.noteKeyring(secret("v2", "two"))
	if rep := r.report(); len(rep.KeyBytesChanged) != 0 {
		t.Fatalf("nothing changed bytes: %v", rep.KeyBytesChanged)
	}
	r.noteKeyring(secret("v2", "other"))
	if rep := r.report(); strings.Join(rep.KeyBytesChanged, ",") != "key.v2" || !strings.Contains(rep.String(), "KEY BYTES CHANGED: key.v2") || strings.Contains(rep.String(), "other") {
		t.Fatalf("report: %v %s", rep.KeyBytesChanged, rep)
	}
}
