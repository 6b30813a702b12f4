package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
	"github.com/tracebloc/helm-rotate-key/test/traffic"
)

// minVerifiedTokens is how many distinct tokens a rotation run must have verified for its "none rejected" to
// mean something.
const minVerifiedTokens = 5000

// trafficLines are the one-line reports of every traffic run, printed as they finish and again at the end of the
// run (TestMain), so that make test shows the figures of passing runs too.
var (
	trafficMu    sync.Mutex
	trafficLines []string
)

func printTraffic(name string, rep traffic.Report) {
	line := fmt.Sprintf("traffic %s: %s", name, rep)
	fmt.Println(line)
	trafficMu.Lock()
	defer trafficMu.Unlock()
	trafficLines = append(trafficLines, line)
}

// minTokensPerKid is how many tokens of each version a run must have verified: the old key's tokens around the
// promotion are the ones a bad rotation rejects.
const minTokensPerKid = 100

// minTrafficSpan is how long a run issues tokens at least: at 40 tokens/s, enough for minVerifiedTokens.
const minTrafficSpan = 135 * time.Second

// trafficSettle bounds how long a run keeps issuing after the keyring's last change: the runner's longest volume
// refresh (90 s, a kubelet's) and a little, so that a change the rotation's last step made reaches every pod
// while tokens are still being issued and checked. The run stops sooner once every volume-fed pod shows the
// keyring as it is (traffic.Driver.Settle).
const trafficSettle = 95 * time.Second

// trafficDriver is the traffic every rotation test measures with: 60 s tokens issued at a steady rate, each
// presented at once, every 15 s, just before it expires and once after (2 s skew, as the token app's verifiers
// allow; see traffic.Driver's schedule), the keyring's bytes watched.
func trafficDriver(ns, keyring string) traffic.Driver {
	return traffic.Driver{Client: cluster.Client, Namespace: ns, Signer: "traffic-signer", Verifier: "traffic-verifier",
		Rate: 40, PresentEvery: 15 * time.Second, Skew: 2 * time.Second, Address: cluster.LocalAddress,
		Settle: trafficSettle, Keyring: keyring}
}

// exampleApps selects the example chart's signer and verifier pods of a release.
func exampleApps(release string) (signer, verifier map[string]string) {
	return map[string]string{"app.kubernetes.io/instance": release, "app.kubernetes.io/name": "jobs-manager"},
		map[string]string{"app.kubernetes.io/instance": release, "app.kubernetes.io/name": "requests-proxy"}
}

