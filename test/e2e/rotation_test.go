package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
	"github.com/tracebloc/helm-rotate-key/test/chart"
)

// recorder keeps what the TEST saw through its own watches, with the test's own clock: the ordering proof never
// relies on timestamps the tool writes.
type recorder struct {
	mu      sync.Mutex
	seq     int
	secrets []secretSeen
	pods    map[types.UID]*podSeen
	keys    map[string][]byte // every key version's bytes ever seen, for the leak scan
}

type secretSeen struct {
	seq    int
	keys   []string
	active string
	at     time.Time // when the watch delivered it (the write happened by then)
}

type podSeen struct {
	name, restartedFor string
	added, deleted     int       // sequence numbers; 0 = not seen
	deletedAt          time.Time // when the watch delivered the deletion (the pod ran until then at the latest)
}

func (r *recorder) next() int { r.seq++; return r.seq }

// watchNamespace records every Secret change and pod add/delete in ns until ctx ends.
func watchNamespace(ctx context.Context, t *testing.T, ns, secret string) *recorder {
	t.Helper()
	r := &recorder{pods: map[types.UID]*podSeen{}, keys: map[string][]byte{}}
	sw, err := cluster.Client.CoreV1().Secrets(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + secret})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := cluster.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for ev := range sw.ResultChan() {
			s, ok := ev.Object.(*corev1.Secret)
			if !ok {
				continue
			}
			r.mu.Lock()
			seen := secretSeen{seq: r.next(), active: string(s.Data["active"]), at: time.Now()}
			for k, v := range s.Data {
				if k != "active" {
					seen.keys = append(seen.keys, k)
					r.keys[k+"@"+s.ResourceVersion] = v
				}
			}
			r.secrets = append(r.secrets, seen)
			r.mu.Unlock()
		}
	}()
	go func() {
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || p.Labels["app.kubernetes.io/component"] == "rotate-key" {
				continue // only the consumers' pods; the rotation's own Job pods are not restarted
			}
			r.mu.Lock()
			ps := r.pods[p.UID]
			if ps == nil {
				ps = &podSeen{name: p.Name, restartedFor: p.Annotations["rotate-key.tracebloc.io/restarted-for"]}
				r.pods[p.UID] = ps
			}
			switch ev.Type {
			case watch.Added:
				if ps.added == 0 {
					ps.added = r.next()
				}
			case watch.Deleted:
				ps.deleted, ps.deletedAt = r.next(), time.Now()
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// assertRetireAfterOutlivesOldPods checks retire-after against the test's own watch: every pod that ran when
// `active` moved (secret event promoted: the promotion, or an abort's revert) could sign with the outgoing version
// until it was gone, so that version must stay until the last of them was deleted + the TTL (60 s). A retire-after
// counted from the move fails it whenever the rollout after it outlasts the margin.
func assertRetireAfterOutlivesOldPods(t *testing.T, ns string, rec *recorder, promoted int, outgoing string) {
	t.Helper()
	s, err := cluster.Client.CoreV1().Secrets(ns).Get(context.Background(), "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := rotation.ParseState(s.Annotations)
	if err != nil || st.RetireAfter.IsZero() {
		t.Fatalf("no retire-after after the first run: %v %+v", err, st)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var last time.Time
	lastPod := ""
	for _, p := range rec.pods {
		if p.added < promoted && p.deleted > promoted && p.deletedAt.After(last) {
			last, lastPod = p.deletedAt, p.name
		}
	}
	if lastPod == "" {
		t.Fatal("no pod that ran at the promotion was seen deleted")
	}
	// TTL + the clock-skew margin, both read here from the Secret (the sixth attack on the instrument: a margin
	// the plugin parsed in milliseconds passed every path but the hook path's), less 5 s for the watch's lag.
	ttl, err1 := strconv.Atoi(s.Annotations[rotation.AnnoTTLSeconds])
	margin, err2 := strconv.Atoi(s.Annotations[rotation.AnnoClockSkew])
	if err1 != nil || err2 != nil {
		t.Fatalf("the keyring's TTL and margin annotations: %q %q", s.Annotations[rotation.AnnoTTLSeconds], s.Annotations[rotation.AnnoClockSkew])
	}
	if floor := last.Add(time.Duration(ttl+margin-5) * time.Second); st.RetireAfter.Before(floor) {
		t.Errorf("retire-after %s is before %s: pod %s ran when active moved, could sign with %s until it was deleted at %s, and its tokens live %d s + the %d s margin",
			st.RetireAfter.Format(time.RFC3339), floor.Format(time.RFC3339), lastPod, outgoing, last.Format(time.RFC3339), ttl, margin)
	}
}

// catchUp waits until the pod watch has delivered what the API server shows now: every pod listed was seen added,
// every pod seen and not deleted is still listed. A busy machine delivers watch events late, and the checks that
// follow a command read the recorder the moment the command returns.
func (r *recorder) catchUp(t *testing.T, ns string) {
	t.Helper()
	var missing string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		pods, err := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component!=rotate-key"})
		if err != nil {
			t.Fatal(err)
		}
		listed := map[types.UID]bool{}
		for _, p := range pods.Items {
			listed[p.UID] = true
		}
		r.mu.Lock()
		missing = ""
		for uid := range listed {
			if p := r.pods[uid]; p == nil || p.added == 0 {
				missing = "a listed pod not seen added"
			}
		}
		for uid, p := range r.pods {
			if p.deleted == 0 && !listed[uid] {
				missing = "pod " + p.name + " deleted but not seen deleted"
			}
		}
		r.mu.Unlock()
		if missing == "" {
			return
		}
	}
	t.Fatalf("the pod watch did not catch up with the API server in 30 s: %s", missing)
}

// firstSecret returns the sequence number of the first Secret event matching f (0 if none).
// alivePods are the pods the recorder has seen created and not deleted.
func (r *recorder) alivePods() map[types.UID]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[types.UID]bool{}
	for uid, p := range r.pods {
		if p.deleted == 0 {
			out[uid] = true
		}
	}
	return out
}

// survivors names the pods of set that were still running when event seq happened.
func (r *recorder) survivors(set map[types.UID]bool, seq int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for uid, p := range r.pods {
		if set[uid] && (p.deleted == 0 || p.deleted > seq) {
			out = append(out, p.name)
		}
	}
	sort.Strings(out)
	return out
}

func (r *recorder) firstSecret(f func(secretSeen) bool) int {
	s, _ := r.firstSecretSeen(f)
	return s.seq
}

// firstSecretSeen is the first keyring state f accepts, and whether there was one.
func (r *recorder) firstSecretSeen(f func(secretSeen) bool) (secretSeen, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.secrets {
		if f(s) {
			return s, true
		}
	}
	return secretSeen{}, false
}

func has(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func exitCode(err error) int { return chart.ExitCode(err) }

func statusJSON(t *testing.T, h *testcluster.Helm, ns string) map[string]any {
	t.Helper()
	out, _, err := h.RunSplit(context.Background(), "-n", ns, "rotate-key", "status", "app", "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFullRotation runs the whole rotation through `helm rotate-key` on Helm 3 and Helm 4, on a release whose
// Secret is read by two Deployments (jobs-manager by env, requests-proxy by volume), with a real 60 s TTL, and
// proves the ordering from the test's own watch events — both ways the plugin rotates: locally (--local) and
// through the chart's post-upgrade hook Jobs, whose pods the runner node executes for real. On the hook path the
// retirement is done by a plain `helm upgrade --reuse-values` after the TTL, as any later upgrade would.
func TestFullRotation(t *testing.T) {
	t.Parallel() // a parent: its subtests share the suite's slots with every other long test, not a phase of their own
	for _, major := range helmMajors() {
		for _, path := range []string{"local", "hooks"} {
			t.Run(fmt.Sprintf("helm%d-%s", major, path), func(t *testing.T) {
				cost := 400 * time.Second
				if major == 4 && path == "local" {
					cost = 620 * time.Second // one slow signer (minReadySeconds 70)
				}
				parallel(t, cost)
				fullRotation(t, major, path == "hooks")
			})
		}
	}
}

func fullRotation(t *testing.T, major int, hooks bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newHelm(t, major)
	ns := namespace(t, fmt.Sprintf("rotate-h%d", major), nil)
	// Real token traffic throughout, with each key delivery on each side across the four runs.
	signerKeys, verifierKeys := "env", "volume"
	if major == 4 && hooks {
		signerKeys, verifierKeys = "volume", "env"
	}
	if major == 4 && !hooks {
		// The slow signer below must keep signing with v1 until it is gone: a volume-fed one switches to v2 at its
		// first refresh after the promotion, often within seconds (the fourth attack on the instrument).
		signerKeys, verifierKeys = "env", "env"
	}
	// On the hook path the signers' clock runs 45 s ahead of the verifiers': within the 60 s clock-skew margin that
	// retire-after adds, so still no token may be rejected.
	ahead := time.Duration(0)
	if hooks {
		ahead = 45 * time.Second
	}
	app := testcluster.TokenApp{SignerKeys: signerKeys, VerifierKeys: verifierKeys, SignerClockAhead: ahead}
	pods := 4 // 2 signers, 2 verifiers (the chart's default)
	if major == 4 && !hooks {
		// One signer whose rollouts take longer than retire-after's 60 s margin: the last old signer then signs
		// with v1 for over a minute after the promotion, so a retire-after counted from the promotion instead of
		// the end of that rollout rejects its tokens (the third attack on the instrument).
		app.SignerReplicas, app.SignerMinReady = 1, 70*time.Second
		pods = 3
	}
	install := append([]string{"--set", "tokenTtlSeconds=60", "--wait", "--timeout", "4m"}, app.Values()...)
	if out, err := installExample(ctx, h, ns, "app", install...); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	signer, verifier := exampleApps("app")
	traffic := startTraffic(ctx, t, ns, "app-requests-proxy-admin", signer, verifier)
	runArgs := []string{"-n", ns, "rotate-key", "app", "--yes"}
	if !hooks {
		runArgs = append(runArgs, "--local")
	}
	rec := watchNamespace(ctx, t, ns, "app-requests-proxy-admin")
	time.Sleep(500 * time.Millisecond) // the watches' initial ADDED events
	preAdd := rec.alivePods()
	if len(preAdd) != pods {
		t.Fatalf("want %d pods before the rotation, saw %d", pods, len(preAdd))
	}
	var outputs []string

	out, err := h.Run(ctx, runArgs...)
	outputs = append(outputs, out)
	if exitCode(err) != 3 || !strings.Contains(out, "Finish after") {
		t.Fatalf("first run: want exit 3 (waiting for the TTL), got %v\n%s", err, out)
	}
	rec.catchUp(t, ns)
	added := rec.firstSecret(func(s secretSeen) bool { return has(s.keys, "key.v2") })
	promoted := rec.firstSecret(func(s secretSeen) bool { return s.active == "v2" })
	if added == 0 || promoted == 0 || promoted < added {
		t.Fatalf("secret events: added at %d, promoted at %d", added, promoted)
	}
	if left := rec.survivors(preAdd, promoted); len(left) != 0 {
		t.Errorf("pods from before the add were still running when v2 was promoted: %v", left)
	}
	rec.mu.Lock()
	var alive []types.UID
	for uid, p := range rec.pods {
		if p.added < promoted && p.added > added && (p.deleted == 0 || p.deleted > promoted) {
			alive = append(alive, uid)
		}
	}
	for _, uid := range alive {
		if p := rec.pods[uid]; p.deleted == 0 {
			t.Errorf("pod %s (started before the promotion) was not restarted after it", p.name)
		}
	}
	second := 0
	for _, p := range rec.pods {
		if p.added > promoted && strings.HasSuffix(p.restartedFor, "/after-promote") && p.deleted == 0 {
			second++
		}
	}
	rec.mu.Unlock()
	if second != pods || len(alive) != pods {
		t.Fatalf("second rollout: %d pods restarted after the promotion, %d pods of the first rollout replaced; want %d and %d", second, len(alive), pods, pods)
	}
	assertRetireAfterOutlivesOldPods(t, ns, rec, promoted, "v1")

	// Before retire-after: refused (still waiting), the Secret keeps v1.
	out, err = h.Run(ctx, runArgs...)
	outputs = append(outputs, out)
	if exitCode(err) != 3 {
		t.Fatalf("second run before the TTL: want exit 3, got %v\n%s", err, out)
	}
	st := statusJSON(t, h, ns)
	if st["phase"] != "Waiting" || fmt.Sprint(st["versions"]) != "[key.v1 key.v2]" || st["active"] != "v2" {
		t.Fatalf("status while waiting: %v", st)
	}
	retireAfter, err := time.Parse(time.RFC3339, st["retireAfter"].(string))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(retireAfter) + time.Second)

	if hooks {
		out, err = h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values", "--description", "an unrelated upgrade")
		outputs = append(outputs, out)
		if err != nil {
			t.Fatalf("the first upgrade after retire-after must retire v1 through the hook Jobs: %v\n%s", err, out)
		}
	} else {
		out, err = h.Run(ctx, runArgs...)
		outputs = append(outputs, out)
		if err != nil || !strings.Contains(out, "rotation finished") {
			t.Fatalf("run after retire-after: %v\n%s", err, out)
		}
	}
	st = statusJSON(t, h, ns)
	if st["phase"] != "Idle" || fmt.Sprint(st["versions"]) != "[key.v2]" || st["active"] != "v2" || st["nextRotationDue"] == nil {
		t.Fatalf("status after the rotation: %v", st)
	}
	rec.catchUp(t, ns)
	retired := rec.firstSecret(func(s secretSeen) bool { return !has(s.keys, "key.v1") })
	rec.mu.Lock()
	third := 0
	for _, p := range rec.pods {
		if p.added > retired && strings.HasSuffix(p.restartedFor, "/after-retire") && p.deleted == 0 {
			third++
		}
	}
	rec.mu.Unlock()
	if retired == 0 || third != pods {
		t.Fatalf("third rollout after the retirement (at %d): %d pods", retired, third)
	}
	statusOut, _ := h.Run(ctx, "-n", ns, "rotate-key", "status", "app")
	outputs = append(outputs, statusOut, fmt.Sprint(st))
	events, err := cluster.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=app-requests-proxy-admin"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range events.Items {
		reasons[e.Reason]++
		outputs = append(outputs, e.Message)
	}
	if reasons["KeyAdded"] != 1 || reasons["KeyPromoted"] != 1 || reasons["KeyRetired"] != 1 || reasons["RotationFinished"] != 1 {
		t.Fatalf("events: %v", reasons)
	}
	if hooks {
		history, err := h.Run(ctx, "-n", ns, "history", "app", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var revisions []struct {
			Revision    int    `json:"revision"`
			Description string `json:"description"`
		}
		if err := json.Unmarshal([]byte(history), &revisions); err != nil {
			t.Fatalf("%v\n%s", err, history)
		}
		var descriptions []string
		for _, r := range revisions {
			descriptions = append(descriptions, fmt.Sprintf("%d: %s", r.Revision, r.Description))
		}
		if len(revisions) != 3 || !strings.Contains(revisions[1].Description, "rotate-key: rotation ") || !strings.Contains(revisions[1].Description, "add v2, roll out, promote") {
			t.Fatalf("helm history must show the rotation upgrade: %q", descriptions)
		}
		jobLogs := hookJobLogs(t, ns)
		if !strings.Contains(jobLogs, "hook add done") || !strings.Contains(jobLogs, "hook retire done; phase Idle") {
			t.Fatalf("hook Job logs:\n%s", jobLogs)
		}
		outputs = append(outputs, history, jobLogs)
		t.Logf("helm history: %q", descriptions)
	}
	assertNoKeyMaterial(t, rec, outputs)
	assertNoTokenRejected(t, fmt.Sprintf("helm%d %s signer:%s verifier:%s signer clock +%s", major, map[bool]string{false: "local", true: "hooks"}[hooks], signerKeys, verifierKeys, ahead), traffic.Stop(), "v1", "v2")
	t.Logf("helm%d (hooks %v): rotation v1 -> v2 done; secret events add@%d promote@%d retire@%d; %d pods restarted per rollout; events %v", major, hooks, added, promoted, retired, second, reasons)
}

// assertNoKeyMaterial scans texts for every key the test saw, raw, base64 and hex.
func assertNoKeyMaterial(t *testing.T, rec *recorder, texts []string) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	all := strings.Join(texts, "\n")
	for name, k := range rec.keys {
		for _, form := range []string{string(k), base64.StdEncoding.EncodeToString(k), hex.EncodeToString(k)} {
			if len(form) >= 16 && strings.Contains(all, form) {
				t.Fatalf("key %s appears in the output", strings.Split(name, "@")[0])
			}
		}
	}
	if len(rec.keys) < 2 {
		t.Fatalf("the scan saw %d keys; want at least 2", len(rec.keys))
	}
}
