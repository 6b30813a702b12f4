package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/internal/engine"
	"github.com/tracebloc/helm-rotate-key/internal/keyring"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// This property test drives the real engine and the real rollout check (kube.Keyring over a client-go fake
// clientset) against simulated ReplicaSets and pods: a Deployment controller that replaces pods with random
// start-up delays (maxSurge 1, maxUnavailable 0), containers that crash and restart at random times, signers
// (jobs-manager) and verifiers (requests-proxy) that load the keyring when their container starts, and tokens
// issued and verified throughout; each verifier's clock runs behind by half of simSkew to simSkew, so it accepts a
// token that long past exp. In some runs the token TTL was lowered just before the rotation (pods started before
// keep signing with the old, longer one, which an idle run under it recorded as the TTL in force), in some it is raised back
// to the longer one during the run's first rollouts (pods created after sign with it; the engine started with the
// shorter one and reads the configuration again before scheduling the retirement), and in some Jobs' pods —
// no rollout restarts them — sign and verify with the keyring as it was when they started, each for up to
// jobLife, a new one every few seconds; the operator reruns the engine when it refuses a step for them. The
// property: no token a verifier holds unexpired is ever rejected. The simulated clock is injected in-process only.

const (
	ns       = "sim"
	secret   = "app-requests-proxy-admin"
	simStep  = 250 * time.Millisecond
	simTTL   = 20 * time.Second
	simSkew  = 15 * time.Second // the most a verifier's clock runs behind; the engine's margin in the sim
	oldTTL   = 4 * simTTL       // the TTL before a lowering: longer than the rotation's rollouts + TTL + margin
	jobLife  = 45 * time.Second // the longest a Job's pod runs
	annoRest = rotation.Prefix + "restarted-for"
)

type simPod struct {
	name, deploy, rev string
	readyAt           time.Time
	keys              map[string][]byte // the keyring as the container read it at start
	behind            time.Duration     // how far the pod's clock runs behind (verifiers)
	ttl               time.Duration     // the token TTL in the pod's spec when it was created (signers)
	endsAt            time.Time         // when a Job's pod completes (zero: a Deployment's)
}

type token struct {
	kid     string
	key     []byte
	expires time.Time
}

type sim struct {
	t        *testing.T
	rng      *rand.Rand
	client   *fake.Clientset
	now      time.Time
	pods     map[string]*simPod
	replicas map[string]int
	tokens   []token
	seq      int
	rejected int
	verified int
	// rejectedKid counts the rejected unexpired tokens by the version that signed them.
	rejectedKid map[string]int
	// appTTL is the token TTL the chart configures now; maxTTL the longest any token was signed with.
	appTTL, maxTTL time.Duration
	// jobs: Jobs' pods come and go throughout the run.
	jobs bool
	// raiseAt is when the chart raises the TTL to oldTTL (zero: never).
	raiseAt time.Time
}

// simOptions are one run's world and the fault injected into the engine's view of it.
type simOptions struct {
	skip       string        // a rollout reported done without waiting (faulty)
	skew       time.Duration // the engine's clock-skew margin
	lowered    bool          // the TTL was lowered from oldTTL to simTTL just before the rotation
	jobs       bool          // Jobs' pods read the keyring
	raised     bool          // the TTL is raised from simTTL to oldTTL during the rotation's first rollouts
	ignoreJobs bool          // the engine sees no pod outside the consumers (faulty)
	forgetTTL  bool          // the engine never sees the TTL in force recorded in the state (faulty)
	staleTTL   bool          // the engine keeps the TTL it started with (faulty: no Reconfigure)
}

// randomWorld draws the world of one run of the property: with or without a lowered TTL and Jobs' pods.
func randomWorld(seed uint64) simOptions {
	return simOptions{skew: simSkew, lowered: seed%2 == 0, jobs: seed%4 < 2, raised: seed%3 == 0}
}

// guardResourceVersions makes the fake API server refuse a Secret update whose resourceVersion is not the stored
// one, as the real one does (the fake's tracker replaces the object whatever it says): a write from a stale read
// must not erase what was written since (a TTL raised during the run).
func (s *sim) guardResourceVersions() {
	written := 0
	s.client.PrependReactor("update", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.UpdateAction).GetObject().(*corev1.Secret)
		cur, err := s.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("secrets"), obj.Namespace, obj.Name)
		if err != nil {
			return true, nil, err
		}
		if cur.(*corev1.Secret).ResourceVersion != obj.ResourceVersion {
			return true, nil, apierrors.NewConflict(corev1.Resource("secrets"), obj.Name, fmt.Errorf("the object has been modified"))
		}
		written++
		obj.ResourceVersion = fmt.Sprint(written)
		return false, nil, nil // the tracker stores it
	})
}

