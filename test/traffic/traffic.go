// Package traffic drives real token traffic through the token app (test/tokenapp) running on the cluster-in-a-box's
// runner node: clients take tokens from the signer's ready endpoints at a steady rate and present every token to
// the verifier's ready endpoints repeatedly until it expires, and once after; every answer is recorded. It is the
// instrument that measures the product's promise: a rotation never rejects a token that has not expired.
//
// Endpoints come from the EndpointSlices of a Service, as kube-proxy would take them: only ready endpoints get
// requests, so a terminating or not-yet-ready pod gets none once the EndpointSlice controller has caught up.
package traffic

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/tracebloc/helm-rotate-key/test/tokenapp/token"
)

// Driver is one traffic run's configuration.
type Driver struct {
	Client    kubernetes.Interface
	Namespace string
	// Signer and Verifier name the Services whose ready endpoints issue and verify tokens (port "http" or the
	// first port of the EndpointSlice).
	Signer, Verifier string
	// Rate is how many tokens are issued per second.
	Rate float64
	// PresentEvery is how often a token is presented again until it expires (see schedule: also at issue, just
	// before the margin around exp, and once Skew+Margin after it).
	PresentEvery time.Duration
	// Skew is the verifiers' tolerance past exp; Margin the driver's: an answer within Margin of exp (or of
	// exp+Skew) is not classified, because exp is whole seconds and requests take time.
	Skew, Margin time.Duration
	// Concurrency bounds the requests in flight (default 32).
	Concurrency int
	// Address maps an endpoint's IP to where it is reached from here (default: unchanged).
	Address func(ip string) string
	// Settle bounds how long Stop keeps issuing after the keyring's last change (Keyring; without one, Stop waits
	// all of it): a change reaches a pod's mounted files only after the kubelet's refresh delay, so traffic that
	// ends when the rotation's last command returns would never meet it (the third attack on the instrument).
	// With a Keyring, Stop ends the settle early once every ready endpoint that re-reads its keys (the token app's
	// /metrics says "keys dir") reports the keyring's versions and active one as the Secret has them now.
	Settle time.Duration
	// Keyring, when set, names the Secret whose data the run watches: a version's bytes must never change while
	// tokens signed with it live, and the report names every data key whose bytes did (never the bytes).
	Keyring string
}

// Presentation is one answer of a verifier to one token.
type Presentation struct {
	Kid, ID, Issuer string
	IssuedAt        time.Time
	Expires         time.Time
	At              time.Time
	Latency         time.Duration
	Pod             string
	Accepted        bool
	// Reason is the verifier's first word when it refused (unknown-kid, bad-signature, expired, malformed).
	Reason string
}

// Class says what an answer proves.
type Class int

// The classes of a presentation.
const (
	// Ambiguous: presented too close to exp to judge.
	Ambiguous Class = iota
	// Unexpired: presented before exp - Margin; it must be accepted.
	Unexpired
	// Expired: presented after exp + Skew + Margin; it must be refused.
	Expired
)

// Run is traffic in progress; Stop ends it and returns what was recorded.
type Run struct {
	d         Driver
	cancel    context.CancelFunc
	stopWatch context.CancelFunc
	factory   informers.SharedInformerFactory
	// keyFactory watches the keyring Secret (Driver.Keyring), nil without one.
	keyFactory informers.SharedInformerFactory
	wg         sync.WaitGroup
	client     *http.Client
	sem        chan struct{}
	mu         sync.Mutex
	records    []Presentation
	issued     int
	// issueErrors counts attempts to get a token that got none; unreachable counts presentations no verifier
	// answered in any attempt (each failed attempt is also recorded as a refusal); failures keeps the first reasons.
	issueErrors, unreachable int
	failures                 []string
	started, stopped         time.Time
	endpoints                *endpointSet
	// keyDigests are the distinct digests each keyring data key had while the run watched it.
	keyDigests map[string]map[[32]byte]bool
	// keyChanged is when the keyring Secret was last seen changed.
	keyChanged time.Time
}

