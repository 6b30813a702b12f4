package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// TestKilledHookRotationResumes (issue 15.8): the operator's machine dies during a hook-path rotation — the plugin
// and its helm killed with SIGKILL at a random moment while the hook Jobs work. Helm leaves the release
// pending-upgrade, and before this fix every rerun of the printed command failed with "another operation is in
// progress". The rerun now tells the dead helm from a live one (a second run while the first still works is
// refused, exit 4), waits for the hook Jobs that helm started, forgets the interrupted revision and finishes the
// rotation's steps: no key bytes change, no second key is added, the release is deployed again.
func TestKilledHookRotationResumes(t *testing.T) {
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			parallel(t, 110*time.Second)
			ctx := context.Background()
			h := newHelm(t, major)
			ns := namespace(t, "killed", nil)
			if out, err := installExample(ctx, h, ns, "app", "--set", "tokenTtlSeconds=60", "--wait", "--timeout", "2m"); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			before, _ := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
			// The verifier takes 8 s to count as available: the hook Jobs' rollouts take a while, and the kill lands
			// while they work.
			patch := `{"spec":{"minReadySeconds":8}}`
			if _, err := cluster.Client.AppsV1().Deployments(ns).Patch(ctx, "app-requests-proxy", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(h.Bin, "-n", ns, "rotate-key", "app", "--yes")
			cmd.Env = h.Env
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var first strings.Builder
			cmd.Stdout, cmd.Stderr = &first, &first
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 90*time.Second, "a rotation hook Job", func() bool {
				jobs, err := cluster.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=rotate-key"})
				return err == nil && len(jobs.Items) > 0 && strings.Contains(fmt.Sprint(jobNames(jobs.Items)), "-add")
			})
			// A second run while the first one's helm works: refused, nothing touched.
			if out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes"); exitCode(err) != 4 || !strings.Contains(out, "still running on this machine") {
				t.Fatalf("a rerun while the hook-path helm runs must be refused (exit 4): exit %d\n%s", exitCode(err), out)
			}
			delay := time.Duration(rand.IntN(20000)) * time.Millisecond // anywhere from the add to the promotion's rollout
			time.Sleep(delay)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the machine died: the plugin and its helm at once
			_ = cmd.Wait()
			status := releaseStatus(t, h, ns)
			t.Logf("killed %s after the first hook Job; release %s; phase %s", delay, status, phaseOf(t, ns))
			out, err := h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes")
			if status == "pending-upgrade" && !strings.Contains(out, "whose helm no longer runs") {
				t.Fatalf("the rerun must recognise the dead helm's revision:\n%s", out)
			}
			if exitCode(err) != 3 {
				t.Fatalf("the rerun must carry the rotation on to the TTL wait (exit 3): exit %d\n%s\nfirst run:\n%s", exitCode(err), out, first.String())
			}
			keys, active, st := secretState(t, ns)
			if st.Phase != rotation.Waiting || fmt.Sprint(keys) != "[key.v1 key.v2]" || active != "v2" {
				t.Fatalf("after the rerun: phase %s keys %v active %s (want Waiting, one new key, v2 active)", st.Phase, keys, active)
			}
			after, _ := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
			if dataDigest(map[string][]byte{"key.v1": after.Data["key.v1"]}) != dataDigest(map[string][]byte{"key.v1": before.Data["key.v1"]}) {
				t.Fatal("key.v1's bytes changed")
			}
			if got := releaseStatus(t, h, ns); got != "deployed" {
				t.Fatalf("the release must be deployed again, is %s", got)
			}
		})
	}
}

// waitFor polls cond every 200 ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, timeout)
		}
	}
}

func jobNames(jobs []batchv1.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Name
	}
	return out
}

func phaseOf(t *testing.T, ns string) rotation.Phase {
	_, _, st := secretState(t, ns)
	return st.Phase
}
