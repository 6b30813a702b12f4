package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/tracebloc/helm-rotate-key/internal/engine"
	"github.com/tracebloc/helm-rotate-key/internal/kube"
	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// rotationTTL is the example release's token TTL: the chart's minimum, so the bench waits one minute for it.
const rotationTTL = 60

// rolloutSpan is one consumer rollout as the bench saw it.
type rolloutSpan struct {
	deployment, value string
	start, end        time.Time
}

// rolloutRecorder measures the consumers' rollouts independently of rotate-key: client-go informers in the bench
// process, the bench's own clock. A rollout starts when the bench sees a Deployment's pod template take a new
// restart value (the generation bump rotate-key's patch causes) and ends when the bench sees it complete: the
// controller observed the new generation, updated and available replicas both reach spec.replicas, and no pod
// with the old template is left — terminating pods included, since they still hold the old key (this last
// condition is the physical form of `kubectl rollout status`'s "old replicas pending termination", without
// waiting for the controller to write status.replicas). Both ends are seen through the same watch, so its
// latency shifts both alike; a rollout the bench sees end after the command exited is clipped at the exit (in
// the command's favour).
type rolloutRecorder struct {
	mu    sync.Mutex
	deps  cache.Store
	pods  cache.Store
	value map[string]string // the last restart value seen, by Deployment
	open  map[string]*rolloutSpan
	spans []rolloutSpan
}

// watchRollouts starts the informers of ns and returns once their caches are filled; they stop with ctx.
func watchRollouts(ctx context.Context, env *clusterEnv, ns string) (*rolloutRecorder, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(env.cluster.Client, 0, informers.WithNamespace(ns))
	depInformer := factory.Apps().V1().Deployments().Informer()
	podInformer := factory.Core().V1().Pods().Informer()
	rr := &rolloutRecorder{deps: depInformer.GetStore(), pods: podInformer.GetStore(), value: map[string]string{}, open: map[string]*rolloutSpan{}}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { rr.check(time.Now()) },
		UpdateFunc: func(any, any) { rr.check(time.Now()) },
		DeleteFunc: func(any) { rr.check(time.Now()) },
	}
	for _, inf := range []cache.SharedIndexInformer{depInformer, podInformer} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, err
		}
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), depInformer.HasSynced, podInformer.HasSynced) {
		return nil, fmt.Errorf("the informers of %s did not sync", ns)
	}
	rr.check(time.Now())
	return rr, nil
}

// check updates the rollouts from the informers' caches; every event of either informer calls it.
func (rr *rolloutRecorder) check(now time.Time) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for _, obj := range rr.deps.List() {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		v := d.Spec.Template.Annotations[kube.RestartAnnotation]
		prev, seen := rr.value[d.Name]
		rr.value[d.Name] = v
		if !seen {
			continue
		}
		if v != prev {
			rr.open[d.Name] = &rolloutSpan{deployment: d.Name, value: v, start: now}
		}
		if o := rr.open[d.Name]; o != nil && complete(d) && !rr.oldPods(d, v) {
			o.end = now
			rr.spans = append(rr.spans, *o)
			delete(rr.open, d.Name)
		}
	}
}

// complete reports whether the controller saw the latest template and every replica is updated and available
// (old pods are checked apart, from the pods themselves). "At least": status.availableReplicas may still count a
// surge pod for a moment after the old pods are gone; the rollout is over all the same.
func complete(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas >= want && st.AvailableReplicas >= want
}

// oldPods reports whether a pod of d with another restart value than v still exists (terminating ones included).
func (rr *rolloutRecorder) oldPods(d *appsv1.Deployment, v string) bool {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return true
	}
	for _, obj := range rr.pods.List() {
		if p, ok := obj.(*corev1.Pod); ok && sel.Matches(labels.Set(p.Labels)) && p.Annotations[kube.RestartAnnotation] != v {
			return true
		}
	}
	return false
}

// within returns the finished rollouts that started in [from, to], and how many rollouts are still open.
func (rr *rolloutRecorder) within(from, to time.Time) ([]rolloutSpan, int) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	var out []rolloutSpan
	for _, s := range rr.spans {
		if !s.start.Before(from) && !s.start.After(to) {
			out = append(out, s)
		}
	}
	return out, len(rr.open)
}

// busy merges the spans, clipped to [from, to], into the intervals during which at least one rollout ran:
// consumers roll out concurrently, so summing their spans would count the same wall time twice.
func busy(spans []rolloutSpan, from, to time.Time) [][2]time.Time {
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b rolloutSpan) int { return a.start.Compare(b.start) })
	var merged [][2]time.Time
	for _, s := range spans {
		start, end := maxTime(s.start, from), minTime(s.end, to)
		if !end.After(start) {
			continue
		}
		if n := len(merged); n > 0 && !start.After(merged[n-1][1]) {
			merged[n-1][1] = maxTime(merged[n-1][1], end)
			continue
		}
		merged = append(merged, [2]time.Time{start, end})
	}
	return merged
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// invocation is one timed `helm rotate-key` run and the rollouts the bench saw during it. Its overhead
// (wall − rollout) splits into the time before the first rollout started (start-up, reading the release and the
// Secret, the first write), between rollouts (the steps between them, e.g. the promotion) and after the last one
// ended (noticing the end: rotate-key polls; recording the phase; exiting).
type invocation struct {
	label                  string
	wall                   time.Duration
	rollout                time.Duration // union of the rollout spans within the run
	before, between, after time.Duration
	spans                  []rolloutSpan
}