// Start begins issuing tokens and presenting them.
func (d Driver) Start(ctx context.Context) (*Run, error) {
	if d.Concurrency == 0 {
		d.Concurrency = 32
	}
	if d.Address == nil {
		d.Address = func(ip string) string { return ip }
	}
	if d.Margin == 0 {
		d.Margin = 1500 * time.Millisecond
	}
	// The endpoints are watched until the last token's last presentation (Stop), issuing stops at once.
	watchCtx, stopWatch := context.WithCancel(ctx)
	ctx, cancel := context.WithCancel(ctx)
	r := &Run{d: d, cancel: cancel, stopWatch: stopWatch, sem: make(chan struct{}, d.Concurrency), started: time.Now(),
		client:    &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}},
		endpoints: newEndpointSet(d.Address), keyDigests: map[string]map[[32]byte]bool{}}
	factory := informers.NewSharedInformerFactoryWithOptions(d.Client, 0, informers.WithNamespace(d.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + " in (" + d.Signer + "," + d.Verifier + ")"
		}))
	inf := factory.Discovery().V1().EndpointSlices().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.endpoints.update(o, false) },
		UpdateFunc: func(_, o any) { r.endpoints.update(o, false) },
		DeleteFunc: func(o any) { r.endpoints.update(o, true) },
	})
	factory.Start(watchCtx.Done())
	synced := []cache.InformerSynced{inf.HasSynced}
	if d.Keyring != "" {
		keys := informers.NewSharedInformerFactoryWithOptions(d.Client, 0, informers.WithNamespace(d.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + d.Keyring }))
		secrets := keys.Core().V1().Secrets().Informer()
		_, _ = secrets.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    r.noteKeyring,
			UpdateFunc: func(_, o any) { r.noteKeyring(o) },
		})
		keys.Start(watchCtx.Done())
		synced = append(synced, secrets.HasSynced)
		r.keyFactory = keys
	}
	if !cache.WaitForCacheSync(watchCtx.Done(), synced...) {
		cancel()
		stopWatch()
		return nil, fmt.Errorf("traffic: EndpointSlices of %s/%s not synced", d.Namespace, d.Signer)
	}
	r.factory = factory
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.issueLoop(ctx)
	}()
	return r, nil
}

// settleTail is how long issuing goes on after every re-reading endpoint showed the keyring as it is: a few of
// the new tokens meet the pods' new view (the tokens issued before meet it anyway: each is followed to its expiry).
const settleTail = 5 * time.Second

// Stop keeps issuing until the keyring's last change has reached every ready endpoint that re-reads its keys (at
// most Settle after that change), then stops issuing, waits until every token issued so far has had its last
// presentation (after its expiry), and returns the report.
func (r *Run) Stop() Report {
	r.mu.Lock()
	until := time.Now().Add(r.d.Settle)
	if !r.keyChanged.IsZero() {
		until = r.keyChanged.Add(r.d.Settle)
	}
	r.mu.Unlock()
	for r.d.Keyring != "" && time.Now().Before(until) {
		if r.converged() {
			until = time.Now().Add(settleTail)
			break
		}
		time.Sleep(2 * time.Second)
	}
	time.Sleep(time.Until(until))
	return r.StopNow()
}

// converged says whether every ready signer and verifier endpoint that re-reads its keys reports the versions and
// the active one the keyring Secret holds now (read afresh: the watch may lag the rotation's last write). An
// endpoint that does not answer, or a keyring that cannot be read, is not converged.
func (r *Run) converged() bool {
	s, err := r.d.Client.CoreV1().Secrets(r.d.Namespace).Get(context.Background(), r.d.Keyring, metav1.GetOptions{})
	if err != nil {
		return false
	}
	want := viewOf(s.Data)
	for _, ep := range append(r.endpoints.ready(r.d.Signer), r.endpoints.ready(r.d.Verifier)...) {
		source, got, err := r.appView(ep)
		if err != nil || source != "env" && got != want {
			return false
		}
	}
	return true
}