// newSim is a world with neither a lowered TTL nor Jobs' pods.
func newSim(t *testing.T, seed uint64) *sim { return newWorld(t, seed, simOptions{}) }

// newWorld starts the world o: the keyring with v1, both Deployments and their pods.
func newWorld(t *testing.T, seed uint64, o simOptions) *sim {
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), client: fake.NewSimpleClientset(), now: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		pods: map[string]*simPod{}, replicas: map[string]int{}, appTTL: simTTL, maxTTL: simTTL, jobs: o.jobs}
	s.guardResourceVersions()
	if o.lowered { // every pod now running signs with the old TTL (a run records it: rotate)
		s.appTTL, s.maxTTL = oldTTL, oldTTL
	}
	k1, err := keyring.Encoding{Kind: keyring.Alphanumeric, Length: 64}.Generate(cryptoRand{s.rng})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: ns},
		Data: map[string][]byte{"key.v1": k1, "active": []byte("v1")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"signer", "verifier"} {
		s.replicas[name] = 1 + s.rng.IntN(3)
		labels := map[string]string{"app": name}
		spec := corev1.PodSpec{Containers: []corev1.Container{{Name: name, EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}}}}}
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(s.replicas[name])),
			Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}}}
		if _, err := s.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < s.replicas[name]; i++ {
			s.startPod(name, "", 0)
		}
	}
	s.syncStatus()
	s.appTTL = simTTL // lowered now: pods created from here on sign with simTTL
	if o.raised {
		s.raiseAt = s.now.Add(time.Duration(s.rng.IntN(8000)) * time.Millisecond)
	}
	return s
}

func (s *sim) secretData() map[string][]byte { return s.mustSecret().Data }

func (s *sim) mustSecret() *corev1.Secret {
	sec, err := s.client.CoreV1().Secrets(ns).Get(context.Background(), secret, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return sec
}

func (s *sim) startPod(deploy, rev string, delay time.Duration) {
	s.seq++
	p := &simPod{name: fmt.Sprintf("%s-%d", deploy, s.seq), deploy: deploy, rev: rev, readyAt: s.now.Add(delay), keys: s.secretData(), ttl: s.appTTL}
	if deploy == "verifier" {
		p.behind = simSkew/2 + time.Duration(s.rng.Int64N(int64(simSkew/2)+1)) // a node without NTP drifts one way
	}
	s.pods[p.name] = p
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: ns, Labels: map[string]string{"app": deploy}, Annotations: map[string]string{annoRest: rev}}}
	if _, err := s.client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// startJob starts a Job's pod in role signer or verifier: it reads the keyring (envFrom) once, runs until endsAt