// rotationRun is one release's full rotation on one Helm.
type rotationRun struct {
	h           *testcluster.Helm
	ns          string
	rec         *rolloutRecorder
	runs        []invocation
	retireAfter time.Time
	outputs     []string
	keys        [][]byte // every key version seen in the live Secret; in memory only, for the leak scan
}

// rotationOverhead measures what a full local rotation (`helm rotate-key app --yes --local`, twice: before and
// after the TTL) costs beyond the consumers' rollouts it waits for. Helm 3 and Helm 4 each rotate a release of
// charts/example-app whose consumers run on kwok nodes; the first runs of both happen before the TTL wait, which
// both then share (the wait is not inside any command). Timed runs never overlap.
func rotationOverhead(ctx context.Context, env *clusterEnv, r *report) error {
	var runs []*rotationRun
	for _, h := range env.helms {
		rr, err := startRotation(ctx, env, h)
		if err != nil {
			return err
		}
		runs = append(runs, rr)
	}
	for _, rr := range runs {
		if err := finishRotation(ctx, env, rr); err != nil {
			return err
		}
	}
	s := r.section("Rotation overhead (local path)")
	s.para("A full rotation of a charts/example-app release (tokenTtlSeconds=%d; two consumer Deployments of 2 replicas on kwok nodes), through the plugin's local path. The first run adds v2, rolls both consumers out, promotes v2, rolls them out again and stops (exit 3) until the TTL passed; the second, after the TTL, retires v1 and rolls them out a third time. The TTL wait is outside both commands. `helm rotate-key` prints one line per step and per consumer change, no timings; so the bench times the rollouts itself: informers on the namespace's Deployments and pods, from the moment it sees a Deployment's pod template change (generation bump) to the moment it sees the Deployment complete (observedGeneration ≥ generation, updated and available replicas ≥ spec.replicas) with no pod of the old template left, terminating ones included (they still hold the old key). Rollouts = the time at least one consumer was rolling out; overhead = command wall time − rollouts, split by where it falls.", rotationTTL)
	s.command("helm install app charts/example-app -n $NS --set tokenTtlSeconds=%d --wait --timeout 2m \\", rotationTTL)
	s.command("  %s    # the chart's rotate-key Jobs on the runner node, as in the e2e tests", testcluster.ShellWords(testcluster.RunnerValues()))
	s.command("time helm rotate-key app --yes --local -n $NS    # exit 3: waiting for the TTL")
	s.command("sleep %d; time helm rotate-key app --yes --local -n $NS    # after retireAfter (helm rotate-key status app -o json)", rotationTTL)
	s.table("Helm", "run", "command wall", "rollouts (bench's watch)", "overhead", "… before the first rollout", "… between rollouts", "… after the last")
	s.note("Where the overhead goes: before the first rollout of each run, about 0.2 s — Helm starting the plugin, its start-up, and its first requests (release record, Secret, permissions review, the step's write). Between and after the rollouts, the latency of the rollout checks (100 ms apart at first, at most %s apart for a rollout's first %s, so a finished rollout is seen up to that late) plus one state write and one Event per transition. If this target slips (a slower machine, a busier API server), the next step is to wait with a watch on each consumer and its pods, as `kubectl rollout status` does, instead of checking: that removes the detection latency, and needs `watch` on the named Deployments in the chart's Role.", dur(engine.QuickPoll), engine.QuickFor)
	details := r.section("Rotation overhead: each rollout")
	details.para("Each consumer rollout the bench saw (the restart value's phase), start to end as defined above.")
	details.table("Helm", "run", "rollout", "Deployment", "duration")
	for _, rr := range runs {
		var wall, roll, before, between, after time.Duration
		for i, inv := range rr.runs {
			s.row(fmt.Sprint(rr.h.Major), inv.label, dur(inv.wall), dur(inv.rollout), dur(inv.wall-inv.rollout), dur(inv.before), dur(inv.between), dur(inv.after))
			wall, roll = wall+inv.wall, roll+inv.rollout
			before, between, after = before+inv.before, between+inv.between, after+inv.after
			for _, sp := range inv.spans {
				_, phase, _ := strings.Cut(sp.value, "/")
				details.row(fmt.Sprint(rr.h.Major), fmt.Sprint(i+1), phase, sp.deployment, dur(sp.end.Sub(sp.start)))
			}
		}
		s.row(fmt.Sprint(rr.h.Major), "**full rotation**", dur(wall), dur(roll), dur(wall-roll), dur(before), dur(between), dur(after))
		r.target(fmt.Sprintf("Helm %d: rotation overhead (commands − rollouts, TTL wait excluded) < 1 s", rr.h.Major), dur(wall-roll), wall-roll < time.Second)
		r.must(len(rr.keys) >= 2 && !leaks(rr.keys, rr.outputs), "Helm %d: no key material in the rotation commands' output (%d key versions scanned, raw, base64 and hex)", rr.h.Major, len(rr.keys))
	}
	return nil
}