// keyView is a keyring as a token app knows it: its kids in order and the active one (never bytes).
type keyView struct{ kids, active string }

var versionKey = regexp.MustCompile(`^(?:key\.)?(v[1-9][0-9]*)$`)

// viewOf is the keyView of a keyring Secret's data, in either naming style.
func viewOf(data map[string][]byte) keyView {
	var kids []string
	for k := range data {
		if m := versionKey.FindStringSubmatch(k); m != nil {
			kids = append(kids, m[1])
		}
	}
	return keyView{kids: sortKids(kids), active: string(data["active"])}
}

// sortKids orders kids by version number, joined by commas.
func sortKids(kids []string) string {
	sort.Slice(kids, func(i, j int) bool {
		return len(kids[i]) < len(kids[j]) || len(kids[i]) == len(kids[j]) && kids[i] < kids[j]
	})
	return strings.Join(kids, ",")
}

// appView reads a token app's /metrics: where its keys come from ("env" or "dir") and what it knows.
func (r *Run) appView(ep endpoint) (source string, v keyView, err error) {
	resp, err := r.client.Get("http://" + ep.addr + "/metrics")
	if err != nil {
		return "", keyView{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", keyView{}, fmt.Errorf("%s: /metrics: %s %v", ep.pod, resp.Status, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		k, val, _ := strings.Cut(line, " ")
		switch k {
		case "keys":
			source = val
		case "kids":
			kids := []string{}
			if val != "" {
				kids = strings.Split(val, ",")
			}
			v.kids = sortKids(kids)
		case "active":
			v.active = val
		}
	}
	return source, v, nil
}

// StopNow is Stop without the settle: for a run whose purpose was met when the caller's last step returned (a
// control that must show a break).
func (r *Run) StopNow() Report {
	r.mu.Lock()
	r.stopped = time.Now()
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.stopWatch()
	r.factory.Shutdown()
	if r.keyFactory != nil {
		r.keyFactory.Shutdown()
	}
	return r.report()
}

// noteKeyring records the digest of every versioned data key of the keyring Secret ("active" names a version and
// may change).
func (r *Run) noteKeyring(o any) {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keyChanged = time.Now()
	for k, v := range s.Data {
		if k == "active" {
			continue
		}
		if r.keyDigests[k] == nil {
			r.keyDigests[k] = map[[32]byte]bool{}
		}
		r.keyDigests[k][sha256.Sum256(v)] = true
	}
}

func (r *Run) issueLoop(ctx context.Context) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.d.Rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.wg.Add(1)
			go func() { defer r.wg.Done(); r.follow(ctx) }()
		}
	}
}

// follow issues one token and presents it until after its expiry. It outlives the run's context: a token issued
// before Stop is followed to the end.
func (r *Run) follow(ctx context.Context) {
	tok, ok := r.issue()
	if !ok {
		return
	}
	c, err := token.Parse(tok)
	r.mu.Lock()
	if err != nil {
		r.issueErrors++ // a signer answered 200 with something that is not a token
		r.mu.Unlock()
		return
	}
	r.issued++
	r.mu.Unlock()
	exp := time.Unix(c.Expires, 0)
	for _, at := range r.d.schedule(time.Now(), exp) {
		time.Sleep(time.Until(at))
		r.present(tok, c, exp)
	}
}

// schedule is when a token issued at issued and expiring at exp is presented: at once; then every PresentEvery
// from a random phase (so that no moment of a token's life is skipped by every token); just before the margin
// closes, as late as the promise can be judged (exp − Margin − 250 ms); and once after exp + Skew + Margin.
func (d Driver) schedule(issued, exp time.Time) []time.Time {
	lastLive, expired := exp.Add(-d.Margin-250*time.Millisecond), exp.Add(d.Skew+d.Margin)
	out := []time.Time{issued}
	for at := issued.Add(time.Duration(rand.Int64N(int64(d.PresentEvery)))); at.Before(lastLive); at = at.Add(d.PresentEvery) {
		out = append(out, at)
	}
	if lastLive.After(issued) {
		out = append(out, lastLive)
	}
	return append(out, expired)
}

