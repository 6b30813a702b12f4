package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// apiBudgets counts API requests through a counting proxy in front of the API server (testcluster.APICounter):
// the guard's, status's, and a full rotation's against the manual runbook's kubectl commands for the same
// rotation, which are also counted from their own -v=6 log (the two counts must agree). Counts are exact, not
// timings: every condition here is a must-hold.
func apiBudgets(ctx context.Context, env *clusterEnv, r *report) error {
	dir, err := os.MkdirTemp(env.dir, "budget-")
	if err != nil {
		return err
	}
	counter, err := env.cluster.StartAPICounter(dir)
	if err != nil {
		return err
	}
	defer counter.Close()
	s := r.section("API requests")
	s.para("Every request goes through a counting reverse proxy in front of the API server (`internal/testcluster/apicount.go`); the commands below run with `KUBECONFIG` pointing at it. kubectl's requests are also counted from its own `-v=6` log, and the two counts must agree. A rotation's *rollout polling* is what it does while it waits for a rollout: the reads of a workload after its restart patch, and the pod lists.")
	s.table("what", "requests", "polling (excluded)", "counted", "budget", "the requests")

	// The guard: one GET of the keyring Secret, no LIST.
	ns, err := env.namespace(ctx, "budget-guard")
	if err != nil {
		return err
	}
	if err := createStreamKeyring(ctx, env, ns); err != nil {
		return err
	}
	counter.Take()
	guard := exec.CommandContext(ctx, env.binary, "guard", "--release=app", "--namespace="+ns, "--kubeconfig="+counter.Kubeconfig)
	guard.Stdin = strings.NewReader(string(stream(1000)))
	if out, err := guard.CombinedOutput(); err != nil {
		return fmt.Errorf("guard: %w\n%s", err, tailString(string(out), 400))
	}
	reqs := counter.Take()
	s.command("bin/rotate-key guard --release=app --namespace=$NS < stream-1000.yaml > /dev/null")
	s.row("`rotate-key guard` (1,000 documents)", fmt.Sprint(len(reqs)), "0", fmt.Sprint(len(reqs)), "1 GET of the Secret, 0 LIST", summarize(reqs))
	r.must(len(reqs) == 1 && reqs[0].Verb == "get" && reqs[0].Resource == "secrets" && reqs[0].Name == keyringName,
		"the guard reads the keyring Secret exactly once and lists nothing (%d requests: %s)", len(reqs), summarize(reqs))

	// status and a full rotation with helm rotate-key (the local path: the rotation runs in this process).
	h := env.helms[1]
	chart := filepath.Join(env.cluster.Root, "charts", "example-app")
	const consumers = 2 // the example's jobs-manager and requests-proxy
	toolNS, err := env.namespace(ctx, "budget-tool")
	if err != nil {
		return err
	}
	if _, out, err := helmRun(ctx, h, "-n", toolNS, "install", "app", chart, "--set", "tokenTtlSeconds=60", "--set", "rotate-key.rotation.hooks=false", "--set", "rotate-key.clockSkewSeconds=60", "--wait", "--timeout", "2m"); err != nil {
		return fmt.Errorf("%w\n%s", err, tailString(out, 600))
	}
	plugin := func(args ...string) (string, int, error) {
		cmd := exec.CommandContext(ctx, h.Bin, append([]string{"--kubeconfig", counter.Kubeconfig, "-n", toolNS, "rotate-key"}, args...)...)
		cmd.Env = h.Env
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code, err = ee.ExitCode(), nil
		}
		return string(out), code, err
	}
	counter.Take()
	if out, code, err := plugin("status", "app"); err != nil || code != 0 {
		return fmt.Errorf("status: exit %d %v\n%s", code, err, tailString(out, 400))
	}
	reqs = counter.Take()
	s.command("helm -n $NS rotate-key status app")
	s.row("`helm rotate-key status` (2 consumers)", fmt.Sprint(len(reqs)), "0", fmt.Sprint(len(reqs)), fmt.Sprintf("≤ 5 + 1 per consumer = %d", 5+consumers), summarize(reqs))
	r.must(len(reqs) <= 5+consumers, "status uses at most 5 requests plus one per consumer (%d for %d consumers)", len(reqs), consumers)

	var tool []testcluster.APIRequest
	run := func(label string, want int) error {
		counter.Take()
		out, code, err := plugin("app", "--yes", "--local")
		if err != nil || code != want {
			return fmt.Errorf("helm rotate-key app --yes --local (%s): exit %d, want %d (%v)\n%s", label, code, want, err, tailString(out, 600))
		}
		tool = append(tool, counter.Take()...)
		return nil
	}
	if err := run("add, roll out, promote, roll out", 3); err != nil {
		return err
	}
	retireAfter, err := retireAfterOf(ctx, h, toolNS)
	if err != nil {
		return err
	}
	env.logf("budget: waiting %s for the TTL", time.Until(retireAfter).Round(time.Second))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(retireAfter) + time.Second):
	}
	if err := run("retire, roll out", 0); err != nil {
		return err
	}
	toolCounted, toolPolling := withoutPolling(tool)
	s.command("helm -n $NS rotate-key app --yes --local    # exit 3: waiting for the TTL (60 s)")
	s.command("helm -n $NS rotate-key app --yes --local    # after the TTL: retire")
	s.row("full rotation, `helm rotate-key` (2 runs)", fmt.Sprint(len(tool)), fmt.Sprint(toolPolling), fmt.Sprint(len(toolCounted)), "≤ half of the manual rotation's", summarize(toolCounted))

	// The same rotation by hand: the runbook's preparation and Part B, kubectl with -v=6.
	manual, logged, err := manualRotation(ctx, env, counter, dir)
	if err != nil {
		return err
	}
	manualCounted, manualPolling := withoutPolling(manual)
	s.command("# docs/RUNBOOKS/requests-proxy-key-rotation.md: the blocks before Part A, then Part B, with kubectl -v=6")
	s.row("full rotation by hand (runbook: preparation + Part B, kubectl)", fmt.Sprint(len(manual)), fmt.Sprint(manualPolling), fmt.Sprint(len(manual))+" (all: the budget counts every request of the manual commands)", "—", summarize(manual))
	s.note("kubectl's -v=6 log of the manual rotation shows %d responses; the proxy counted %d kubectl requests.", logged, len(manual))
	s.note("Without its own polling (`kubectl rollout status`, the wait for terminating pods) the manual rotation issues %d requests.", len(manualCounted))
	r.must(logged == len(manual), "kubectl -v=6 and the counting proxy agree on the manual rotation (%d and %d requests)", logged, len(manual))
	r.must(2*len(toolCounted) <= len(manual), "a full rotation's requests without rollout polling (%d) are at most half of the manual runbook's kubectl requests (%d)", len(toolCounted), len(manual))
	return nil
}