// startTraffic puts a Service in front of the signer and one in front of the verifier pods and starts the driver;
// the caller stops it (Stop follows the last tokens to their expiry).
func startTraffic(ctx context.Context, t *testing.T, ns, keyring string, signer, verifier map[string]string) *traffic.Run {
	t.Helper()
	for name, selector := range map[string]map[string]string{"traffic-signer": signer, "traffic-verifier": verifier} {
		if err := cluster.Expose(ctx, ns, name, selector); err != nil {
			t.Fatal(err)
		}
	}
	run, err := trafficDriver(ns, keyring).Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// assertNoTokenRejected is the promise: over enough tokens, signed with every version the run went through, no
// unexpired token was refused and no expired one accepted.
func assertNoTokenRejected(t *testing.T, name string, rep traffic.Report, kids ...string) {
	t.Helper()
	printTraffic(name, rep)
	if rep.RejectedUnexpired != 0 || rep.AcceptedExpired != 0 {
		t.Errorf("traffic %s: %d unexpired tokens rejected, %d expired accepted; first rejections:\n%s", name, rep.RejectedUnexpired, rep.AcceptedExpired, rep.Rejections(10))
	}
	if rep.VerifiedTokens < minVerifiedTokens {
		t.Errorf("traffic %s: only %d tokens verified, want at least %d", name, rep.VerifiedTokens, minVerifiedTokens)
	}
	// A token nobody verified is as good as refused, and so is an attempt no signer or verifier answered: every
	// such attempt is also recorded as a refusal (no-endpoint, no-answer), so an outage fails the run above.
	if rep.Unreachable != 0 || rep.VerifiedTokens != rep.Issued || rep.IssueErrors != 0 {
		t.Errorf("traffic %s: %d presentations no verifier answered, %d failed token requests; %d of %d issued tokens verified; first failures: %q",
			name, rep.Unreachable, rep.IssueErrors, rep.VerifiedTokens, rep.Issued, rep.Failures)
	}
	if len(rep.KeyBytesChanged) != 0 {
		t.Errorf("traffic %s: the bytes of %v changed during the run: every token signed with the old bytes is refused where the new ones arrived", name, rep.KeyBytesChanged)
	}
	if rep.ExpiredRejected != rep.VerifiedTokens {
		t.Errorf("traffic %s: only %d of %d tokens were presented (and refused) after their expiry", name, rep.ExpiredRejected, rep.VerifiedTokens)
	}
	for _, kid := range kids {
		if rep.ByKid[kid] < minTokensPerKid {
			t.Errorf("traffic %s: %d tokens signed with %s were verified, want at least %d", name, rep.ByKid[kid], kid, minTokensPerKid)
		}
	}
}

// trafficRelease installs the example chart as release "app" with the token app running both sides, and starts
// the traffic. extra are further install flags.
func trafficRelease(ctx context.Context, t *testing.T, h *testcluster.Helm, ns string, app testcluster.TokenApp, extra ...string) *traffic.Run {
	t.Helper()
	args := append(append([]string{"--set", "tokenTtlSeconds=60", "--wait", "--timeout", "3m"}, app.Values()...), extra...)
	if out, err := installExample(ctx, h, ns, "app", args...); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	signer, verifier := exampleApps("app")
	return startTraffic(ctx, t, ns, "app-requests-proxy-admin", signer, verifier)
}

// trafficSubtest starts a parallel subtest's release with traffic on Helm major; toWaiting first runs the plugin
// through steps 1-4 (exit 3: waiting for the TTL).
func trafficSubtest(t *testing.T, cost time.Duration, major int, prefix string, app testcluster.TokenApp, toWaiting bool) (*testcluster.Helm, string, *traffic.Run) {
	t.Helper()
	parallel(t, cost)
	h := newHelm(t, major)
	ns := namespace(t, prefix, nil)
	run := trafficRelease(context.Background(), t, h, ns, app)
	if toWaiting {
		if out, err := h.Run(context.Background(), "-n", ns, "rotate-key", "app", "--local", "--yes"); exitCode(err) != 3 {
			t.Fatalf("rotation to Waiting: %v\n%s", err, out)
		}
	}
	return h, ns, run
}

// kubectl runs the real kubectl against the cluster in ns: what a careless operator types.
func kubectl(t *testing.T, ns string, args ...string) string {
	t.Helper()
	cmd := exec.Command(cluster.Tools.Kubectl, append([]string{"--kubeconfig", cluster.Kubeconfig, "-n", ns}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		// A patch may carry key bytes (patchKeyring): a failure names the command, never its patch.
		shown := append([]string(nil), args...)
		for i := range shown {
			if i > 0 && (shown[i-1] == "-p" || shown[i-1] == "--patch") {
				shown[i] = "<patch>"
			}
		}
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(shown, " "), err, out)
	}
	return string(out)
}

// restartAndWait restarts Deployments one after another, each until its rollout is complete.
func restartAndWait(t *testing.T, ns string, deployments ...string) {
	t.Helper()
	for _, d := range deployments {
		kubectl(t, ns, "rollout", "restart", "deployment/"+d)
		kubectl(t, ns, "rollout", "status", "deployment/"+d, "--timeout=2m")
	}
}

// patchKeyring merge-patches the example release's keyring Secret's data (a null value removes a key).
func patchKeyring(t *testing.T, ns string, data map[string]any) {
	t.Helper()
	for k, v := range data {
		if s, ok := v.(string); ok {
			data[k] = base64.StdEncoding.EncodeToString([]byte(s))
		}
	}
	patch, _ := json.Marshal(map[string]any{"data": data})
	kubectl(t, ns, "patch", "secret", "app-requests-proxy-admin", "--type=merge", "-p", string(patch))
}

// TestTrafficCronJob rotates through the chart's CronJob (its Job created by hand, as the schedule would): the
// first Job adds, rolls out, promotes and rolls out; the first Job after the TTL retires. Installed by each Helm,
// with the key.vN naming on Helm 3 and vN on Helm 4.
func TestTrafficCronJob(t *testing.T) {
	t.Parallel()
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			parallel(t, 340*time.Second)
			ctx := context.Background()
			h := newHelm(t, major)
			ns := namespace(t, fmt.Sprintf("traffic-cron-h%d", major), nil)
			naming := map[int]string{3: "key.vN", 4: "vN"}[major] // both naming styles through the plugin's engine
			run := trafficRelease(ctx, t, h, ns, testcluster.TokenApp{SignerKeys: "env", VerifierKeys: "volume", Naming: naming}, "--set", "rotate-key.schedule.enabled=true", "--set", "rotate-key.secret.naming="+naming)
			cron, err := cluster.Client.BatchV1().CronJobs(ns).Get(ctx, "app-rotate-key", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// The order of the steps, on the pods themselves: a rotation that promotes while the verifiers' rollout
			// still runs can pass the traffic (the third attack on the instrument injected one, and it did).
			rec := watchNamespace(ctx, t, ns, "app-requests-proxy-admin")
			time.Sleep(500 * time.Millisecond) // the watches' initial ADDED events
			preAdd := rec.alivePods()
			for i, want := range []rotation.Phase{rotation.Waiting, rotation.Idle} {
				job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-rotate-key-%d", i), Labels: cron.Spec.JobTemplate.Labels}, Spec: cron.Spec.JobTemplate.Spec}
				if _, err := cluster.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				outcome, pod := waitJob(t, ns, job.Name)
				keys, active, st := secretState(t, ns)
				if outcome != "Complete" || st.Phase != want || active != "v2" {
					t.Fatalf("CronJob's Job %d: %s; phase %s (want %s) keys %v active %s\n%s", i, outcome, st.Phase, want, keys, active, cluster.PodLogs(ns, pod.Name))
				}
				if want == rotation.Waiting {
					rec.catchUp(t, ns)
					promoted := rec.firstSecret(func(s secretSeen) bool { return s.active == "v2" })
					if left := rec.survivors(preAdd, promoted); promoted == 0 || len(preAdd) == 0 || len(left) != 0 {
						t.Errorf("promoted at event %d; of the %d pods from before the add, these were still running then: %v", promoted, len(preAdd), left)
					}
					// The sixth attack: the CronJob's retire-after was checked by the traffic alone.
					assertRetireAfterOutlivesOldPods(t, ns, rec, promoted, "v1")
					time.Sleep(time.Until(st.RetireAfter) + time.Second)
				}
			}
			assertNoTokenRejected(t, fmt.Sprintf("helm%d CronJob, %s naming", major, naming), run.Stop(), "v1", "v2")
		})
	}
}