// issue takes a token from a ready signer. Every attempt that gets no token — no ready endpoint, a dropped or
// timed-out connection, a non-200 answer — counts in issueErrors (a client that wanted a token got none), and the
// next attempt goes to another endpoint, up to 3.
func (r *Run) issue() (string, bool) {
	tried := map[string]bool{}
	for attempt := 0; attempt < 3; attempt++ {
		ep, ok := r.endpoints.pick(r.d.Signer, tried)
		if !ok {
			r.count(&r.issueErrors, "no ready endpoint of "+r.d.Signer)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		r.sem <- struct{}{}
		resp, err := r.client.Get("http://" + ep.addr + "/token")
		<-r.sem
		tried[ep.pod] = true
		if err != nil {
			r.count(&r.issueErrors, ep.pod+": "+err.Error())
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			r.count(&r.issueErrors, ep.pod+": "+resp.Status)
			continue
		}
		return strings.TrimSpace(string(body)), true
	}
	return "", false
}

// count adds one to a failure counter and keeps the first few reasons.
func (r *Run) count(counter *int, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*counter++
	if len(r.failures) < 10 {
		r.failures = append(r.failures, why)
	}
}

// present shows the token to a ready verifier. Every attempt is recorded: an answer as the verifier gave it (any
// answer but 200 is a refusal, a 5xx too), and an attempt that got no answer — no ready endpoint, a dropped or
// timed-out connection — as a refusal too (reason "no-endpoint" or "no-answer"), because the client was refused
// all the same. After such an attempt it tries again, another endpoint, up to 10 times, so that what the token's
// later presentations show is still seen.
func (r *Run) present(tok string, c token.Claims, exp time.Time) {
	record := func(p Presentation) {
		p.Kid, p.ID, p.Issuer, p.IssuedAt, p.Expires = c.Kid, c.ID, c.Issuer, time.Unix(c.IssuedAt, 0), exp
		r.mu.Lock()
		r.records = append(r.records, p)
		r.mu.Unlock()
	}
	tried := map[string]bool{}
	for attempt := 0; attempt < 10; attempt++ {
		ep, ok := r.endpoints.pick(r.d.Verifier, tried)
		if !ok {
			record(Presentation{At: time.Now(), Reason: "no-endpoint"})
			time.Sleep(300 * time.Millisecond)
			continue
		}
		r.sem <- struct{}{}
		at := time.Now()
		resp, err := r.client.Post("http://"+ep.addr+"/verify", "text/plain", strings.NewReader(tok))
		latency := time.Since(at)
		<-r.sem
		if err != nil {
			tried[ep.pod] = true
			record(Presentation{At: at, Latency: latency, Pod: ep.pod, Reason: "no-answer"})
			time.Sleep(100 * time.Millisecond)
			continue
		}
		p := Presentation{At: at, Latency: latency, Pod: ep.pod}
		p.Accepted, p.Reason = answer(resp)
		record(p)
		return
	}
	r.count(&r.unreachable, "a token no verifier answered in 10 attempts")
}

// answer reads a verifier's response: accepted on 200; otherwise the reason is the verifier's first word on 401
// (unknown-kid, bad-signature, expired, malformed) and status-N on any other status.
func answer(resp *http.Response) (accepted bool, reason string) {
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return true, ""
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return false, fmt.Sprintf("status-%d", resp.StatusCode)
	}
	reason, _, _ = strings.Cut(strings.TrimSpace(string(body)), ":")
	reason, _, _ = strings.Cut(reason, " ")
	return false, reason
}