// startRotation installs the example release with h, starts the rollout watch and makes the first run.
func startRotation(ctx context.Context, env *clusterEnv, h *testcluster.Helm) (*rotationRun, error) {
	ns, err := env.namespace(ctx, fmt.Sprintf("rotate-h%d", h.Major))
	if err != nil {
		return nil, err
	}
	chart := filepath.Join(env.cluster.Root, "charts", "example-app")
	install := append(append([]string{"-n", ns, "install", "app", chart, "--set", fmt.Sprintf("tokenTtlSeconds=%d", rotationTTL), "--wait", "--timeout", "2m"}, testcluster.RunnerValues()...), testcluster.ShortMarginValues()...)
	if _, out, err := helmRun(ctx, h, install...); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, tailString(out, 600))
	}
	rec, err := watchRollouts(ctx, env, ns)
	if err != nil {
		return nil, err
	}
	rr := &rotationRun{h: h, ns: ns, rec: rec}
	if err := rr.invoke(ctx, env, "1: add, roll out, promote, roll out", 3, "Finish after"); err != nil {
		return nil, err
	}
	if err := rr.collectKeys(ctx, env); err != nil {
		return nil, err
	}
	if rr.retireAfter, err = retireAfterOf(ctx, h, ns); err != nil {
		return nil, fmt.Errorf("helm%d: %w", h.Major, err)
	}
	return rr, nil
}

// finishRotation waits for the TTL (outside any timed command), then makes the second run, which retires v1.
func finishRotation(ctx context.Context, env *clusterEnv, rr *rotationRun) error {
	wait := time.Until(rr.retireAfter) + time.Second
	env.logf("helm%d: waiting %s for the TTL", rr.h.Major, wait.Round(time.Second))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
	}
	return rr.invoke(ctx, env, "2: after the TTL: retire, roll out", 0, "rotation finished")
}

// invoke times one `helm rotate-key app --yes --local`, checks its exit code and output, and takes the rollouts
// the bench saw during it.
func (rr *rotationRun) invoke(ctx context.Context, env *clusterEnv, label string, wantCode int, wantOut string) error {
	began := time.Now()
	took, out, err := helmRun(ctx, rr.h, "-n", rr.ns, "rotate-key", "app", "--yes", "--local")
	ended := began.Add(took)
	rr.outputs = append(rr.outputs, out)
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		return err
	}
	if code != wantCode || !strings.Contains(out, wantOut) {
		return fmt.Errorf("helm%d rotate-key app --yes --local, run %q: exit %d (want %d), output without %q:\n%s", rr.h.Major, label, code, wantCode, wantOut, tailString(out, 600))
	}
	// rotate-key returned after it saw every rollout finish; give the bench's watch a moment to deliver the same.
	var spans []rolloutSpan
	open := 0
	for deadline := time.Now().Add(10 * time.Second); ; {
		spans, open = rr.rec.within(began, ended)
		if open == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	perRun := 2 * 2 // two consumers, two rollouts
	if wantCode == 0 {
		perRun = 2
	}
	if open != 0 || len(spans) != perRun {
		return fmt.Errorf("helm%d run %q: the bench saw %d finished rollouts (want %d) and %d unfinished", rr.h.Major, label, len(spans), perRun, open)
	}
	inv := invocation{label: label, wall: took, spans: spans}
	merged := busy(spans, began, ended)
	for _, m := range merged {
		inv.rollout += m[1].Sub(m[0])
	}
	if len(merged) > 0 {
		inv.before, inv.after = merged[0][0].Sub(began), ended.Sub(merged[len(merged)-1][1])
		inv.between = took - inv.rollout - inv.before - inv.after
	}
	rr.runs = append(rr.runs, inv)
	env.logf("helm%d rotation run %q: %s, rollouts %s", rr.h.Major, label, took.Round(time.Millisecond), inv.rollout.Round(time.Millisecond))
	for _, sp := range spans {
		env.logf("  %s %s: +%s → +%s", sp.deployment, sp.value, sp.start.Sub(began).Round(time.Millisecond), sp.end.Sub(began).Round(time.Millisecond))
	}
	return nil
}

// collectKeys keeps every key version of the live Secret, in memory, for the scan of the commands' output.
func (rr *rotationRun) collectKeys(ctx context.Context, env *clusterEnv) error {
	s, err := env.cluster.Client.CoreV1().Secrets(rr.ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for k, v := range s.Data {
		if k != "active" {
			rr.keys = append(rr.keys, v)
		}
	}
	return nil
}

// leaks reports whether any key appears in any text, raw, base64 or hex.
func leaks(keys [][]byte, texts []string) bool {
	all := strings.Join(texts, "\n")
	for _, k := range keys {
		for _, form := range []string{string(k), base64.StdEncoding.EncodeToString(k), hex.EncodeToString(k)} {
			if len(form) >= 16 && strings.Contains(all, form) {
				return true
			}
		}
	}
	return false
}