// TestTrafficEmergencyAndAborts: an emergency rotation of a leaked key while the rotation waits for its TTL
// (every token signed with a leaked version is refused once it finished; no token of the fresh key is), and both
// aborts (before and after the promotion), which reject no unexpired token.
func TestTrafficEmergencyAndAborts(t *testing.T) {
	t.Parallel()
	t.Run("emergency-in-waiting", func(t *testing.T) {
		ctx := context.Background()
		// Both read their keys from env at start (the sixth attack: with volume verifiers only, a verifier that kept
		// the leaked keys in memory was never met).
		h, ns, run := trafficSubtest(t, 300*time.Second, 4, "traffic-emergency", testcluster.TokenApp{SignerKeys: "env", VerifierKeys: "env"}, true)
		// The leaked keys as an attacker holds them (read here, never printed): forged tokens must be refused after.
		leaked, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The order on the pods: v3 is promoted only once every pod from before its add is gone (an env-fed
		// verifier that never read v3 refuses its tokens; the traffic may not meet it before it is replaced).
		watch, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		rec := watchNamespace(watch, t, ns, "app-requests-proxy-admin")
		time.Sleep(500 * time.Millisecond) // the watches' initial ADDED events
		preAdd := rec.alivePods()
		began := time.Now()
		out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--emergency", "--reason", "test: v1 and v2 leaked", "--yes")
		if err != nil {
			t.Fatalf("emergency: %v\n%s", err, out)
		}
		finished := time.Now()
		rec.catchUp(t, ns)
		promoted := rec.firstSecret(func(s secretSeen) bool { return s.active == "v3" })
		if left := rec.survivors(preAdd, promoted); promoted == 0 || len(preAdd) == 0 || len(left) != 0 {
			t.Errorf("v3 promoted at event %d; of the %d pods from before the emergency, these were still running then: %v", promoted, len(preAdd), left)
		}
		if keys, active, st := secretState(t, ns); fmt.Sprint(keys) != "[key.v3]" || active != "v3" || st.Phase != rotation.Idle {
			t.Fatalf("after the emergency: keys %v active %s phase %s", keys, active, st.Phase)
		}
		retired, ok := rec.firstSecretSeen(func(s secretSeen) bool {
			return !has(s.keys, "key.v1") && !has(s.keys, "key.v2") && has(s.keys, "key.v3")
		})
		if !ok {
			t.Fatal("the watch saw no keyring without the leaked versions")
		}
		// An attacker's fresh tokens, signed with each leaked key after the emergency: every verifier refuses them.
		for _, kid := range []string{"v1", "v2"} {
			answers, err := run.Forge(leaked.Data["key."+kid], kid, 60*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			accepted := 0
			for _, a := range answers {
				if a.Accepted || a.Reason == "no-answer" {
					accepted++
					t.Errorf("a token forged with the leaked %s after the emergency: verifier %s answered accepted=%v %s", kid, a.Pod, a.Accepted, a.Reason)
				}
			}
			if len(answers) == 0 {
				t.Errorf("no ready verifier to present a forged %s token to", kid)
			}
			t.Logf("forged %s token after the emergency: refused by %d of %d verifiers", kid, len(answers)-accepted, len(answers))
		}
		// The fresh key's tokens, followed past the last leaked one: the settle alone ends as soon as the pods
		// show the new keyring, which left only 1,632 v3 tokens in a run.
		time.Sleep(time.Until(finished.Add(minTrafficSpan)))
		rep := run.Stop()
		printTraffic("emergency in Waiting (v1, v2 leaked)", rep)
		if rep.ByKid["v3"] < minVerifiedTokens {
			t.Errorf("only %d tokens signed with the fresh v3 were verified, want at least %d", rep.ByKid["v3"], minVerifiedTokens)
		}
		leakedAccepted := rep.Where(func(p traffic.Presentation) bool { return p.Kid != "v3" && p.Accepted && p.At.After(finished) })
		freshRejected := rep.Where(func(p traffic.Presentation) bool {
			return p.Kid == "v3" && !p.Accepted && rep.Driver.Classify(p) == traffic.Unexpired
		})
		cost := rep.Where(func(p traffic.Presentation) bool {
			return p.Kid != "v3" && !p.Accepted && rep.Driver.Classify(p) == traffic.Unexpired
		})
		lastLeaked := time.Time{}
		for _, p := range rep.Where(func(p traffic.Presentation) bool { return p.Kid != "v3" && p.Accepted }) {
			if p.At.After(lastLeaked) {
				lastLeaked = p.At
			}
		}
		t.Logf("emergency took %s; leaked-key presentations refused while unexpired (the cost): %d; last leaked acceptance %s after the emergency began",
			finished.Sub(began).Round(time.Millisecond), len(cost), lastLeaked.Sub(began).Round(time.Millisecond))
		if len(leakedAccepted) != 0 || len(freshRejected) != 0 || rep.ByKid["v3"] == 0 || rep.AcceptedExpired != 0 {
			t.Fatalf("emergency: %d leaked-key tokens accepted after it finished, %d unexpired v3 tokens refused, %d v3 tokens verified", len(leakedAccepted), len(freshRejected), rep.ByKid["v3"])
		}
		if len(cost) == 0 {
			t.Fatal("the emergency refused no live token of the leaked keys: was anything retired?")
		}
		// The cost is bounded: every refused leaked-key token was signed before the leaked keys left the keyring. One
		// signed after it means a signer kept the leaked key past the emergency's promotion rollout (the sixth attack
		// skipped that rollout: 59 such tokens, 291 refusals, and the test passed).
		if late := rep.Where(func(p traffic.Presentation) bool { return p.Kid != "v3" && p.IssuedAt.After(retired.at) }); len(late) != 0 {
			t.Fatalf("%d presentations of leaked-key tokens issued after the leaked keys were retired (%s), e.g. %s %s issued %s by %s",
				len(late), retired.at.Format(time.RFC3339Nano), late[0].Kid, late[0].ID, late[0].IssuedAt.Format(time.RFC3339), late[0].Issuer)
		}
		// The rest of the promise holds as on any run: every token answered, the fresh key's well covered, no
		// failed token request, no key's bytes changed.
		if rep.IssueErrors != 0 || rep.Unreachable != 0 || rep.VerifiedTokens != rep.Issued || rep.ByKid["v3"] < minTokensPerKid || rep.ExpiredRejected != rep.VerifiedTokens || len(rep.KeyBytesChanged) != 0 {
			t.Fatalf("emergency: %d failed token requests, %d unanswered presentations, %d of %d tokens verified, %d v3 tokens (want %d), %d expired-rejected, key bytes changed %v",
				rep.IssueErrors, rep.Unreachable, rep.VerifiedTokens, rep.Issued, rep.ByKid["v3"], minTokensPerKid, rep.ExpiredRejected, rep.KeyBytesChanged)
		}
	})
	t.Run("abort-before-promotion", func(t *testing.T) {
		ctx := context.Background()
		h, ns, run := trafficSubtest(t, 200*time.Second, 3, "traffic-abort-early", testcluster.TokenApp{SignerKeys: "env", VerifierKeys: "env"}, false)
		began := time.Now()
		// A rollout timeout far shorter than the rollout stops the run after the add: the rotation is in KeyAdded.
		if out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--local", "--yes", "--timeout", "1s"); err == nil {
			t.Fatalf("a run with a 1 s rollout timeout finished:\n%s", out)
		}
		if _, _, st := secretState(t, ns); st.Phase != rotation.KeyAdded {
			t.Fatalf("after the timed-out run: phase %s, want KeyAdded", st.Phase)
		}
		if out, err := h.Run(ctx, "-n", ns, "rotate-key", "abort", "app", "--yes", "--local"); err != nil {
			t.Fatalf("abort: %v\n%s", err, out)
		}
		if keys, active, _ := secretState(t, ns); fmt.Sprint(keys) != "[key.v1]" || active != "v1" {
			t.Fatalf("after the abort: keys %v active %s", keys, active)
		}
		// The abort itself takes seconds; the tokens of the pods it left must be verified through their lifetime too.
		time.Sleep(time.Until(began.Add(minTrafficSpan)))
		assertNoTokenRejected(t, "abort before the promotion", run.Stop(), "v1")
	})
	t.Run("abort-after-promotion", func(t *testing.T) {
		ctx := context.Background()
		// One slow signer (its rollouts outlast retire-after's 60 s margin): the last signer that ran at the revert
		// signs with v2 for over a minute after it, so a retire-after counted from the revert instead of the end of
		// its rollout rejects v2's tokens (the fifth attack on the instrument passed that fault with fast rollouts).
		slow := testcluster.TokenApp{SignerKeys: "env", VerifierKeys: "env", SignerReplicas: 1, SignerMinReady: 70 * time.Second}
		h, ns, run := trafficSubtest(t, 600*time.Second, 4, "traffic-abort-late", slow, true)
		watch, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		rec := watchNamespace(watch, t, ns, "app-requests-proxy-admin")
		time.Sleep(500 * time.Millisecond) // the watches' initial ADDED events
		if out, err := h.Run(ctx, "-n", ns, "rotate-key", "abort", "app", "--yes", "--local"); exitCode(err) != 3 && err != nil {
			t.Fatalf("abort: %v\n%s", err, out)
		}
		keys, active, st := secretState(t, ns)
		if fmt.Sprint(keys) != "[key.v1 key.v2]" || active != "v1" {
			t.Fatalf("after the abort: keys %v active %s phase %s", keys, active, st.Phase)
		}
		rec.catchUp(t, ns)
		reverted := rec.firstSecret(func(s secretSeen) bool { return s.active == "v1" })
		if reverted == 0 {
			t.Fatal("the revert to v1 was not seen")
		}
		assertRetireAfterOutlivesOldPods(t, ns, rec, reverted, "v2")
		retireAborted(t, h, ns, st.RetireAfter)
		assertNoTokenRejected(t, "abort after the promotion", run.Stop(), "v1", "v2")
	})
	t.Run("abort-with-a-signer-no-rollout-restarts", func(t *testing.T) {
		// The seventh attack on the instrument: a bare signer (a Job's, say) that read active=v2 keeps signing with
		// it after the abort; it ended between the abort's rollout and retire-after, and the retirement rejected
		// 473 of its live tokens. The abort's rollout now waits for it: refused, naming it, until it is gone.
		ctx := context.Background()
		h, ns, run := trafficSubtest(t, 400*time.Second, 4, "traffic-abort-stray", testcluster.TokenApp{SignerKeys: "env", VerifierKeys: "env"}, true)
		signer, _ := exampleApps("app")
		pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(signer).String()})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("signer pods: %v %d", err, len(pods.Items))
		}
		stray := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray-signer", Labels: map[string]string{}}, Spec: *pods.Items[0].Spec.DeepCopy()}
		for k, v := range pods.Items[0].Labels {
			stray.Labels[k] = v
		}
		delete(stray.Labels, "pod-template-hash")
		stray.Labels["app.kubernetes.io/instance"] = "stray" // not the Deployment's pod; the signer Service still sends it traffic
		stray.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
		svc, err := cluster.Client.CoreV1().Services(ns).Get(ctx, "traffic-signer", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		delete(svc.Spec.Selector, "app.kubernetes.io/instance")
		if _, err := cluster.Client.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, stray, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second) // it starts, reads active=v2, becomes ready and signs
		out, err := h.Run(ctx, "-n", ns, "rotate-key", "abort", "app", "--yes", "--local")
		if exitCode(err) != 6 || !strings.Contains(out, "stray-signer") || !strings.Contains(out, "every-reader-restarted") {
			t.Fatalf("the abort's rollout must be refused while the stray v2 signer runs (exit 6): exit %d\n%s", exitCode(err), out)
		}
		if _, active, st := secretState(t, ns); st.Phase != rotation.Reverted || active != "v1" {
			t.Fatalf("the revert stands while the rollout waits: phase %s active %s", st.Phase, active)
		}
		// It signs with v2 for longer than the TTL after the revert: without the check, the abort's rollout would
		// have ended then, and its last tokens would outlive a retire-after counted from that end (the eighth attack:
		// with 10 s here the traffic passed the missing check).
		time.Sleep(75 * time.Second)
		ended := time.Now()
		if err := cluster.Client.CoreV1().Pods(ns).Delete(ctx, stray.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)}); err != nil {
			t.Fatal(err)
		}
		waitGone(t, ns, stray.Name)
		if out, err := h.Run(ctx, "-n", ns, "rotate-key", "abort", "app", "--yes", "--local"); err != nil && exitCode(err) != 3 {
			t.Fatalf("the abort's rollout once the stray is gone: %v\n%s", err, out)
		}
		_, _, st := secretState(t, ns)
		if st.Phase != rotation.Waiting || !st.RetireAfter.After(ended.Add(120*time.Second)) { // its last tokens: + TTL + margin
			t.Fatalf("v2 must wait until the stray's last tokens expire (ended %s): phase %s retire-after %s", ended.UTC().Format(time.RFC3339), st.Phase, st.RetireAfter.Format(time.RFC3339))
		}
		retireAborted(t, h, ns, st.RetireAfter)
		assertNoTokenRejected(t, "abort with a signer no rollout restarts", run.Stop(), "v1", "v2")
	})
}

