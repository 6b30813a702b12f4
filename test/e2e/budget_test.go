package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/testcluster"
)

// TestAPIBudgets counts, through a counting proxy in front of the API server, the requests of the guard and of
// status (issue 7's budgets; make bench reports the same counts beside the full rotation's). The guard reads the
// keyring Secret exactly once and lists nothing; status uses at most 5 requests plus one per consumer, also while
// a rollout is in progress (when it reports each consumer's rollout).
func TestAPIBudgets(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "budget", nil)
	fixture(t, ns) // keyring app-requests-proxy-admin, consumers signer and verifier (found by discovery)
	counter, err := cluster.StartAPICounter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	live, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var stream strings.Builder
	fmt.Fprintf(&stream, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-requests-proxy-admin\n  annotations:\n    helm.sh/resource-policy: keep\ndata:\n")
	for k, v := range live.Data {
		fmt.Fprintf(&stream, "  %s: %s\n", k, base64.StdEncoding.EncodeToString(v))
	}
	guard := exec.Command(cluster.Binary, "guard", "--release=app", "--namespace="+ns, "--kubeconfig="+counter.Kubeconfig)
	guard.Stdin = strings.NewReader(stream.String())
	if out, err := guard.CombinedOutput(); err != nil {
		t.Fatalf("guard: %v\n%s", err, out)
	}
	if got := requestList(counter.Take()); got != "GET secrets app-requests-proxy-admin" {
		t.Errorf("guard: want exactly one GET of the keyring Secret and no LIST, got: %s", got)
	}

	h := newHelm(t, 4)
	helmRun := func(args ...string) (string, int) {
		cmd := exec.Command(h.Bin, append([]string{"--kubeconfig", counter.Kubeconfig, "-n", ns, "rotate-key"}, args...)...)
		cmd.Env = h.Env
		out, err := cmd.CombinedOutput()
		return string(out), exitCode(err)
	}
	const consumers = 2
	status := func(when string) {
		counter.Take()
		if out, code := helmRun("status", "app"); code != 0 {
			t.Fatalf("status (%s): exit %d\n%s", when, code, out)
		}
		reqs := counter.Take()
		t.Logf("status %s: %d requests: %s", when, len(reqs), requestList(reqs))
		if len(reqs) > 5+consumers {
			t.Errorf("status %s: %d requests, budget 5 + 1 per consumer = %d", when, len(reqs), 5+consumers)
		}
	}
	status("before any rotation")
	// A rotation whose verifier rollout cannot finish in time: it stops in the first rollout, where status reports
	// each consumer's progress.
	holdVerifier(t, ns, 600)
	if out, code := helmRun("run", "app", "--yes", "--timeout", "5s"); code == 0 || code == 3 {
		t.Fatalf("the rotation must stop in the held rollout: exit %d\n%s", code, out)
	}
	out, _ := helmRun("status", "app")
	if !strings.Contains(out, "pods restarted") {
		t.Fatalf("status must report the rollout in progress:\n%s", out)
	}
	status("during a rollout")
}

// requestList is the requests in order, comma-separated ("GET secrets app-keys, LIST pods").
func requestList(reqs []testcluster.APIRequest) string {
	var s []string
	for _, r := range reqs {
		s = append(s, r.String())
	}
	return strings.Join(s, ", ")
}