// retireAfterOf reads when the rotation in ns may retire the old key, from status.
func retireAfterOf(ctx context.Context, h *testcluster.Helm, ns string) (time.Time, error) {
	out, _, err := h.RunSplit(ctx, "-n", ns, "rotate-key", "status", "app", "-o", "json")
	if err != nil {
		return time.Time{}, err
	}
	var st struct {
		RetireAfter *time.Time `json:"retireAfter"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.RetireAfter == nil {
		return time.Time{}, fmt.Errorf("status after the first run has no retireAfter (%v)", err)
	}
	return *st.RetireAfter, nil
}

// v6Response matches one request in kubectl's log: at -v=6 `"Response" verb="GET" url=…`, at -v=8 (the runbook's
// clock read) `"Response" status="200 OK" headers=<`.
var v6Response = regexp.MustCompile(`"Response" (verb="[A-Z]+" url="|status=")`)

// manualRotation follows the runbook's preparation and Part B in an operator's shell whose kubectl logs at -v=6,
// through the counter, on a release of its own. It returns kubectl's requests as the proxy saw them and the
// number of responses in kubectl's own log.
func manualRotation(ctx context.Context, env *clusterEnv, counter *testcluster.APICounter, dir string) ([]testcluster.APIRequest, int, error) {
	runbook, err := testcluster.LoadRunbook(env.cluster.Root)
	if err != nil {
		return nil, 0, err
	}
	ns, err := env.namespace(ctx, "budget-manual")
	if err != nil {
		return nil, 0, err
	}
	const release = "requests-proxy"
	h := env.helms[0]
	chart := filepath.Join(env.cluster.Root, "charts", "example-app")
	if _, out, err := helmRun(ctx, h, "-n", ns, "install", release, chart, "--set", "tokenTtlSeconds=60", "--set", "rotate-key.rotation.hooks=false", "--set", "rotate-key.clockSkewSeconds=60", "--wait", "--timeout", "2m"); err != nil {
		return nil, 0, fmt.Errorf("%w\n%s", err, tailString(out, 600))
	}
	log := filepath.Join(dir, "kubectl-v6.log")
	wrapper := filepath.Join(dir, "kubectl")
	// The runbook reads the API server's clock from kubectl -v=8's response headers on stderr (rk_clock): that
	// call's stderr goes to the log and to the block; every other call's log goes to the file only.
	script := fmt.Sprintf("#!/bin/bash\ncase \" $* \" in *\" -v=8 \"*) exec %[1]q \"$@\" 2> >(tee -a %[2]q >&2) ;; esac\nexec %[1]q -v=6 \"$@\" 2>>%[2]q\n", env.cluster.Tools.Kubectl, log)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return nil, 0, err
	}
	shell, err := testcluster.NewOperatorShell(filepath.Join(dir, "operator"), h, wrapper, counter.Kubeconfig, ns, release)
	if err != nil {
		return nil, 0, err
	}
	shell.PasteFirst(runbook.EveryShell)
	counter.Take()
	// What an operator without the plugin pastes for one rotation: B1, then "Where am I?" and the block it names
	// after every block, each in a new shell, until the rotation is back in Idle.
	if _, err := shell.Follow(runbook, "B1"); err != nil {
		return nil, 0, fmt.Errorf("%v", tailString(err.Error(), 1200))
	}
	var kubectl []testcluster.APIRequest
	for _, q := range counter.Take() {
		if strings.HasPrefix(q.UserAgent, "kubectl") {
			kubectl = append(kubectl, q)
		}
	}
	data, err := os.ReadFile(log)
	if err != nil {
		return nil, 0, err
	}
	return kubectl, len(v6Response.FindAll(data, -1)), nil
}

// withoutPolling drops what a client does while it waits for a rollout — watches, pod lists, and the reads of a
// workload after its restart patch — and returns the rest and how many were dropped.
func withoutPolling(reqs []testcluster.APIRequest) ([]testcluster.APIRequest, int) {
	restarted := map[string]bool{}
	var kept []testcluster.APIRequest
	for _, q := range reqs {
		workload := q.Group == "apps" && q.Name != ""
		switch {
		case q.Verb == "watch", q.Resource == "pods" && q.Verb == "list":
		case workload && q.Verb == "get" && restarted[q.Resource+"/"+q.Name]:
		default:
			if workload && q.Verb == "patch" {
				restarted[q.Resource+"/"+q.Name] = true
			}
			kept = append(kept, q)
		}
	}
	return kept, len(reqs) - len(kept)
}

// summarize counts the requests by kind: "UPDATE secrets ×6, CREATE events ×6, …", most frequent first.
func summarize(reqs []testcluster.APIRequest) string {
	counts := map[string]int{}
	for _, q := range reqs {
		counts[strings.ToUpper(q.Verb)+" "+q.Resource]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}
