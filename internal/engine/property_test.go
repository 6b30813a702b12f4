package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
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
// token that long past exp. The property: no token a verifier holds unexpired is ever rejected. The simulated clock is
// injected in-process only.

const (
	ns       = "sim"
	secret   = "app-requests-proxy-admin"
	simStep  = 250 * time.Millisecond
	simTTL   = 20 * time.Second
	simSkew  = 15 * time.Second // the most a verifier's clock runs behind; the engine's margin in the sim
	annoRest = rotation.Prefix + "restarted-for"
)

type simPod struct {
	name, deploy, rev string
	readyAt           time.Time
	keys              map[string][]byte // the keyring as the container read it at start
	behind            time.Duration     // how far the pod's clock runs behind (verifiers)
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
}

func newSim(t *testing.T, seed uint64) *sim {
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), client: fake.NewSimpleClientset(), now: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		pods: map[string]*simPod{}, replicas: map[string]int{}}
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
	p := &simPod{name: fmt.Sprintf("%s-%d", deploy, s.seq), deploy: deploy, rev: rev, readyAt: s.now.Add(delay), keys: s.secretData()}
	if deploy == "verifier" {
		p.behind = simSkew/2 + time.Duration(s.rng.Int64N(int64(simSkew/2)+1)) // a node without NTP drifts one way
	}
	s.pods[p.name] = p
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: ns, Labels: map[string]string{"app": deploy}, Annotations: map[string]string{annoRest: rev}}}
	if _, err := s.client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
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
	for _, p := range s.pods { // containers crash and restart, reading the keyring again
		if s.ready(p) && s.rng.IntN(400) == 0 {
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
		if p.deploy == "signer" && s.ready(p) {
			kid := string(p.keys["active"])
			s.tokens = append(s.tokens, token{kid: kid, key: p.keys["key."+kid], expires: s.now.Add(simTTL)})
		}
	}
	for _, p := range s.pods {
		if p.deploy != "verifier" || !s.ready(p) || len(s.tokens) == 0 {
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
	if skip := d - simTTL - simSkew - 5*time.Second; skip > 0 {
		s.now = s.now.Add(skip)
		s.controller()
		d -= skip
	}
	s.advance(d)
}

// faulty breaks the engine's view of one rollout step, to check that the property test can fail.
type faulty struct {
	*kube.Keyring
	skip string // rollout name reported done without waiting (and, for after-promote, without restarting)
}

func (f *faulty) Preflight(context.Context, []rotation.ConsumerRef) error { return nil } // no authorizer here

func (f *faulty) Restart(ctx context.Context, c rotation.ConsumerRef, value string) error {
	if f.skip == "after-promote" && strings.HasSuffix(value, "/after-promote") {
		return nil
	}
	return f.Keyring.Restart(ctx, c, value)
}

func (f *faulty) Rollout(ctx context.Context, c rotation.ConsumerRef, value string) (rotation.RolloutStatus, error) {
	if f.skip != "" && strings.HasSuffix(value, "/"+f.skip) {
		return rotation.RolloutStatus{Done: true, Progress: "skipped by the test"}, nil
	}
	return f.Keyring.Rollout(ctx, c, value)
}

// rotate runs one whole rotation in the simulation, with the engine's clock-skew margin skew, and returns how many
// unexpired tokens were rejected.
func rotate(t *testing.T, seed uint64, skip string, skew time.Duration) (rejected, verified int) {
	s := newSim(t, seed)
	s.advance(time.Duration(s.rng.IntN(5000)) * time.Millisecond)
	cluster := &faulty{Keyring: &kube.Keyring{Cluster: &kube.Cluster{Client: s.client, Namespace: ns, Clock: func() time.Time { return s.now }}, SecretName: secret}, skip: skip}
	engine := &engine.Engine{
		Cluster: cluster, Config: rotation.Config{TTL: simTTL, ClockSkew: skew, Interval: 90 * 24 * time.Hour, Consumers: []rotation.ConsumerRef{{Kind: "Deployment", Name: "signer"}, {Kind: "Deployment", Name: "verifier"}}},
		Holder: "sim", Actor: "sim", Rand: cryptoRand{s.rng}, RolloutTimeout: time.Hour, Poll: time.Second,
		NewRotationID: func(time.Time) string { return "sim" },
		LocalNow:      func() time.Time { return s.now },
		Sleep:         func(_ context.Context, d time.Duration) error { s.advance(d); return nil },
	}
	ctx := context.Background()
	res, err := engine.Run(ctx, true)
	if err != nil || res.Decision.Step != rotation.StepWaitTTL {
		t.Fatalf("seed %d: first run: %v %+v", seed, err, res.Decision)
	}
	s.wait(res.State.RetireAfter.Sub(s.now) + time.Duration(s.rng.IntN(3000))*time.Millisecond)
	if res, err = engine.Run(ctx, true); err != nil || res.State.Phase != rotation.Idle {
		t.Fatalf("seed %d: second run: %v %+v", seed, err, res.State)
	}
	s.advance(simTTL + simSkew + 5*time.Second) // every token issued so far expires on every clock; keep verifying until then
	data := s.secretData()
	if _, ok := data["key.v1"]; ok || string(data["active"]) != "v2" {
		t.Fatalf("seed %d: rotation did not finish: %s active %s", seed, keyring.DataKeys(data), data["active"])
	}
	return s.rejected, s.verified
}

func TestPropertyNoUnexpiredTokenRejected(t *testing.T) {
	runs := 1000
	if testing.Short() {
		runs = 100
	}
	verified := 0
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		rejected, v := rotate(t, seed, "", simSkew)
		verified += v
		if rejected > 0 {
			t.Fatalf("seed %d: %d unexpired tokens rejected", seed, rejected)
		}
	}
	t.Logf("%d randomized rotations, %d token verifications, 0 unexpired tokens rejected", runs, verified)
}

// The property test must be able to fail: promoting before the first rollout finished, skipping the second
// rollout, or retiring with no clock-skew margin (verifiers behind by up to simSkew) rejects live tokens in some runs.
// (make unit runs 40 per order, make test 200: most runs fail either way.)
func TestPropertyCatchesUnsafeOrders(t *testing.T) {
	runs := uint64(200)
	if testing.Short() {
		runs = 40
	}
	for _, c := range []struct {
		name, skip string
		skew       time.Duration
	}{{"skipping the after-add rollout", "after-add", simSkew}, {"skipping the after-promote rollout", "after-promote", simSkew}, {"no clock-skew margin", "", 0}} {
		failing := 0
		for seed := uint64(1); seed <= runs; seed++ {
			if rejected, _ := rotate(t, seed, c.skip, c.skew); rejected > 0 {
				failing++
			}
		}
		if failing == 0 {
			t.Fatalf("%s rejected no token in %d runs: the simulation cannot tell a safe order from an unsafe one", c.name, runs)
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