// Classify says what a presentation proves under the driver's skew and margin. The verifier judged exp at some
// moment between sending and the answer, so a presentation is unexpired only if its answer came before exp - Margin
// (a stalled request that crossed exp proves nothing: judged from its start, a loaded machine made correct
// rotations fail — the fourth attack on the instrument), and expired only if it was sent after exp + Skew + Margin.
func (d Driver) Classify(p Presentation) Class {
	switch {
	case p.At.Add(p.Latency).Before(p.Expires.Add(-d.Margin)):
		return Unexpired
	case p.At.After(p.Expires.Add(d.Skew + d.Margin)):
		return Expired
	}
	return Ambiguous
}

type endpoint struct{ addr, pod string }

// endpointSet holds the ready endpoints of each Service, by EndpointSlice.
type endpointSet struct {
	mu      sync.Mutex
	slices  map[string]*discoveryv1.EndpointSlice
	address func(string) string
}

func newEndpointSet(address func(string) string) *endpointSet {
	return &endpointSet{slices: map[string]*discoveryv1.EndpointSlice{}, address: address}
}

func (e *endpointSet) update(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	s, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if deleted {
		delete(e.slices, s.Name)
		return
	}
	e.slices[s.Name] = s
}

// pick returns a random ready endpoint of the Service, preferring one not in tried: a retry after a dropped
// connection goes to another replica when there is one (random retries alone left a token unanswered by ten
// draws of the same dropping replica, one time in a thousand).
func (e *endpointSet) pick(service string, tried map[string]bool) (endpoint, bool) {
	ready := e.ready(service)
	if len(ready) == 0 {
		return endpoint{}, false
	}
	var fresh []endpoint
	for _, ep := range ready {
		if !tried[ep.pod] {
			fresh = append(fresh, ep)
		}
	}
	if len(fresh) > 0 {
		ready = fresh
	}
	return ready[rand.N(len(ready))], true
}

// ready lists the ready endpoints of the Service.
func (e *endpointSet) ready(service string) []endpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ready []endpoint
	for _, s := range e.slices {
		if s.Labels[discoveryv1.LabelServiceName] != service {
			continue
		}
		port := int32(0)
		for _, p := range s.Ports {
			if p.Port != nil && (port == 0 || (p.Name != nil && *p.Name == "http")) {
				port = *p.Port
			}
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 || port == 0 {
				continue
			}
			pod := ""
			if ep.TargetRef != nil {
				pod = ep.TargetRef.Name
			}
			ready = append(ready, endpoint{addr: net.JoinHostPort(e.address(ep.Addresses[0]), strconv.Itoa(int(port))), pod: pod})
		}
	}
	return ready
}

// Forge signs a token with key under kid, as whoever holds a copy of a leaked key would, valid for ttl from now,
// and presents it once to every ready verifier endpoint. The answers are returned, not recorded in the report: a
// forged token is no live token of the application. Used after an emergency: every verifier must refuse it,
// whether it reads its keys from a volume or held them in memory since it started.
func (r *Run) Forge(key []byte, kid string, ttl time.Duration) ([]Presentation, error) {
	now := time.Now()
	c := token.Claims{Kid: kid, IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix(), ID: "forged", Issuer: "attacker"}
	tok, err := token.Sign(key, c)
	if err != nil {
		return nil, err
	}
	var out []Presentation
	for _, ep := range r.endpoints.ready(r.d.Verifier) {
		at := time.Now()
		p := Presentation{Kid: kid, ID: c.ID, Issuer: c.Issuer, IssuedAt: now, Expires: now.Add(ttl), At: at, Pod: ep.pod}
		resp, err := r.client.Post("http://"+ep.addr+"/verify", "text/plain", strings.NewReader(tok))
		p.Latency = time.Since(at)
		if err != nil {
			p.Reason = "no-answer"
		} else {
			p.Accepted, p.Reason = answer(resp)
		}
		out = append(out, p)
	}
	return out, nil
}