// and completes; no rollout restarts it. The API server records its creation to the second.
func (s *sim) startJob(role string) {
	s.seq++
	p := &simPod{name: fmt.Sprintf("job-%s-%d", role, s.seq), deploy: "job-" + role, readyAt: s.now, keys: s.secretData(), ttl: s.appTTL,
		endsAt: s.now.Add(time.Second + time.Duration(s.rng.Int64N(int64(jobLife-time.Second))))}
	if role == "verifier" {
		p.behind = simSkew/2 + time.Duration(s.rng.Int64N(int64(simSkew/2)+1))
	}
	s.pods[p.name] = p
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: ns, CreationTimestamp: metav1.NewTime(s.now.Truncate(time.Second)),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: p.name, UID: "job", Controller: ptr.To(true)}}},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: role, EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if _, err := s.client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// jobsStep starts a Job's pod now and then (one every 2 s on average) and completes those whose time is up.
func (s *sim) jobsStep() {
	ctx := context.Background()
	for _, p := range s.pods {
		if p.endsAt.IsZero() || s.now.Before(p.endsAt) {
			continue
		}
		delete(s.pods, p.name)
		pod, err := s.client.CoreV1().Pods(ns).Get(ctx, p.name, metav1.GetOptions{})
		if err != nil {
			s.t.Fatal(err)
		}
		pod.Status.Phase = corev1.PodSucceeded
		if _, err := s.client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
	if s.jobs && s.rng.IntN(int(2*time.Second/simStep)) == 0 {
		s.startJob([]string{"signer", "verifier"}[s.rng.IntN(2)])
	}
}

func (s *sim) deletePod(p *simPod) {
	delete(s.pods, p.name)
	if err := s.client.CoreV1().Pods(ns).Delete(context.Background(), p.name, metav1.DeleteOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sim) ready(p *simPod) bool { return !s.now.Before(p.readyAt) }

// controller is one step of the simulated Deployment controller and kubelet.
func (s *sim) controller() {
	for _, name := range []string{"signer", "verifier"} {
		_, rev := s.deployment(name)
		var current, old []*simPod
		readyCurrent, readyOld, starting := 0, 0, 0
		for _, p := range s.pods {
			if p.deploy != name {
				continue
			}
			if p.rev == rev {
				current = append(current, p)
				if s.ready(p) {
					readyCurrent++
				} else {
					starting++
				}
			} else {
				old = append(old, p)
				if s.ready(p) {
					readyOld++
				}
			}
		}
		want := s.replicas[name]
		if len(current) < want && starting == 0 && s.rng.IntN(3) == 0 { // surge one pod at a time, after a random delay
			s.startPod(name, rev, time.Duration(s.rng.IntN(5000))*time.Millisecond)
		}
		if len(old) > 0 && readyCurrent+readyOld > want && s.rng.IntN(2) == 0 { // scale the old ReplicaSet down
			s.deletePod(old[s.rng.IntN(len(old))])
		}
	}
	s.jobsStep()
	if !s.raiseAt.IsZero() && !s.now.Before(s.raiseAt) { // a helm upgrade sets the longer TTL: the Secret says so
		s.raiseAt, s.appTTL, s.maxTTL = time.Time{}, oldTTL, oldTTL
		sec := s.mustSecret()
		if sec.Annotations == nil {
			sec.Annotations = map[string]string{}
		}
		sec.Annotations[rotation.AnnoTTLSeconds] = fmt.Sprint(int(oldTTL.Seconds()))
		if _, err := s.client.CoreV1().Secrets(ns).Update(context.Background(), sec, metav1.UpdateOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
	for _, p := range s.pods { // containers crash and restart, reading the keyring again
		if p.endsAt.IsZero() && s.ready(p) && s.rng.IntN(400) == 0 {
			p.keys, p.readyAt = s.secretData(), s.now.Add(time.Duration(s.rng.IntN(1000))*time.Millisecond)
		}
	}
	s.syncStatus()
}

// deployment returns a simulated Deployment and the restart value its template carries.
func (s *sim) deployment(name string) (*appsv1.Deployment, string) {
	d, err := s.client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return d, d.Spec.Template.Annotations[annoRest]
}

func (s *sim) syncStatus() {
	ctx := context.Background()
	for _, name := range []string{"signer", "verifier"} {
		d, rev := s.deployment(name)
		var updated, available, total int32
		for _, p := range s.pods {
			if p.deploy == name {
				total++
				if p.rev == rev {
					updated++
				}
				if s.ready(p) {
					available++
				}
			}
		}
		d.Status = appsv1.DeploymentStatus{Replicas: total, UpdatedReplicas: updated, AvailableReplicas: available, ReadyReplicas: available, ObservedGeneration: d.Generation}
		if _, err := s.client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// traffic: every ready signer issues a token with the key `active` named when it started; verifiers check a
// sample of the tokens against the keys they loaded — those their clock still holds unexpired (a token past exp on
// the verifier's clock is rejected for that, rightly, and not counted).
func (s *sim) traffic() {
	live := s.tokens[:0]
	for _, tk := range s.tokens {
		if s.now.Before(tk.expires.Add(simSkew)) {
			live = append(live, tk)
		}
	}
	s.tokens = live
	for _, p := range s.pods {
		if (p.deploy == "signer" || p.deploy == "job-signer") && s.ready(p) {
			kid := string(p.keys["active"])
			s.tokens = append(s.tokens, token{kid: kid, key: p.keys["key."+kid], expires: s.now.Add(p.ttl)})
		}
	}
	for _, p := range s.pods {
		if (p.deploy != "verifier" && p.deploy != "job-verifier") || !s.ready(p) || len(s.tokens) == 0 {
			continue
		}
		for i := 0; i < 4; i++ {
			tk := s.tokens[s.rng.IntN(len(s.tokens))]
			if !s.now.Add(-p.behind).Before(tk.expires) {
				continue
			}
			s.verified++
			if k, ok := p.keys["key."+tk.kid]; !ok || !bytes.Equal(k, tk.key) {
				s.rejected++
				if s.rejectedKid == nil {
					s.rejectedKid = map[string]int{}
				}
				s.rejectedKid[tk.kid]++
			}
		}
	}
}

func (s *sim) advance(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.now = s.now.Add(simStep)
		s.controller()
		s.traffic()
	}
}

// wait lets d pass during the TTL wait: the clock jumps over the part of it from which no token survives (the
// rollouts are done, nothing changes), and every step of the last TTL before the end is simulated with traffic.
func (s *sim) wait(d time.Duration) {
	if skip := d - s.maxTTL - simSkew - jobLife - 5*time.Second; skip > 0 {
		s.now = s.now.Add(skip)
		s.controller()
		d -= skip
	}
	s.advance(d)
}

// faulty breaks the engine's view of the cluster, to check that the property test can fail.
type faulty struct {
	*kube.Keyring
	o simOptions // skip: the rollout reported done without waiting (after-promote: without restarting either)
}

func (f *faulty) Preflight(context.Context, []rotation.ConsumerRef) error { return nil } // no authorizer here

func (f *faulty) Restart(ctx context.Context, c rotation.ConsumerRef, value string) error {
	if f.o.skip == "after-promote" && strings.HasSuffix(value, "/after-promote") {
		return nil
	}
	return f.Keyring.Restart(ctx, c, value)
}

func (f *faulty) Rollout(ctx context.Context, c rotation.ConsumerRef, value string) (rotation.RolloutStatus, error) {
	if f.o.skip != "" && strings.HasSuffix(value, "/"+f.o.skip) {
		return rotation.RolloutStatus{Done: true, Progress: "skipped by the test"}, nil
	}
	return f.Keyring.Rollout(ctx, c, value)
}

func (f *faulty) Strays(ctx context.Context, consumers []rotation.ConsumerRef, since time.Time) ([]string, error) {
	if f.o.ignoreJobs {
		return nil, nil
	}
	return f.Keyring.Strays(ctx, consumers, since)
}

func (f *faulty) Secret(ctx context.Context) (*corev1.Secret, error) {
	s, err := f.Keyring.Secret(ctx)
	if err == nil && f.o.forgetTTL {
		delete(s.Annotations, rotation.AnnoTTLInForce)
	}
	return s, err
}

// rotate runs one whole rotation in the simulated world o and returns how many unexpired tokens were rejected. The
// engine runs as an operator would run it: again, a few seconds later, after it refused a step for a pod no
// rollout restarts.
func rotate(t *testing.T, seed uint64, o simOptions) (rejected, verified int) {
	s := newWorld(t, seed, o)
	s.advance(time.Duration(s.rng.IntN(5000)) * time.Millisecond)
	cluster := &faulty{Keyring: &kube.Keyring{Cluster: &kube.Cluster{Client: s.client, Namespace: ns, Clock: func() time.Time { return s.now }}, SecretName: secret}, o: o}
	ctx := context.Background()
	newEngine := func(ttl time.Duration) *engine.Engine {
		return &engine.Engine{
			Cluster: cluster, Config: rotation.Config{TTL: ttl, ClockSkew: o.skew, Interval: 90 * 24 * time.Hour, Consumers: []rotation.ConsumerRef{{Kind: "Deployment", Name: "signer"}, {Kind: "Deployment", Name: "verifier"}}},
			Holder: "sim", Actor: "sim", Rand: cryptoRand{s.rng}, RolloutTimeout: time.Hour, Poll: time.Second,
			NewRotationID: func(time.Time) string { return "sim" },
			LocalNow:      func() time.Time { return s.now },
			Sleep:         func(_ context.Context, d time.Duration) error { s.advance(d); return nil },
		}
	}
	if o.lowered { // a run while the old TTL was configured (the CronJob, an upgrade's hook Jobs) found nothing to do
		if res, err := newEngine(oldTTL).Run(ctx, false); err != nil || res.Decision.Step != rotation.StepNothing {
			t.Fatalf("seed %d: idle run under the old TTL: %v %+v", seed, err, res.Decision)
		}
	}
	run := func() (engine.Result, error) {
		for refused := 0; ; refused++ {
			e := newEngine(simTTL)
			if !o.staleTTL {
				e.Reconfigure = func(_ context.Context, secret *corev1.Secret) (rotation.Config, error) {
					return rotation.ResolveConfig(secret.Annotations, nil, rotation.Overrides{})
				}
			}
			res, err := e.Run(ctx, true)
			var v *keyring.Violation
			if !errors.As(err, &v) || v.Rule != keyring.RuleReadersKnown || refused > 100 {
				return res, err
			}
			s.advance(time.Second + time.Duration(s.rng.IntN(2000))*time.Millisecond)
		}
	}
	res, err := run()
	if err != nil || res.Decision.Step != rotation.StepWaitTTL {
		t.Fatalf("seed %d: first run: %v %+v", seed, err, res.Decision)
	}
	s.wait(res.State.RetireAfter.Sub(s.now) + time.Duration(s.rng.IntN(3000))*time.Millisecond)
	if res, err = run(); err != nil || res.State.Phase != rotation.Idle {
		t.Fatalf("seed %d: second run: %v %+v", seed, err, res.State)
	}
	s.advance(s.maxTTL + simSkew + jobLife + 5*time.Second) // every token issued so far expires on every clock; keep verifying until then
	data := s.secretData()
	if _, ok := data["key.v1"]; ok || string(data["active"]) != "v2" {
		t.Fatalf("seed %d: rotation did not finish: %s active %s", seed, keyring.DataKeys(data), data["active"])
	}
	return s.rejected, s.verified
}

func TestPropertyNoUnexpiredTokenRejected(t *testing.T) {
	runs := 1000
	if testing.Short() {
		runs = 60
	}
	verified, lowered, raised, jobs := 0, 0, 0, 0
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		o := randomWorld(seed)
		rejected, v := rotate(t, seed, o)
		verified += v
		if o.lowered {
			lowered++
		}
		if o.jobs {
			jobs++
		}
		if o.raised {
			raised++
		}
		if rejected > 0 {
			t.Fatalf("seed %d (%+v): %d unexpired tokens rejected", seed, o, rejected)
		}
	}
	t.Logf("%d randomized rotations (%d with the TTL lowered before, %d with it raised during the run, %d with Jobs' pods reading the keyring), %d token verifications, 0 unexpired tokens rejected", runs, lowered, raised, jobs, verified)
}

// The property test must be able to fail, in most runs of each unsafe order: promoting before the first rollout
// finished, skipping the second rollout, retiring with no clock-skew margin (verifiers behind by up to simSkew),
// ignoring the pods no rollout restarts (Jobs'), retiring after the TTL configured now when a longer one was in
// force while the old key signed, and after the TTL the run started with when it was raised during the run. The simulation is not deterministic (map order), so the bar is set where a
// unsafe order never passes by chance: most of make test's 120 runs per order, a fifth of make unit's 30.
func TestPropertyCatchesUnsafeOrders(t *testing.T) {
	runs, bar := uint64(120), 60
	if testing.Short() {
		runs, bar = 30, 6
	}
	for _, c := range []struct {
		name string
		o    simOptions
	}{
		{"skipping the after-add rollout", simOptions{skip: "after-add", skew: simSkew}},
		{"skipping the after-promote rollout", simOptions{skip: "after-promote", skew: simSkew}},
		{"no clock-skew margin", simOptions{skew: 0}},
		{"ignoring Jobs' pods", simOptions{skew: simSkew, jobs: true, ignoreJobs: true}},
		{"forgetting the TTL in force", simOptions{skew: simSkew, lowered: true, forgetTTL: true}},
		{"keeping the TTL the run started with", simOptions{skew: simSkew, raised: true, staleTTL: true}},
	} {
		failing := 0
		for seed := uint64(1); seed <= runs; seed++ {
			if rejected, _ := rotate(t, seed, c.o); rejected > 0 {
				failing++
			}
		}
		if failing <= bar {
			t.Fatalf("%s rejected live tokens in only %d of %d runs (the bar: more than %d): the simulation barely tells a safe order from an unsafe one", c.name, failing, runs, bar)
		}
		t.Logf("%s: live tokens rejected in %d of %d runs", c.name, failing, runs)
	}
}

// cryptoRand adapts the seeded generator to io.Reader, so keys are reproducible per seed in the simulation.
type cryptoRand struct{ r *rand.Rand }

func (c cryptoRand) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(c.r.Uint32())
	}
	return len(b), nil
}