// retireAborted waits until retireAfter and runs the plugin, which must retire the aborted v2 and leave v1 alone.
func retireAborted(t *testing.T, h *testcluster.Helm, ns string, retireAfter time.Time) {
	t.Helper()
	time.Sleep(time.Until(retireAfter) + time.Second)
	if out, err := h.Run(context.Background(), "-n", ns, "rotate-key", "app", "--local", "--yes"); err != nil {
		t.Fatalf("run after the aborted version's TTL: %v\n%s", err, out)
	}
	if keys, active, _ := secretState(t, ns); fmt.Sprint(keys) != "[key.v1]" || active != "v1" {
		t.Fatalf("after retiring the aborted version: keys %v active %s", keys, active)
	}
}

// TestTrafficControls are the careless operator's rotations the product exists to prevent, done by hand with
// kubectl: each must reject live tokens, which proves the traffic can see a broken rotation.
func TestTrafficControls(t *testing.T) {
	t.Parallel()
	controls := []struct {
		name             string
		signer, verifier string
		// reason is the verifiers' refusal the break must produce (and no other).
		reason string
		do     func(t *testing.T, ns string)
	}{
		{"promote-before-rollout", "env", "env", "unknown-kid", func(t *testing.T, ns string) {
			patchKeyring(t, ns, map[string]any{"key.v2": randomKey(), "active": "v2"})
			restartAndWait(t, ns, "app-jobs-manager") // the signers sign with v2; the verifiers were not rolled yet
			time.Sleep(5 * time.Second)
			restartAndWait(t, ns, "app-requests-proxy")
		}},
		{"retire-before-ttl", "env", "env", "unknown-kid", func(t *testing.T, ns string) {
			patchKeyring(t, ns, map[string]any{"key.v2": randomKey()})
			restartAndWait(t, ns, "app-jobs-manager", "app-requests-proxy")
			patchKeyring(t, ns, map[string]any{"active": "v2"})
			restartAndWait(t, ns, "app-jobs-manager", "app-requests-proxy")
			patchKeyring(t, ns, map[string]any{"key.v1": nil}) // v1-signed tokens live for 60 s more
			restartAndWait(t, ns, "app-requests-proxy")
		}},
		{"new-bytes-same-kid", "env", "env", "bad-signature", func(t *testing.T, ns string) {
			// The troubleshooting advice the runbook must never give: "regenerate the key". The verifiers keep
			// the old bytes of v1 until they restart; the restarted signers sign with the new ones.
			patchKeyring(t, ns, map[string]any{"key.v1": randomKey()})
			restartAndWait(t, ns, "app-jobs-manager")
		}},
		{"skip-second-rollout", "env", "volume", "unknown-kid", func(t *testing.T, ns string) {
			patchKeyring(t, ns, map[string]any{"key.v2": randomKey()})
			restartAndWait(t, ns, "app-jobs-manager", "app-requests-proxy")
			patchKeyring(t, ns, map[string]any{"active": "v2"}) // no restart: the env signers keep signing with v1
			time.Sleep(63 * time.Second)                        // "the TTL has passed since the promotion"
			patchKeyring(t, ns, map[string]any{"key.v1": nil})
			restartAndWait(t, ns, "app-jobs-manager", "app-requests-proxy")
		}},
	}
	for _, c := range controls {
		t.Run(c.name, func(t *testing.T) {
			cost := 80 * time.Second
			if c.name == "skip-second-rollout" {
				cost = 150 * time.Second
			}
			_, ns, run := trafficSubtest(t, cost, 4, "traffic-control", testcluster.TokenApp{SignerKeys: c.signer, VerifierKeys: c.verifier}, false)
			c.do(t, ns)
			rep := run.StopNow() // a control needs no settle: its break is done
			printTraffic("control "+c.name+" (must reject)", rep)
			if rep.RejectedUnexpired == 0 {
				t.Fatalf("control %s rejected no live token: the traffic cannot tell a broken rotation from a good one", c.name)
			}
			// The refusals are the verifiers' own, for the reason the break causes: not dropped connections or
			// missing endpoints, which a rollout could cause without any key change.
			if other := rep.Where(func(p traffic.Presentation) bool {
				return !p.Accepted && rep.Driver.Classify(p) == traffic.Unexpired && p.Reason != c.reason
			}); len(other) != 0 || rep.Unreachable != 0 || rep.IssueErrors != 0 {
				t.Fatalf("control %s: %d live refusals for another reason than %s (first: %+v), %d unanswered, %d failed token requests", c.name, len(other), c.reason, other[:min(1, len(other))], rep.Unreachable, rep.IssueErrors)
			}
			t.Logf("control %s: %d live tokens rejected (%d answers), e.g.\n%s", c.name, rep.RejectedTokens, rep.RejectedUnexpired, rep.Rejections(3))
		})
	}
}

// randomKey is a fresh key as an operator would make one (openssl rand -hex 32).
func randomKey() string { return hex.EncodeToString(make32()) }
