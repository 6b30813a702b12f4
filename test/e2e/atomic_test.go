package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// TestAtomicUpgradeOutlivedByItsHookJob (issue 15.8): `helm upgrade --atomic` (Helm 4: --rollback-on-failure)
// requests a rotation, and its rollout hook Job outlives Helm's timeout (the verifier takes 40 s to count as
// available). Helm rolls back; the chart's pre-rollback guard refuses that rollback (it would re-apply the keyring
// from before the add), and Helm 3 and Helm 4 leave the release pending-rollback: every upgrade fails. The
// plugin's rerun clears the refused rollback itself (Helm applied nothing), waits for the hook Jobs that carried
// on, and carries the rotation to its TTL wait: no wedge, no key byte changed, the release deployed again.
func TestAtomicUpgradeOutlivedByItsHookJob(t *testing.T) {
	for _, major := range helmMajors() {
		t.Run(fmt.Sprintf("helm%d", major), func(t *testing.T) {
			parallel(t, 150*time.Second)
			ctx := context.Background()
			h := newHelm(t, major)
			ns := namespace(t, "atomic", nil)
			if out, err := installExample(ctx, h, ns, "app", "--set", "tokenTtlSeconds=60", "--wait", "--timeout", "2m"); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			holdDeployment(t, ns, "app-requests-proxy", 40)
			time.Sleep(45 * time.Second) // the pods count as available again before the upgrade waits for them
			before, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out, err := h.Run(ctx, "-n", ns, "upgrade", "app", exampleChart(), "--reuse-values", "--set", "rotate-key.rotation.request=atomic1", "--atomic", "--timeout", "25s")
			if err == nil {
				t.Fatalf("the upgrade must time out in its rollout hook Job:\n%s", out)
			}
			if status := releaseStatus(t, h, ns); status != "pending-rollback" {
				t.Fatalf("helm%d --atomic after the timeout: release %s, want pending-rollback (the guard refused the rollback)", major, status)
			}
			// The slow verifier has served its purpose: the rest of the rotation need not wait for it.
			holdDeployment(t, ns, "app-requests-proxy", 0)
			out, err = h.Run(ctx, "-n", ns, "rotate-key", "app", "--yes")
			if exitCode(err) != 3 {
				t.Fatalf("the rerun must clear the way and carry the rotation to the TTL wait (exit 3): %v\n%s", err, out)
			}
			if !strings.Contains(out, "Deleted Helm's record of the refused rollback") {
				t.Fatalf("the rerun must say it forgot the refused rollback:\n%s", out)
			}
			keys, active, st := secretState(t, ns)
			if st.Phase != rotation.Waiting || fmt.Sprint(keys) != "[key.v1 key.v2]" || active != "v2" {
				t.Fatalf("after the rerun: phase %s keys %v active %s\n%s", st.Phase, keys, active, out)
			}
			after, err := cluster.Client.CoreV1().Secrets(ns).Get(ctx, "app-requests-proxy-admin", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if dataDigest(map[string][]byte{"key.v1": before.Data["key.v1"]}) != dataDigest(map[string][]byte{"key.v1": after.Data["key.v1"]}) {
				t.Fatal("v1's bytes changed")
			}
			if s := releaseStatus(t, h, ns); s != "deployed" {
				t.Fatalf("release %s after the rerun, want deployed", s)
			}
		})
	}
}
